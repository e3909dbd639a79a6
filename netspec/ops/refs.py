"""Merging named tensors: ``concat``, ``add`` and ``mul`` of layers' outputs in the written order.

``- concat: [enc4, .]`` concatenates the output of the layer named ``enc4`` and the current tensor
(``.``, the previous layer's output), as a U-Net decoder joins its skip connection; ``add`` sums
(feature pyramids), ``mul`` multiplies shapes that broadcast (a Cx1x1 gate times a map). Shapes are
checked where the merge is written. Naming and reading are :mod:`netspec.lang.names`; the run-time
side is :mod:`netspec.ops.tape`.
"""
from __future__ import annotations

from .base import REQUIRED, Arg, Feat, Node, merge_rf, op
from .combinators import merged_shape
from .tape import Merge, current_tape

CURRENT = "."


class MergeNode(Node):
    def build(self):
        return Merge(self.keys, self.kind, current_tape(), self.out.spatial if self.crop else None)

    def overwritable(self) -> bool:
        return len(self.keys) > 1       # a new tensor (one alone is the tensor itself)


def _merge(kind: str, a, feat: Feat, ctx) -> Node:
    items = a.of
    loc = a.at("of")
    if not isinstance(items, list) or not items:
        raise loc.error(f"{kind} takes a list of layer names, '.' for the current tensor: "
                        f"[enc4, .]")
    keys, feats, shown = [], [], []
    for i, name in enumerate(items):
        if name == CURRENT:
            keys.append(None)
            feats.append(feat)
        else:
            key, f = ctx.names.read(name, loc.key(items, i))
            keys.append(key)
            feats.append(f)
        shown.append(str(name))
    shapes = [f.shape for f in feats]
    if a.crop:                  # U-Net's "copy and crop": the larger maps' centres
        if any(len(s) != 3 for s in shapes):
            raise a.at("crop").error(f"crop needs maps, got {', '.join(f.describe() for f in feats)}")
        size = (min(s[1] for s in shapes), min(s[2] for s in shapes))
        shapes = [(s[0], *size) for s in shapes]
        shown.append("cropped")
    shape = merged_shape(a, kind, shapes)
    node = MergeNode(kind, feat, merge_rf(feats, shape), a.loc, info=", ".join(shown))
    node.keys, node.crop = keys, a.crop
    node.fresh = len(keys) > 1
    return node


for _kind, _doc in (("concat", "Concatenate the named tensors' channels in the written order "
                               "('.' is the current tensor); their map sizes must agree."),
                    ("add", "The sum of the named tensors ('.' is the current tensor), of equal "
                            "shapes."),
                    ("mul", "The product of the named tensors ('.' is the current tensor): equal "
                            "shapes, or 1 in a dimension (a gate).")):
    def _make(kind):
        return lambda a, feat, ctx: _merge(kind, a, feat, ctx)
    op(_kind, {"of": Arg("nodes", REQUIRED, doc="layer names, '.' for the current tensor"),
               "crop": Arg("bool", False, doc="crop each map to the smallest's size, about its "
                                              "centre (U-Net's copy and crop)")},
       scalar="of", doc=_doc)(_make(_kind))
