"""Combinators: sequence, branch, residual, dense (repeat is a node-level key, see spec.resolve)."""
from __future__ import annotations

from collections import OrderedDict

from torch import nn

from ..errors import did_you_mean
from . import modules as M
from .activations import ACT_NAMES, activation
from .base import REQUIRED, Arg, Feat, Node, merge_rf, op


class SeqNode(Node):
    def build(self) -> nn.Module:
        mods = OrderedDict()
        prev = None
        for name, child in self.children:
            # an activation may run in place only on a tensor its own sequence just made
            if child.kind == "act" and prev is not None and prev.fresh \
                    and not hasattr(child, "reads"):
                child.inplace = True
            mods[name] = child.build()
            prev = child
        return nn.Sequential(mods)

    def overwritable(self) -> bool:
        return bool(self.children) and self.children[-1][1].overwritable()


def sequence(children: list[tuple[str, Node]], feat: Feat, loc, kind: str = "seq") -> Node:
    out = children[-1][1].out if children else feat
    return SeqNode(kind, feat, out, loc, children=list(children))


def merged_shape(a, merge: str, shapes: list[tuple], what: str = "") -> tuple:
    """The output shape of a concat, add or mul of tensors of ``shapes``, or a located error."""
    what = what or merge
    desc = ", ".join("x".join(map(str, s)) for s in shapes)
    if merge == "concat":
        if any(len(s) != 3 for s in shapes) or len({s[1:] for s in shapes}) > 1:
            raise a.loc.error(f"{what} cannot concatenate maps of different sizes: {desc}")
        return (sum(s[0] for s in shapes), *shapes[0][1:])
    if merge == "mul":
        dims = {len(s) for s in shapes}
        out = tuple(max(s[i] for s in shapes) for i in range(len(shapes[0]))) \
            if len(dims) == 1 else None
        if out is None or any(s[i] not in (1, out[i]) for s in shapes for i in range(len(out))):
            raise a.loc.error(f"{what} cannot multiply outputs whose shapes do not broadcast: "
                              f"{desc} (each dimension equal, or 1: a {shapes[0][0]}x1x1 gate "
                              f"times a map)")
        return out
    if len(set(shapes)) > 1:
        raise a.loc.error(f"{what} cannot add outputs of different shapes: {desc}")
    return shapes[0]


class BranchNode(Node):
    def build(self) -> nn.Module:
        return M.Branch([c.build() for _, c in self.children], self.merge, self.split)

    def overwritable(self) -> bool:   # a concat or a sum of two or more paths is a new tensor
        return self.merge == "concat" or len(self.children) > 1 or self.children[0][1].overwritable()


@op("branch", {
    "paths": Arg("nodes", REQUIRED, doc="the parallel paths, each a layer or a list of layers"),
    "merge": Arg("str", "concat", choices=("concat", "add", "mul"),
                 doc="concat (channels), add (same shapes) or mul (shapes that broadcast: a "
                     "Cx1x1 gate times a CxHxW map)"),
    "split": Arg("bool", False, doc="give each path an equal slice of the input channels "
                                    "instead of all of them (ShuffleNetV2)"),
}, scalar="paths", fresh=True)
def branch(a, feat: Feat, ctx) -> Node:
    """Parallel paths on the same input, merged by channel concatenation, by sum, or by product
    (gating: one path's map times another's per-channel weights)."""
    paths = a.paths
    if not isinstance(paths, list) or len(paths) < 1:
        raise a.at("paths").error("branch needs a list of paths")
    loc = a.at("paths")
    inputs = [feat] * len(paths)
    if a.split:
        if feat.spatial is None or feat.channels % len(paths):
            raise a.at("split").error(f"split needs channels that divide among the {len(paths)} "
                                      f"paths, got {feat.describe()}")
        part = feat.channels // len(paths)
        inputs = [feat.with_shape((part, *feat.spatial))] * len(paths)
    outs = [ctx.resolve(p, f, loc.key(paths, i)) for i, (p, f) in enumerate(zip(paths, inputs))]
    out = merged_shape(a, a.merge, [o.out.shape for o in outs], "branch")
    node = BranchNode("branch", feat, merge_rf([o.out for o in outs], out), a.loc,
                      children=[(f"paths.{i}", o) for i, o in enumerate(outs)],
                      info=a.merge + (" split" if a.split else ""))
    node.merge, node.split = a.merge, len(paths) if a.split else 0
    return node


class AuxNode(Node):
    def build(self) -> nn.Module:
        return M.Aux(self.children[0][1].build(), self.weight)

    @property
    def total_macs(self) -> int:
        return 0  # MACs are the cost of inference, where auxiliary heads don't run


@op("aux", {
    "body": Arg("node", REQUIRED, doc="the auxiliary head, e.g. pool, conv, linear"),
    "weight": Arg("float", 0.3, doc="its weight in the training loss"),
}, scalar="body")
def aux(a, feat: Feat, ctx) -> Node:
    """An auxiliary classifier on the current features (GoogLeNet, Inception-v3).

    The features pass through unchanged; in training the network also returns the head's output.
    """
    before = ctx.names.mark()
    body = ctx.resolve(a.body, feat, a.at("body"))
    ctx.names.forget(before)            # the head runs in training only: its names can't be read
    if body.out.shape != (ctx.scope["num_classes"],):
        raise a.at("body").error(f"an auxiliary head must end in {ctx.scope['num_classes']} "
                                 f"class scores, but gives {body.out.describe()}")
    node = AuxNode("aux", feat, feat, a.loc, children=[("body", body)], info=f"w={a.weight}")
    node.weight = a.weight
    return node


class ResidualNode(Node):
    def build(self) -> nn.Module:
        parts = dict(self.children)
        body = parts["body"].build()
        shortcut = parts["shortcut"].build() if "shortcut" in parts else self.shortcut_module
        act = activation(self.act) if self.act != "none" else None
        pre = parts["pre"].build() if "pre" in parts else None
        # drop-path's output is fresh only while training (in eval it is the body's own)
        fresh = parts["body"].overwritable() or self.scale != 1.0
        return M.Residual(body, shortcut, act, self.drop_path, self.scale,
                          shortcut_first=self.shortcut_first, pre=pre, identity=self.identity,
                          add_in_place=fresh, layer_scale=self.layer_scale)

    def overwritable(self) -> bool:
        return self.act == "none"


SHORTCUTS = ("auto", "identity", "projection", "optional", "pad", "none")


@op("residual", {
    "body": Arg("node", REQUIRED, doc="the residual function F(x)"),
    "shortcut": Arg("any", "auto", doc="auto, identity, projection, optional, pad, none, "
                                       "or a layer/list of layers"),
    "act": Arg("str", "none", choices=ACT_NAMES, doc="activation after the sum"),
    "drop_path": Arg("any", 0.0, doc="stochastic depth probability, or 'auto' for the "
                                     "network's linear schedule"),
    "scale": Arg("float", 1.0, doc="multiplier of F(x) before the sum"),
    "layer_scale": Arg("float", None, doc="a learnable per-channel multiplier of F(x) with this "
                                          "initial value (ConvNeXt's, CaiT's layer scale)"),
    "shortcut_first": Arg("bool", False, doc="register the shortcut's layers before the body's "
                                             "(the weight order of e.g. timm's Xception)"),
    "pre": Arg("node", None, doc="layers before the split, e.g. a shared pre-activation: the "
                                 "body and a non-identity shortcut start from their output; "
                                 "an identity shortcut carries the input itself"),
}, scalar="body", fresh=True)
def residual(a, feat: Feat, ctx) -> Node:
    """out = act(F(x) + shortcut(x)); the shortcut adapts to the body's output shape.

    With ``pre``: p = pre(x), out = act(F(p) + (x if the shortcut is identity else shortcut(p))):
    the full pre-activation unit of He et al. 2016b, whose projection reads the pre-activation.
    """
    pre, start = None, feat
    if a.pre is not None:
        pre = ctx.resolve(a.pre, feat, a.at("pre"))
        start = pre.out if pre is not None else feat
    before_body = ctx.names.mark()
    body = ctx.resolve(a.body, start, a.at("body"))
    bshape, ishape = body.out.shape, feat.shape
    sc = a.shortcut
    if isinstance(sc, str) and sc not in SHORTCUTS:
        raise a.at("shortcut").error(f"unknown shortcut '{sc}'{did_you_mean(sc, SHORTCUTS)}; "
                                     f"use one of {', '.join(SHORTCUTS)} or a list of layers")
    if sc == "none" or (sc == "optional" and bshape != ishape):
        if a.drop_path == "auto":
            ctx.state("drop_path", list).append(None)  # it still takes its place in the schedule
        return body if pre is None else sequence([("pre", pre), ("body", body)], feat, a.loc)
    if sc == "optional":
        sc = "identity"
    if sc == "auto":
        sc = "identity" if bshape == ishape else "projection"
    if sc == "pad" and bshape == ishape:
        sc = "identity"                  # option A pads only where the shape changes
    act = a.act if a.act is not None else ctx.default("act")
    node = ResidualNode("residual", feat, merge_rf([feat, body.out], bshape), a.loc,
                        children=[("body", body)], info=sc)
    node.act, node.scale, node.shortcut_module = act, a.scale, None
    node.layer_scale = None
    if a.layer_scale is not None:
        node.layer_scale = (float(a.layer_scale), body.out.shape)
        node.params += body.out.shape[0]
        node.own_params = "layer_scale"           # the Residual module's own parameter
        node.info += f" layer_scale={a.layer_scale:g}"
    node.shortcut_first = a.shortcut_first
    node.identity = sc == "identity"
    node.drop_path = _drop_path(a, ctx, node)
    with ctx.names.hidden_since(before_body):     # the shortcut runs before the body
        _shortcut(a, ctx, node, sc, feat, start, body, pre is not None)
    if a.shortcut_first:
        node.children.reverse()          # the report lists layers in the module's order
    if pre is not None:
        node.children.insert(0, ("pre", pre))
        node.info += " from pre" if sc != "identity" else ""
    return node


def _shortcut(a, ctx, node, sc: str, feat: Feat, start: Feat, body: Node, after_pre: bool):
    """The shortcut's node (a child of ``node``) or module, checked against the body's output."""
    bshape = body.out.shape
    if sc == "identity":
        if bshape != feat.shape:
            raise a.loc.error(f"residual branches disagree: the body gives "
                              f"{body.out.describe()} but the identity shortcut gives "
                              f"{feat.describe()}; use shortcut: projection (or auto)")
    elif sc in ("projection", "pad"):
        stride = _stride_between(a, start, body.out)
        if sc == "projection":
            proj = {"conv": {"c": bshape[0], "k": 1, "s": stride, "act": "none"}}
            if after_pre:           # after a pre-activation: a bare conv, as the body's last
                proj["conv"].update(norm="none", bias=False)
            node.children.append(("shortcut", ctx.resolve(proj, start, a.at("shortcut"))))
        else:
            extra = bshape[0] - start.shape[0]
            if extra < 0:
                raise a.at("shortcut").error(f"a 'pad' shortcut cannot reduce {start.shape[0]} "
                                             f"channels to {bshape[0]}")
            node.shortcut_module = M.PadShortcut(stride, extra)
    else:  # a user-written shortcut path
        path = ctx.resolve(sc, start, a.at("shortcut"))
        if path.out.shape != bshape:
            raise a.loc.error(f"residual branches disagree: the body gives "
                              f"{body.out.describe()} but the shortcut gives "
                              f"{path.out.describe()}")
        node.children.append(("shortcut", path))


def _stride_between(a, feat: Feat, out: Feat) -> int:
    if len(feat.shape) != 3 or len(out.shape) != 3:
        raise a.loc.error("a residual over flat vectors needs shortcut: identity")
    h, w = feat.spatial
    oh, ow = out.spatial
    s = -(-h // oh)
    if -(-w // ow) != s or -(-h // s) != oh:
        raise a.loc.error(f"residual branches disagree: the body maps {h}x{w} to {oh}x{ow}, "
                          f"which no strided shortcut can match")
    return s


def _drop_path(a, ctx, node) -> float:
    if a.drop_path == "auto":
        ctx.state("drop_path", list).append(node)
        return 0.0
    p = a.drop_path
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p < 1.0:
        raise a.at("drop_path").error(f"drop_path must be a probability in [0, 1) or 'auto', "
                                      f"got {p!r}")
    return float(p)


class DenseNode(Node):
    def build(self) -> nn.Module:
        return M.Dense([c.build() for _, c in self.children])

    def overwritable(self) -> bool:
        return True                     # a concatenation


@op("dense", {
    "n": Arg("int", REQUIRED, doc="number of layers"),
    "body": Arg("node", REQUIRED, doc="one layer; its output channels are the growth"),
}, fresh=True)
def dense(a, feat: Feat, ctx) -> Node:
    """DenseNet block: layer i sees the concatenation of the input and the outputs of layers < i."""
    if not 1 <= a.n <= 10_000:
        raise a.at("n").error(f"dense needs 1 to 10000 layers, got {a.n}")
    if feat.spatial is None:
        raise a.loc.error("dense needs a CxHxW feature map")
    layers, cur = [], feat
    for i in range(a.n):
        layer = ctx.resolve(a.body, cur, a.at("body"))
        if len(layer.out.shape) != 3 or layer.out.spatial != feat.spatial:
            raise a.at("body").error(f"a dense layer must keep the {feat.spatial[0]}x"
                                     f"{feat.spatial[1]} map size, but gives "
                                     f"{layer.out.describe()}")
        layers.append((f"layers.{i}", layer))
        cur = merge_rf([cur, layer.out], (cur.channels + layer.out.channels, *feat.spatial))
    return DenseNode("dense", feat, cur, a.loc, children=layers, info=f"{a.n} layers")
