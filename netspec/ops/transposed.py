"""Transposed convolution: ``conv_transpose`` (learned upsampling in decoders, FCN, U-Net, GANs)."""
from __future__ import annotations

import math

from torch import nn

from .activations import ACT_NAMES
from .base import Arg, Feat, Node, op, pair
from .layers import check_norm, need_map, norm_params, with_norm_act
from .norms import NORM_NAMES


def transposed_out(n: int, k: int, s: int, p: int, d: int = 1, output_padding: int = 0) -> int:
    """torch's output length of a transposed conv: (n-1)*s - 2p + d*(k-1) + output_padding + 1."""
    return (n - 1) * s - 2 * p + d * (k - 1) + output_padding + 1


class ConvTransposeNode(Node):
    def build(self) -> nn.Module:
        c = self.cfg
        conv = nn.ConvTranspose2d(self.inp.channels, self.out.channels, c["k"], c["s"], c["p"],
                                  output_padding=c["output_padding"], groups=c["groups"],
                                  bias=c["bias"], dilation=c["d"])
        return with_norm_act(conv, c, self.out.channels)

    def overwritable(self) -> bool:
        return self.cfg["act"] == "none"            # ends in the conv or its norm


def _check_window(a, k, s, p, d, out_pad):
    for key, v, least, name in (("k", k, 1, "kernel size"), ("s", s, 1, "stride"),
                                ("d", d, 1, "dilation"), ("p", p, 0, "padding"),
                                ("output_padding", out_pad, 0, "output padding")):
        if min(v) < least:
            raise a.at(key).error(f"conv_transpose {name} must be at least {least}, got {min(v)}")
    for i in range(2):          # torch's rule: the extra rows must lie within one stride step
        if out_pad[i] >= max(s[i], d[i]):
            raise a.at("output_padding").error(
                f"conv_transpose output padding {out_pad[i]} must be smaller than the stride "
                f"{s[i]} or the dilation {d[i]}")


@op("conv_transpose", {
    "c": Arg("int", None, doc="output channels (default: same as input)"),
    "k": Arg("pair", 2, doc="kernel size, or [kh, kw]"),
    "s": Arg("pair", None, doc="stride, the upsampling factor (default: k)"),
    "p": Arg("pair", 0, doc="padding, taken off each border of the output"),
    "output_padding": Arg("pair", 0, doc="rows/columns added at the bottom/right of the output"),
    "d": Arg("pair", 1, doc="dilation"),
    "groups": Arg("int", 1, doc="groups; channels must divide by it"),
    "bias": Arg("any", None, doc="true/false; default: only without a norm"),
    "norm": Arg("str", "none", choices=NORM_NAMES, doc="a registered norm after it, or none"),
    "act": Arg("str", "none", choices=ACT_NAMES, doc="activation after it, or none"),
}, channels=("c",), fresh=True)
def conv_transpose(a, feat: Feat, ctx) -> Node:
    """Transposed convolution (nn.ConvTranspose2d), then ``norm`` and ``act`` if given. Bare by
    default, as ``linear``: a decoder's upsampling conv (FCN, U-Net's up-conv 2x2) has none, and
    the network's defaults are for its convs. The default k=2, s=k doubles the map exactly.
    Output (H-1)*s - 2p + d*(k-1) + output_padding + 1; params Cin*Cout/groups*k*k (+ bias, norm);
    MACs Cin*Cout/groups*k*k * H_in*W_in: each input pixel is spread by the whole kernel."""
    need_map(a, feat, "conv_transpose")
    cin = feat.channels
    cout = cin if a.c is None else a.c
    if cout < 1:
        raise a.at("c").error(f"conv_transpose needs at least 1 output channel, got {cout}")
    if a.groups < 1:
        raise a.at("groups").error(f"groups must be at least 1, got {a.groups}")
    if cin % a.groups or cout % a.groups:
        raise a.at("groups").error(f"groups={a.groups} must divide both the input channels "
                                   f"({cin}) and the output channels ({cout})")
    k, d, p, out_pad = pair(a.k), pair(a.d), pair(a.p), pair(a.output_padding)
    s = pair(a.s) if a.s is not None else k
    _check_window(a, k, s, p, d, out_pad)
    h, w = feat.spatial
    out = tuple(transposed_out(n, k[i], s[i], p[i], d[i], out_pad[i]) for i, n in enumerate((h, w)))
    if min(out) < 1:
        raise a.loc.error(f"conv_transpose with kernel {k[0]}x{k[1]}, stride {s[0]}, padding "
                          f"{p[0]} makes the {h}x{w} input {out[0]}x{out[1]}; use less padding")
    bias = a.bias if a.bias is not None else ctx.default("bias")
    if bias not in (True, False, None, "auto"):
        raise a.at("bias").error(f"bias must be true, false or auto, got {bias!r}")
    if bias in (None, "auto"):
        bias = a.norm == "none"
    check_norm(a, ctx, a.norm, cout)
    # An output pixel sees at most ceil((d*(k-1)+1)/s) input pixels along each axis; a stride s
    # divides the jump (kept a whole number of input pixels, as upsample does).
    taps = tuple(math.ceil((d[i] * (k[i] - 1) + 1) / s[i]) for i in range(2))
    rf = tuple(feat.rf[i] + (taps[i] - 1) * feat.jump[i] for i in range(2))
    jump = tuple(max(1, round(feat.jump[i] / s[i])) for i in range(2))
    node = ConvTransposeNode("conv_transpose", feat, Feat((cout, *out), rf, jump), a.loc,
                             info=f"{k[0]}x{k[1]}/{s[0]} up, {cout}")
    node.weights = cin * (cout // a.groups) * k[0] * k[1]
    node.params = node.weights + (cout if bias else 0) + norm_params(a.norm, cout)
    node.macs = node.weights * h * w
    node.cfg = dict(k=k, s=s, p=p, d=d, output_padding=out_pad, groups=a.groups, bias=bool(bias),
                    norm=a.norm, act=a.act, norm_kw=ctx.norm_kw(a.norm))
    return node
