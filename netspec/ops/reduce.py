"""``factorized_reduce``: halve a map keeping every pixel (NASNet, DARTS): op and module."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .activations import ACT_NAMES, activation
from .base import Arg, Feat, Node, op
from .layers import norm_params
from .norms import NORM_NAMES, norm_module


class FactorizedReduce(nn.Module):
    """Halve a map keeping every pixel: 1x1 convs on the even and the odd pixel grid, concat, norm.

    TF-slim's ``factorized_reduction`` (NASNet): the second path shifts the map by one pixel (zero
    padding at the bottom/right), so odd sizes give ceil(H/2) on both paths.
    """

    def __init__(self, cin: int, cout: int, act: str, norm: nn.Module):
        super().__init__()
        self.act = activation(act, inplace=False) if act != "none" else nn.Identity()
        half = cout // 2
        self.path_1 = nn.Conv2d(cin, half, 1, bias=False)
        self.path_2 = nn.Conv2d(cin, cout - half, 1, bias=False)
        self.norm = norm

    def forward(self, x):
        x = self.act(x)
        a = self.path_1(x[:, :, ::2, ::2])
        b = self.path_2(F.pad(x[:, :, 1:, 1:], (0, 1, 0, 1))[:, :, ::2, ::2])
        return self.norm(torch.cat([a, b], 1))


class FactorizedNode(Node):
    def build(self) -> nn.Module:
        c = self.cfg
        norm = norm_module(c["norm"], self.out.channels, 2, c["norm_kw"]) \
            if c["norm"] != "none" else nn.Identity()
        return FactorizedReduce(self.inp.channels, self.out.channels, c["act"], norm)


@op("factorized_reduce", {
    "c": Arg("int", None, doc="output channels (default: same as input)"),
    "act": Arg("str", None, choices=ACT_NAMES,
               doc="activation before the paths (default: defaults.act)"),
    "norm": Arg("str", None, choices=NORM_NAMES, doc="norm after the concat (default: defaults.norm)"),
}, channels=("c",))
def factorized_reduce(a, feat: Feat, ctx) -> Node:
    """Stride-2 reduction by two 1x1 convs on interleaved pixel grids (NASNet, DARTS)."""
    if feat.spatial is None:
        raise a.loc.error(f"factorized_reduce needs a CxHxW feature map but gets a flat vector "
                          f"of {feat.shape[0]} features")
    cin = feat.channels
    cout = cin if a.c is None else a.c
    if cout < 2:
        raise a.at("c").error(f"factorized_reduce needs at least 2 output channels (one per "
                              f"path), got {cout}")
    h, w = feat.spatial
    out = (cout, -(-h // 2), -(-w // 2))
    act = ctx.default("act") if a.act is None else a.act
    norm = ctx.default("norm") if a.norm is None else a.norm
    node = FactorizedNode("factorized_reduce", feat, feat.after(out, (1, 1), (2, 2)), a.loc,
                          info=f"1x1/2 x2, {cout}")
    node.weights = cin * cout
    node.params = node.weights + norm_params(norm, cout)
    node.macs = cin * cout * out[1] * out[2]
    node.cfg = dict(act=act, norm=norm, norm_kw=ctx.norm_kw(norm))
    return node
