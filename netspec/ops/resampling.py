"""Resizing a map: ``upsample`` (nearest or bilinear, by a factor or to a size)."""
from __future__ import annotations

from torch import nn

from .base import Arg, Feat, Node, op, pair
from .layers import leaf_node, need_map


@op("upsample", {
    "scale": Arg("float", None, doc="factor of the map's height and width"),
    "size": Arg("pair", None, doc="the output's height and width (instead of scale)"),
    "mode": Arg("str", "nearest", choices=("nearest", "bilinear")),
    "align_corners": Arg("bool", False, doc="bilinear: align the corner pixels"),
}, scalar="scale")
def upsample(a, feat: Feat, ctx) -> Node:
    """Nearest or bilinear resizing of a map (decoders, feature pyramids): by ``scale`` or to
    ``size``."""
    need_map(a, feat, "upsample")
    if (a.scale is None) == (a.size is None):
        raise a.loc.error("upsample takes scale (a factor) or size (height and width), one of them")
    h, w = feat.spatial
    if a.scale is not None:
        if a.scale <= 0:
            raise a.at("scale").error(f"upsample scale must be > 0, got {a.scale}")
        out = (int(h * a.scale), int(w * a.scale))
    else:
        out = pair(a.size)
    if min(out) < 1:
        raise a.loc.error(f"upsample makes the {h}x{w} map {out[0]}x{out[1]}")
    jump = tuple(max(1, round(feat.jump[i] * (h, w)[i] / out[i])) for i in range(2))
    kw = {"mode": a.mode, "align_corners": a.align_corners if a.mode == "bilinear" else None}
    kw.update({"scale_factor": float(a.scale)} if a.scale is not None else {"size": out})
    return leaf_node("upsample", a, feat, Feat((feat.channels, *out), feat.rf, jump),
                 lambda: nn.Upsample(**kw), info=f"{a.mode} {out[0]}x{out[1]}")
