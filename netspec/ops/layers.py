"""Primitives: conv, pool, linear, norm, act, dropout, lrn, flatten, se, shuffle, identity.

Each op's ``resolve`` checks its input, computes the output shape, parameters and MACs
(multiply-accumulates of conv and linear layers, the convention of the papers and of
``FlopCounterMode / 2``), and returns a node whose ``build`` makes the module.
"""
from __future__ import annotations

from collections import OrderedDict

from torch import nn

from . import modules as M
from .activations import ACT_NAMES, activation
from .base import REQUIRED, Arg, Feat, Node, op, pair, window_out
from .norms import NORM_NAMES, NORMS, norm_module


def need_map(a, feat: Feat, what: str):
    if feat.spatial is None:
        raise a.loc.error(f"{what} needs a CxHxW feature map but gets a flat vector of "
                          f"{feat.shape[0]} features")


def _spatial_out(a, feat: Feat, k, s, p, d, ceil=False, what="conv"):
    for key, v, least, name in (("k", k, 1, "kernel size"), ("s", s, 1, "stride"),
                                ("d", d, 1, "dilation"), ("p", p, 0, "padding")):
        if min(v) < least:
            raise a.at(key).error(f"{what} {name} must be at least {least}, got {min(v)}")
    h, w = feat.spatial
    out = tuple(window_out(n, k[i], s[i], p[i], d[i], ceil) for i, n in enumerate((h, w)))
    if min(out) < 1:
        raise a.loc.error(f"{what} with kernel {k[0]}x{k[1]}, stride {s[0]}, padding {p[0]} "
                          f"makes the {h}x{w} input smaller than 1x1; use a larger input size "
                          f"or a smaller kernel/stride")
    return out


def check_norm(a, ctx, kind: str, channels: int):
    """A norm that cannot take these channels (GroupNorm's groups) fails here, not in torch."""
    norm = NORMS.get(kind)
    problem = norm.check(channels, ctx.norm_kw(kind)) if norm and norm.check else None
    if problem:
        raise a.at("norm").error(problem)


def norm_params(kind: str, channels: int) -> int:
    return NORMS[kind].params(channels) if kind != "none" else 0


def _norm_kind(a, ctx) -> str:
    return ctx.default("norm") if a.get("norm") is None else a.norm


def _act_kind(a, ctx, key="act") -> str:
    return ctx.default("act") if a.get(key) is None else a[key]


# -- conv ---------------------------------------------------------------------------------------

def with_norm_act(conv: nn.Module, c: dict, channels: int) -> nn.Module:
    """``conv`` followed by the node's ``norm`` and ``act`` (on ``channels``), or alone."""
    parts = [("conv", conv)]
    if c["norm"] != "none":
        parts.append(("norm", norm_module(c["norm"], channels, 2, c["norm_kw"])))
    if c["act"] != "none":
        parts.append(("act", activation(c["act"])))
    return conv if len(parts) == 1 else nn.Sequential(OrderedDict(parts))


class ConvNode(Node):
    def build(self) -> nn.Module:
        c = self.cfg
        conv = nn.Conv2d(self.inp.channels, self.out.channels, c["k"], c["s"], c["p"],
                         dilation=c["d"], groups=c["groups"], bias=c["bias"])
        parts = []
        if c["order"] == "pre":
            if c["norm"] != "none":
                parts.append(("norm", norm_module(c["norm"], self.inp.channels, 2, c["norm_kw"])))
            if c["act"] != "none":
                parts.append(("act", activation(c["act"], inplace=c["norm"] != "none")))
            parts.append(("conv", conv))
        else:
            return with_norm_act(conv, c, self.out.channels)
        return nn.Sequential(OrderedDict(parts))

    def overwritable(self) -> bool:
        return self.cfg["act"] == "none" or self.cfg["order"] == "pre"   # ends in a conv or norm


@op("conv", {
    "c": Arg("int", None, doc="output channels (default: same as input)"),
    "k": Arg("pair", 3, doc="kernel size, or [kh, kw]"),
    "s": Arg("pair", 1, doc="stride"),
    "p": Arg("any", None, doc="padding (default: (k-1)/2 * d, 'same' for odd kernels)"),
    "d": Arg("pair", 1, doc="dilation"),
    "groups": Arg("int", 1, doc="groups; channels must divide by it"),
    "dw": Arg("bool", False, doc="depthwise: groups = input channels"),
    "bias": Arg("any", None, doc="true/false; default: only without a norm"),
    "norm": Arg("str", None, choices=NORM_NAMES,
                doc="a registered norm (bn, gn) or none (default: defaults.norm)"),
    "act": Arg("str", None, choices=ACT_NAMES, doc="activation (default: defaults.act)"),
    "order": Arg("str", None, choices=("post", "pre"),
                 doc="post: conv-norm-act; pre: norm-act-conv (pre-activation)"),
}, channels=("c",), fresh=True)
def conv(a, feat: Feat, ctx) -> Node:
    """Convolution with its norm and activation."""
    need_map(a, feat, "conv")
    cin = feat.channels
    cout = cin if a.c is None else a.c
    groups = cin if a.dw else a.groups
    if cout < 1:
        raise a.at("c").error(f"conv needs at least 1 output channel, got {cout}")
    if groups < 1:
        raise a.at("groups").error(f"groups must be at least 1, got {groups}")
    if cin % groups or cout % groups:
        raise a.at("groups").error(f"groups={groups} must divide both the input channels ({cin}) "
                                   f"and the output channels ({cout})")
    k, s, d = pair(a.k), pair(a.s), pair(a.d)
    if a.p is None:
        p = tuple((k[i] - 1) // 2 * d[i] for i in range(2))
    elif a.p == "same":
        p = tuple((k[i] - 1) // 2 * d[i] for i in range(2))
    elif isinstance(a.p, int) and not isinstance(a.p, bool) or \
            isinstance(a.p, (list, tuple)) and len(a.p) == 2 and \
            all(isinstance(v, int) and not isinstance(v, bool) for v in a.p):
        p = pair(a.p)
    else:
        raise a.at("p").error(f"padding must be a number, [ph, pw] or 'same', got {a.p!r}")
    norm, act = _norm_kind(a, ctx), _act_kind(a, ctx)
    order = a.order or ctx.default("order")
    bias = a.bias if a.bias is not None else ctx.default("bias")
    if bias not in (True, False, None, "auto"):
        raise a.at("bias").error(
            f"bias must be true, false or auto, got {bias!r}")
    check_norm(a, ctx, norm, cin if order == "pre" else cout)
    if bias in (None, "auto"):
        bias = norm == "none"
    h, w = _spatial_out(a, feat, k, s, p, d, what="conv")
    node = ConvNode("conv", feat, feat.after((cout, h, w), k, s, d), a.loc)
    weights = cout * (cin // groups) * k[0] * k[1]
    normed = cin if order == "pre" else cout
    node.params = weights + (cout if bias else 0) + norm_params(norm, normed)
    node.macs = weights * h * w
    node.weights = weights
    node.cfg = dict(k=k, s=s, p=p, d=d, groups=groups, bias=bool(bias), norm=norm, act=act,
                    order=order, norm_kw=ctx.norm_kw(norm))
    dw = " dw" if groups == cin and groups > 1 else (f" g{groups}" if groups > 1 else "")
    node.info = f"{k[0]}x{k[1]}/{s[0]}{dw}, {cout}"
    return node


# -- pooling ------------------------------------------------------------------------------------

POOLS = ("max", "avg", "global_avg", "global_max", "adaptive_avg", "adaptive_max")


class PoolNode(Node):
    def build(self) -> nn.Module:
        c = self.cfg
        t = c["type"]
        if t.startswith("global"):
            if not c["flatten"]:          # a 1x1 map, for a head of 1x1 convs
                return (nn.AdaptiveAvgPool2d if t == "global_avg" else nn.AdaptiveMaxPool2d)(1)
            return M.GlobalPool(t.split("_")[1])
        if t == "adaptive_avg":
            return nn.AdaptiveAvgPool2d(c["size"])
        if t == "adaptive_max":
            return nn.AdaptiveMaxPool2d(c["size"])
        if t == "max":
            return nn.MaxPool2d(c["k"], c["s"], c["p"], ceil_mode=c["ceil"])
        return nn.AvgPool2d(c["k"], c["s"], c["p"], ceil_mode=c["ceil"],
                            count_include_pad=c["count_include_pad"])


@op("pool", {
    "type": Arg("str", "max", choices=POOLS),
    "k": Arg("pair", 2), "s": Arg("pair", None), "p": Arg("pair", 0),
    "ceil": Arg("bool", False, doc="ceil mode for the output size"),
    "count_include_pad": Arg("bool", True),
    "size": Arg("pair", 1, doc="output size of adaptive pooling"),
    "flatten": Arg("bool", None, doc="global pooling: to a vector (default) or, false, a 1x1 map"),
}, scalar="type")
def pool(a, feat: Feat, ctx) -> Node:
    """Max, average, global or adaptive pooling. ``global_*`` flattens to a vector unless
    ``flatten: false`` (a 1x1 map)."""
    need_map(a, feat, "pool")
    c = feat.channels
    cfg = dict(type=a.type)
    if a.flatten is not None and not a.type.startswith("global"):
        raise a.at("flatten").error(f"flatten applies to global pooling, not {a.type}")
    if a.type.startswith("global"):
        h, w = feat.spatial
        flat = a.flatten is not False
        node = PoolNode("pool", feat, feat.after((c,) if flat else (c, 1, 1), (h, w), (h, w)),
                        a.loc, info=a.type if flat else f"{a.type} 1x1")
        cfg["flatten"] = flat
    elif a.type.startswith("adaptive"):
        size = pair(a.size)
        if min(size) < 1:
            raise a.at("size").error(f"adaptive pool output size must be at least 1, "
                                     f"got {min(size)}")
        h, w = feat.spatial
        k = (-(-h // size[0]), -(-w // size[1]))
        node = PoolNode("pool", feat, feat.after((c, *size), k, k), a.loc,
                        info=f"{a.type} {size[0]}x{size[1]}")
        cfg["size"] = size
    else:
        k = pair(a.k)
        s = pair(a.s if a.s is not None else a.k)
        p = pair(a.p)
        if any(p[i] > k[i] // 2 for i in range(2)):
            raise a.at("p").error(f"padding {p[0]} is more than half the kernel {k[0]}")
        h, w = _spatial_out(a, feat, k, s, p, (1, 1), a.ceil, what=f"{a.type} pool")
        node = PoolNode("pool", feat, feat.after((c, h, w), k, s), a.loc,
                        info=f"{a.type} {k[0]}x{k[1]}/{s[0]}")
        cfg.update(k=k, s=s, p=p, ceil=a.ceil, count_include_pad=a.count_include_pad)
    node.cfg = cfg
    return node


# -- linear -------------------------------------------------------------------------------------

class LinearNode(Node):
    def build(self) -> nn.Module:
        c = self.cfg
        lin = nn.Linear(self.inp.shape[0], self.out.shape[0], bias=c["bias"])
        parts = [("linear", lin)]
        if c["norm"] != "none":
            parts.append(("norm", norm_module(c["norm"], self.out.shape[0], 1, c["norm_kw"])))
        if c["act"] != "none":
            parts.append(("act", activation(c["act"])))
        return lin if len(parts) == 1 else nn.Sequential(OrderedDict(parts))

    def overwritable(self) -> bool:
        return self.cfg["act"] == "none"


@op("linear", {
    "c": Arg("int", REQUIRED, doc="output features"),
    "bias": Arg("bool", True),
    "norm": Arg("str", "none", choices=NORM_NAMES),
    "act": Arg("str", "none", choices=ACT_NAMES),
}, scalar="c", fresh=True)
def linear(a, feat: Feat, ctx) -> Node:
    """Fully connected layer on a flat vector."""
    if len(feat.shape) != 1:
        raise a.loc.error(f"linear needs a flat vector but gets a {feat.describe()} map; put "
                          f"'flatten' or 'pool: global_avg' before it")
    if a.c < 1:
        raise a.at("c").error(f"linear needs at least 1 output feature, got {a.c}")
    check_norm(a, ctx, a.norm, a.c)
    fin = feat.shape[0]
    node = LinearNode("linear", feat, feat.with_shape((a.c,)), a.loc, info=f"{fin}->{a.c}")
    node.weights = fin * a.c
    node.params = node.weights + (a.c if a.bias else 0) + norm_params(a.norm, a.c)
    node.macs = fin * a.c
    node.cfg = dict(bias=a.bias, norm=a.norm, act=a.act, norm_kw=ctx.norm_kw(a.norm))
    return node


# -- parameter-free and small layers ------------------------------------------------------------

class ModuleNode(Node):
    """A leaf whose module is made by a stored factory."""

    fresh_output = False          # see Node.overwritable

    def build(self) -> nn.Module:
        return self.factory()

    def overwritable(self) -> bool:
        return self.fresh_output


def leaf_node(kind, a, feat, out, factory, params=0, info="", overwritable=False):
    node = ModuleNode(kind, feat, out, a.loc, params=params, info=info)
    node.factory = factory
    node.fresh_output = overwritable
    return node


@op("norm", {"type": Arg("str", None, choices=NORM_NAMES)}, scalar="type", fresh=True)
def norm(a, feat: Feat, ctx) -> Node:
    """A standalone normalization layer (e.g. DenseNet's final BN)."""
    kind = ctx.default("norm") if a.type is None else a.type
    c = feat.channels
    if kind == "none":
        node = leaf_node("norm", a, feat, feat, nn.Identity)
        node.fresh = False                 # it passes its input on: no activation in place after it
        return node
    check_norm(a, ctx, kind, c)
    kw = ctx.norm_kw(kind)
    dims = 2 if feat.spatial else 1
    return leaf_node("norm", a, feat, feat, lambda: norm_module(kind, c, dims, kw), norm_params(kind, c),
                 kind, overwritable=True)


@op("act", {"type": Arg("str", None, choices=ACT_NAMES)}, scalar="type")
def act(a, feat: Feat, ctx) -> Node:
    """A standalone activation."""
    kind = ctx.default("act") if a.type is None else a.type
    if kind == "none":
        return leaf_node("act", a, feat, feat, nn.Identity)
    node = leaf_node("act", a, feat, feat, None, info=kind)
    node.factory = lambda: activation(kind, inplace=getattr(node, "inplace", False))
    return node


@op("dropout", {"p": Arg("float", 0.5)}, scalar="p")
def dropout(a, feat: Feat, ctx) -> Node:
    if not 0.0 <= a.p < 1.0:
        raise a.at("p").error(f"dropout probability must be in [0, 1), got {a.p}")
    return leaf_node("dropout", a, feat, feat, lambda: nn.Dropout(a.p), info=f"p={a.p}")


@op("lrn", {"size": Arg("int", 5), "alpha": Arg("float", 1e-4), "beta": Arg("float", 0.75),
            "k": Arg("float", 2.0),
            "alpha_of": Arg("str", "mean", choices=("mean", "sum"),
                            doc="mean: k + alpha * mean of the squares over the window (torch, "
                                "Caffe); sum: k + alpha * their sum (Krizhevsky et al. 2012)")})
def lrn(a, feat: Feat, ctx) -> Node:
    """Local response normalization (AlexNet)."""
    need_map(a, feat, "lrn")
    if a.size < 1:
        raise a.at("size").error(f"lrn size must be at least 1, got {a.size}")
    alpha = a.alpha * a.size if a.alpha_of == "sum" else a.alpha
    return leaf_node("lrn", a, feat, feat,
                 lambda: nn.LocalResponseNorm(a.size, alpha, a.beta, a.k), info=f"n={a.size}")


@op("flatten", {})
def flatten(a, feat: Feat, ctx) -> Node:
    n = 1
    for s in feat.shape:
        n *= s
    return leaf_node("flatten", a, feat, feat.with_shape((n,)), lambda: nn.Flatten(1))


@op("identity", {})
def identity(a, feat: Feat, ctx) -> Node:
    return leaf_node("identity", a, feat, feat, nn.Identity)


@op("se", {
    "c": Arg("int", None, doc="squeeze channels (default: input channels * ratio)"),
    "ratio": Arg("float", 0.25),
    "act": Arg("str", "relu", choices=ACT_NAMES),
    "gate": Arg("str", "sigmoid", choices=ACT_NAMES),
})
def se(a, feat: Feat, ctx) -> Node:
    """Squeeze-and-excitation with 1x1 convs (with bias) as its two FC layers."""
    need_map(a, feat, "se")
    c = feat.channels
    sq = a.c if a.c is not None else max(1, int(c * a.ratio))
    if sq < 1:
        raise a.at("c").error(f"se needs at least 1 squeeze channel, got {sq}")
    act_kind = _act_kind(a, ctx)
    node = leaf_node("se", a, feat, feat, lambda: M.SqueezeExcite(c, sq, act_kind, a.gate),
                 params=2 * c * sq + sq + c, info=f"{c}->{sq}->{c}", overwritable=True)
    node.macs = node.weights = 2 * c * sq
    return node


@op("shuffle", {"groups": Arg("int", REQUIRED)}, scalar="groups")
def shuffle(a, feat: Feat, ctx) -> Node:
    """ShuffleNet channel shuffle."""
    need_map(a, feat, "shuffle")
    if a.groups < 1 or feat.channels % a.groups:
        raise a.at("groups").error(f"shuffle groups={a.groups} must divide the "
                                   f"{feat.channels} channels")
    return leaf_node("shuffle", a, feat, feat, lambda: M.ChannelShuffle(a.groups), info=f"g{a.groups}")
