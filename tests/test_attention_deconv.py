"""Two primitives: ``attention`` (multi-head self-attention over a map's positions) against torch's
nn.MultiheadAttention and timm's ViT Attention, and ``conv_transpose`` against nn.ConvTranspose2d:
outputs after port_weights from randomised references, shapes, params, MACs, receptive fields and
located errors."""
from __future__ import annotations

import pytest
import torch
from parity import assert_logits_match, count_params, poison, randomize, reference_macs
from test_errors import HEAD, expect_error
from timm.models.vision_transformer import Attention as TimmAttention
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import netspec

# -- attention ---------------------------------------------------------------------------------

C, H, W = 16, 4, 6          # a non-square map: a mix-up of height and width shows


def _attention_spec(**args) -> dict:
    """A 1x1 conv (so that a broken port of a conv shows too) and the attention."""
    return {"input": {"channels": 3, "size": [H, W]},
            "stem": [{"conv": {"c": C, "k": 1, "norm": "none", "act": "none"}}],
            "stages": [{"attention": args}]}


class PosEmbed(nn.Module):
    def __init__(self, tokens: int, channels: int):
        super().__init__()
        self.pos = nn.Parameter(torch.zeros(1, tokens, channels))


class TokensThrough(nn.Module):
    """The reference, by hand: a 1x1 conv, the map's positions as tokens (row-major), an optional
    learned position embedding, ``attn`` on the tokens, and back to a map."""

    def __init__(self, attn: nn.Module, pos: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(3, C, 1)
        self.pos = PosEmbed(H * W, C) if pos else None
        self.attn = attn

    def forward(self, x):
        x = self.conv(x)
        n, c, h, w = x.shape
        t = x.flatten(2).transpose(1, 2)
        if self.pos is not None:
            t = t + self.pos.pos
        if isinstance(self.attn, nn.MultiheadAttention):
            t = self.attn(t, t, t, need_weights=False)[0]
        else:
            t = self.attn(t)
        return t.transpose(1, 2).reshape(n, c, h, w)


# (id, our arguments, the reference's attention, learned pos)
ATTENTION_REFERENCES = [
    ("mha-1-head", {"heads": 1}, lambda: nn.MultiheadAttention(C, 1, batch_first=True), False),
    ("mha-4-heads", {"heads": 4}, lambda: nn.MultiheadAttention(C, 4, batch_first=True), False),
    ("mha-16-heads-pos", {"heads": 16, "pos": "learned"},
     lambda: nn.MultiheadAttention(C, 16, batch_first=True), True),
    ("timm-no-qkv-bias", {"heads": 2, "qkv_bias": False},
     lambda: TimmAttention(C, 2, qkv_bias=False), False),
]


@pytest.mark.parametrize("args, make_attn, pos", [c[1:] for c in ATTENTION_REFERENCES],
                         ids=[c[0] for c in ATTENTION_REFERENCES])
def test_attention_computes_what_torch_and_timm_attention_compute(args, make_attn, pos):
    """Ported from a randomised reference, the outputs agree relative to their scale."""
    spec = _attention_spec(**args)
    reference = randomize(TokensThrough(make_attn(), pos)).eval()
    model = poison(netspec.build(spec)).eval()
    assert count_params(model) == count_params(reference)
    netspec.port_weights(model, reference)
    x = torch.randn(3, 3, H, W, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours, theirs = model(x), reference(x)
    assert ours.shape == (3, C, H, W)
    assert_logits_match("attention", ours.flatten(1), theirs.flatten(1))


def _hand_params(c: int, tokens: int, qkv_bias=True, proj=True, pos=False) -> int:
    """q, k, v: c x c each (+ c biases); output projection c x c + c; an embedding per token."""
    return 3 * c * c + (3 * c if qkv_bias else 0) + (c * c + c if proj else 0) + \
        (tokens * c if pos else 0)


def _hand_macs(c: int, tokens: int, proj=True) -> int:
    """Each projection is a (tokens x c) @ (c x c) matmul; QK^T over all heads is
    (tokens x c) @ (c x tokens), AV is (tokens x tokens) @ (tokens x c)."""
    projections = (4 if proj else 3) * tokens * c * c
    return projections + tokens * tokens * c + tokens * tokens * c


@pytest.mark.parametrize("c, heads, size", [(16, 4, 4), (32, 8, [3, 5]), (12, 3, 7)])
def test_attention_counts_params_and_macs_as_nn_multihead_attention(c, heads, size):
    spec = {"input": {"channels": c, "size": size}, "stages": [{"attention": heads}]}
    report = netspec.analyze(spec)
    h, w = (size, size) if isinstance(size, int) else size
    tokens = h * w
    mha = nn.MultiheadAttention(c, heads, batch_first=True)
    assert report.params == count_params(mha) == _hand_params(c, tokens) == \
        count_params(netspec.build(spec))
    assert report.macs == _hand_macs(c, tokens)
    # torch's own count of the math path (training mode, attention weights returned)
    x = torch.zeros(1, tokens, c)
    with FlopCounterMode(display=False) as counter:
        mha.train()(x, x, x, need_weights=True)
    assert report.macs == counter.get_total_flops() // 2
    info = next(layer.info for layer in report.layers if layer.kind == "attention")
    assert info == f"{heads} heads, {tokens} tokens"


@pytest.mark.parametrize("args, kw", [({"qkv_bias": False}, {"qkv_bias": False}),
                                      ({"proj": False}, {"proj": False}),
                                      ({"pos": "learned"}, {"pos": True}),
                                      ({"proj": False, "qkv_bias": False, "pos": "learned"},
                                       {"proj": False, "qkv_bias": False, "pos": True})])
def test_attention_options_count_what_they_hold(args, kw):
    spec = {"input": {"channels": 8, "size": 3}, "stages": [{"attention": {"heads": 2, **args}}]}
    report = netspec.analyze(spec)
    assert report.params == _hand_params(8, 9, **kw) == count_params(netspec.build(spec))
    assert report.macs == _hand_macs(8, 9, proj=kw.get("proj", True))


def test_attention_without_projection_is_softmax_of_scaled_scores_times_values():
    """By hand, one head: softmax(q k^T / sqrt(d)) v with q, k, v the in_proj rows in order."""
    spec = {"input": {"channels": 6, "size": [2, 3]},
            "stages": [{"attention": {"heads": 1, "proj": False}}]}
    model = randomize(netspec.build(spec)).eval()
    (proj_w, proj_b), = [(m.weight, m.bias) for m in model.modules() if isinstance(m, nn.Linear)]
    x = torch.randn(2, 6, 2, 3, generator=torch.Generator().manual_seed(2))
    tokens = x.flatten(2).transpose(1, 2)
    q, k, v = (tokens @ proj_w.T + proj_b).split(6, dim=-1)
    want = torch.softmax(q @ k.transpose(1, 2) / 6 ** 0.5, -1) @ v
    with torch.no_grad():
        got = model(x).flatten(2).transpose(1, 2)
    assert_logits_match("attention", got.flatten(1), want.detach().flatten(1))


def test_attention_dropout_drops_weights_in_training_only():
    spec = _attention_spec(heads=2, dropout=0.5)
    dropped, plain = netspec.build(spec), netspec.build(_attention_spec(heads=2))
    plain.load_state_dict(dropped.state_dict())
    x = torch.randn(2, 3, H, W)
    with torch.no_grad():
        assert not torch.allclose(dropped.train()(x), dropped(x))
        assert torch.equal(dropped.eval()(x), plain.eval()(x))
        assert torch.equal(plain.train()(x), plain(x))    # no dropout: training is the same


@pytest.mark.parametrize("text, line, path, words", [
    ("stages:\n  - conv: {c: 6}\n  - attention: {heads: 4}\n", 5, "stages[1].attention.heads",
     ["4 heads", "divisible by 4", "got 6"]),
    ("stages:\n  - conv: {c: 6}\n  - attention: 4\n", 5, "stages[1].attention",
     ["divisible by 4"]),
    ("stages:\n  - attention: {heads: 0}\n", 4, "stages[0].attention.heads", ["at least 1 head"]),
    ("stages:\n  - attention: {heads: 3, dropout: 1.0}\n", 4, "stages[0].attention.dropout",
     ["dropout", "[0, 1)"]),
    ("stages:\n  - pool: global_avg\n  - attention: 1\n", 5, "stages[1].attention",
     ["CxHxW feature map", "flat vector"]),
], ids=["heads-not-dividing", "scalar-form", "no-heads", "dropout", "vector"])
def test_attention_bad_arguments_are_located(tmp_path, text, line, path, words):
    spec = tmp_path / "net.yaml"
    spec.write_text(HEAD + text)
    expect_error(spec, line, path, *words)


HYBRID = {
    "input": {"channels": 3, "size": 16}, "num_classes": 5,
    "defaults": {"norm": "bn", "act": "relu"},
    "stem": [{"conv": {"c": 16, "s": 2}}, {"conv": {"c": 32, "s": 2}}],
    "stages": [{"residual": {"body": [{"norm": "ln"},
                                      {"attention": {"heads": 4, "pos": "learned"}}]}}],
    "head": [{"pool": "global_avg"}, {"linear": "num_classes"}],
}


def test_hybrid_net_builds_analyzes_and_trains_its_attention():
    report = netspec.analyze(HYBRID)
    torch.manual_seed(0)
    model = netspec.build(HYBRID)
    assert report.params == count_params(model)
    convs = 3 * 16 * 9 * 8 * 8 + 16 * 32 * 9 * 4 * 4          # two 3x3 convs at 8x8 and 4x4
    assert report.macs == convs + _hand_macs(32, 16) + 32 * 5
    attn = next(m for m in model.modules() if type(m).__name__ == "MapSelfAttention")
    x = torch.randn(8, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    y = torch.arange(8) % 5
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(5):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model.train()(x), y)
        loss.backward()
        if not losses:
            for p in (attn.in_proj.weight, attn.out_proj.weight, attn.pos):
                assert p.grad is not None and p.grad.abs().max() > 0
        losses.append(loss.item())
        opt.step()
    assert losses[-1] < losses[0], losses


# -- conv_transpose ----------------------------------------------------------------------------

# (input [h, w], arguments) - the output size comes from torch's own module, not from a formula
SHAPES = [
    ([8, 8], {"k": 2, "s": 2}),
    ([8, 8], {"k": 2}),                                   # s defaults to k
    ([5, 5], {"k": 3}),
    ([8, 8], {"k": 4, "s": 2, "p": 1}),
    ([7, 7], {"k": 3, "s": 2, "p": 1}),
    ([7, 7], {"k": 3, "s": 2, "p": 1, "output_padding": 1}),
    ([5, 5], {"k": 3, "s": 1, "p": 1}),
    ([5, 5], {"k": 3, "s": 1}),
    ([4, 4], {"k": 5, "s": 3, "p": 2, "output_padding": 2}),
    ([6, 6], {"k": 3, "s": 2, "d": 2, "output_padding": 1}),
    ([5, 7], {"k": [2, 3], "s": [2, 1], "p": [0, 1]}),
    ([1, 1], {"k": 3, "s": 2}),
]


def _torch_conv_transpose(cin, cout, args) -> nn.ConvTranspose2d:
    k = args.get("k", 2)
    return nn.ConvTranspose2d(cin, cout, k, args.get("s", k), args.get("p", 0),
                              output_padding=args.get("output_padding", 0),
                              groups=args.get("groups", 1), dilation=args.get("d", 1),
                              bias=args.get("bias", True))


@pytest.mark.parametrize("size, args", SHAPES, ids=[str(i) for i in range(len(SHAPES))])
def test_conv_transpose_output_shape_is_torchs(size, args):
    spec = {"input": {"channels": 4, "size": size}, "stages": [{"conv_transpose": {"c": 6, **args}}]}
    want = tuple(_torch_conv_transpose(4, 6, args)(torch.zeros(1, 4, *size)).shape[1:])
    assert netspec.analyze(spec).output_shape == want
    with torch.no_grad():
        assert tuple(netspec.build(spec)(torch.zeros(2, 4, *size)).shape[1:]) == want


# (cin, cout, input size, arguments)
COUNTS = [
    (4, 6, 8, {"k": 2}),
    (8, 4, 5, {"k": 3, "s": 2, "p": 1, "output_padding": 1}),
    (8, 6, 6, {"k": 4, "s": 2, "p": 1, "groups": 2}),
    (6, 6, 4, {"k": 3, "s": 1, "bias": False}),
]


@pytest.mark.parametrize("cin, cout, size, args", COUNTS, ids=[str(i) for i in range(len(COUNTS))])
def test_conv_transpose_params_and_macs(cin, cout, size, args):
    spec = {"input": {"channels": cin, "size": size},
            "stages": [{"conv_transpose": {"c": cout, **args}}]}
    report = netspec.analyze(spec)
    k, groups = args["k"], args.get("groups", 1)
    # each of the size*size input pixels is multiplied by its cout/groups x k x k kernels
    weights = cin * (cout // groups) * k * k
    assert report.params == weights + (0 if args.get("bias") is False else cout)
    assert report.macs == weights * size * size
    ref = _torch_conv_transpose(cin, cout, args)
    assert report.params == count_params(ref) == count_params(netspec.build(spec))
    assert report.macs == reference_macs(ref, (cin, size, size))


def test_conv_transpose_with_norm_has_no_bias_by_default():
    spec = {"input": {"channels": 4, "size": 4},
            "stages": [{"conv_transpose": {"c": 8, "norm": "bn", "act": "relu"}}]}
    model = netspec.build(spec)
    assert netspec.analyze(spec).params == 4 * 8 * 4 + 2 * 8 == count_params(model)
    assert [type(m) for m in model.stages[0]] == [nn.ConvTranspose2d, nn.BatchNorm2d, nn.ReLU]


# (id, arguments, cin, the reference)
DECONV_REFERENCES = [
    ("k3s2-out-pad", {"c": 6, "k": 3, "s": 2, "p": 1, "output_padding": 1}, 8,
     lambda: nn.ConvTranspose2d(8, 6, 3, 2, 1, output_padding=1)),
    ("k4s2-groups-bn-relu", {"c": 6, "k": 4, "s": 2, "p": 1, "groups": 2, "norm": "bn",
                             "act": "relu"}, 8,
     lambda: nn.Sequential(nn.ConvTranspose2d(8, 6, 4, 2, 1, groups=2, bias=False),
                           nn.BatchNorm2d(6), nn.ReLU())),
    ("rect-dilated", {"c": 4, "k": [2, 3], "s": [2, 1], "p": [0, 1], "d": 2}, 3,
     lambda: nn.ConvTranspose2d(3, 4, (2, 3), (2, 1), (0, 1), dilation=2)),
]


@pytest.mark.parametrize("args, cin, make", [c[1:] for c in DECONV_REFERENCES],
                         ids=[c[0] for c in DECONV_REFERENCES])
def test_conv_transpose_computes_what_torch_computes(args, cin, make):
    spec = {"input": {"channels": cin, "size": [5, 6]}, "stages": [{"conv_transpose": args}]}
    reference = randomize(make()).eval()
    model = poison(netspec.build(spec)).eval()
    netspec.port_weights(model, reference)
    x = torch.randn(2, cin, 5, 6, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        assert_logits_match("conv_transpose", model(x).flatten(1), reference(x).flatten(1))


@pytest.mark.parametrize("size, up", [(16, {"k": 2}), (15, {"k": 3, "s": 2, "p": 1}),
                                      (16, {"k": 4, "s": 2, "p": 1})])
def test_decoder_returns_to_the_input_size(size, up):
    spec = {"input": {"channels": 3, "size": size}, "defaults": {"norm": "bn", "act": "relu"},
            "stem": [{"conv": {"c": 8, "s": 2}}],
            "stages": [{"conv_transpose": {"c": 3, **up}}]}
    assert netspec.analyze(spec).output_shape == (3, size, size)
    with torch.no_grad():
        assert netspec.build(spec).eval()(torch.randn(2, 3, size, size)).shape == (2, 3, size, size)


def _measured_rf(model: nn.Module, size: int, channels: int) -> int:
    """The widest span of input rows that a central output pixel depends on (all weights 1, so
    nothing cancels); over a 4x4 block of them, as pixels of a strided map see different spans."""
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(1.0)
    widest = 0
    middle = model(torch.zeros(1, channels, size, size)).shape[2] // 2
    for o in range(middle - 2, middle + 2):
        x = torch.zeros(1, channels, size, size, requires_grad=True)
        model(x)[0, 0, o, o].backward()
        rows = x.grad[0].abs().sum((0, 2)).nonzero().flatten()
        widest = max(widest, int(rows.max() - rows.min()) + 1)
    return widest


@pytest.mark.parametrize("layers", [
    [{"conv": {"c": 4, "s": 2}}, {"conv_transpose": {"k": 2}}, {"conv": {"k": 3}}],
    [{"conv": {"c": 4, "s": 2}}, {"conv_transpose": {"k": 4, "s": 2, "p": 1}}, {"conv": {"k": 3}}],
    [{"conv": {"c": 4, "s": 2}}, {"conv": {"s": 2}}, {"conv_transpose": {"k": 2}},
     {"conv": {"k": 3}}],
    [{"conv": {"c": 4, "s": 2}}, {"conv": {"s": 2}}, {"conv_transpose": {"k": 3, "s": 2}},
     {"conv": {"k": 3}}],
], ids=["k2", "k4p1", "two-down-k2", "two-down-k3"])
def test_conv_transpose_receptive_field_is_what_the_pixels_see(layers):
    """After downsampling, a stride-s transposed conv divides the jump: the layers after it see
    as many input pixels as the report says."""
    size = 40
    spec = {"input": {"channels": 1, "size": size},
            "defaults": {"norm": "none", "act": "none", "bias": False}, "stages": layers}
    report = netspec.analyze(spec)
    assert report.layers[-1].rf[0] == _measured_rf(netspec.build(spec), size, 1)


@pytest.mark.parametrize("text, line, path, words", [
    ("stages:\n  - conv_transpose: {c: 4, k: 3, s: 2, output_padding: 2}\n", 4,
     "stages[0].conv_transpose.output_padding", ["output padding 2", "smaller than the stride 2"]),
    ("stages:\n  - conv_transpose: {c: 4, k: 3, s: 1, p: 1, output_padding: 1}\n", 4,
     "stages[0].conv_transpose.output_padding", ["smaller than the stride 1"]),
    ("stages:\n  - pool: global_avg\n  - conv_transpose: {c: 4}\n", 5,
     "stages[1].conv_transpose", ["CxHxW feature map"]),
    ("stages:\n  - pool: {type: adaptive_avg, size: 1}\n  - conv_transpose: {c: 4, k: 1, p: 1}\n",
     5, "stages[1].conv_transpose", ["makes the 1x1 input -1x-1"]),
    ("stages:\n  - conv_transpose: {c: 4, groups: 2}\n", 4, "stages[0].conv_transpose.groups",
     ["groups=2 must divide", "(3)"]),
], ids=["out-pad-over-stride", "out-pad-at-stride-1", "vector", "too-small", "groups"])
def test_conv_transpose_bad_arguments_are_located(tmp_path, text, line, path, words):
    spec = tmp_path / "net.yaml"
    spec.write_text(HEAD + text)
    expect_error(spec, line, path, *words)
