"""EfficientNetV2 S, M and L (Tan & Le 2021) and its fused_mbconv block.

Each network is checked against torchvision's (parameters, MACs, logits after port_weights from
the randomised reference), S's count also against one derived here from the paper's Table 4,
and the block on a small network of its own: what t == 1 leaves out, when it adds its input.
"""
import pytest
import torch
import torchvision.models as tv
import zoo_proofs
from parity import check_parity
from torch import nn

import netspec

PARITY_T = "test_zoo_efficientnet_v2.py::test_parity"
DERIVED_T = "test_zoo_efficientnet_v2.py::test_count_derived"

@pytest.mark.parametrize("proof", zoo_proofs.params(PARITY_T))
def test_parity(proof):
    check_parity(proof.spec, proof.make, proof.size, proof.overrides)


# -- EfficientNetV2-S against the paper's Table 4 ---------------------------------------------------

# Table 4: operator, expansion t, kernel k, stride s, channels c, layers n (stage 0: the stem)
TABLE4 = [("conv", None, 3, 2, 24, 1),
          ("fused_mbconv", 1, 3, 1, 24, 2),
          ("fused_mbconv", 4, 3, 2, 48, 4),
          ("fused_mbconv", 4, 3, 2, 64, 4),
          ("mbconv", 4, 3, 2, 128, 6),       # SE0.25
          ("mbconv", 6, 3, 1, 160, 9),       # SE0.25
          ("mbconv", 6, 3, 2, 256, 15)]      # SE0.25
HEAD, CLASSES = 1280, 1000                   # stage 7: Conv1x1 & Pooling & FC


def _conv_bn(cin, cout, k, groups=1):
    """(parameters, BN channels) of a bias-free conv and its BN."""
    return cin // groups * cout * k * k + 2 * cout, cout


def _block(op, t, k, cin, c):
    e = cin * t
    if op == "fused_mbconv":
        parts = [_conv_bn(cin, c, k)] if t == 1 else [_conv_bn(cin, e, k), _conv_bn(e, c, 1)]
    else:
        sq = cin // 4                        # SE0.25 of the block's input, as the official code
        se = (e * sq + sq + sq * e + e, 0)   # two 1x1 convs with biases
        parts = [_conv_bn(cin, e, 1), _conv_bn(e, e, k, groups=e), se, _conv_bn(e, c, 1)]
    return tuple(map(sum, zip(*parts)))


def table4_count() -> tuple[int, int]:
    """(parameters, BN channels) of EfficientNetV2-S from Table 4."""
    (_, _, k, _, cin, _), *rows = TABLE4
    params, bn = _conv_bn(3, cin, k)
    for op, t, k, _, c, n in rows:
        for _ in range(n):
            p, b = _block(op, t, k, cin, c)
            params, bn, cin = params + p, bn + b, c
    p, b = _conv_bn(cin, HEAD, 1)
    return params + p + HEAD * CLASSES + CLASSES, bn + b


@pytest.mark.parametrize("proof", zoo_proofs.params(DERIVED_T))
def test_count_derived(proof):
    params, bn_channels = table4_count()
    assert netspec.analyze(proof.spec).params == params
    # the paper's figure counts TF's variables: BN's running mean and variance are two more per
    # channel (21.46M alone would print as 21M)
    assert proof.rounds_to_printed(params + 2 * bn_channels)
    assert not proof.rounds_to_printed(params)


# -- what the specs take from torchvision ---------------------------------------------------------

@pytest.mark.parametrize("name", ["efficientnet_v2_s", "efficientnet_v2_m", "efficientnet_v2_l"])
def test_norm_eps_dropout_and_drop_path_schedule_are_torchvisions(name):
    with torch.device("meta"):                      # structure only: no weights allocated
        model, ref = netspec.build(name, ["input.size=32"]), getattr(tv, name)()
    assert {m.eps for m in model.modules() if isinstance(m, nn.BatchNorm2d)} == {1e-3}
    assert [m.p for m in model.modules() if isinstance(m, nn.Dropout)] == [ref.classifier[0].p]
    # every block with a shortcut, in order: its stochastic-depth rate (0.2 * i / all blocks)
    ours = [getattr(m.drop_path, "p", 0.0)        # an Identity where the rate is 0
            for m in model.modules() if type(m).__name__ == "Residual"]
    theirs = [m.stochastic_depth.p for m in ref.modules()
              if type(m).__name__ in ("MBConv", "FusedMBConv") and m.use_res_connect]
    assert ours == pytest.approx(theirs)


# -- the fused_mbconv block -----------------------------------------------------------------------

def _net(**block) -> dict:
    return {"input": {"channels": 3, "size": 8}, "num_classes": 4,
            "defaults": {"norm": "bn", "act": "silu"},
            "stem": [{"conv": {"c": 8, "k": 3}}],
            "stages": [{"fused_mbconv": block}]}


def _convs(block: nn.Module) -> list[tuple]:
    return [(m.in_channels, m.out_channels, m.kernel_size, m.stride)
            for m in block.modules() if isinstance(m, nn.Conv2d)]


def _leaves(block: nn.Module) -> list[type]:
    return [type(m) for m in block.modules() if not list(m.children())]


def test_fused_mbconv_expands_with_its_kxk_conv_and_projects_with_a_linear_1x1():
    block = netspec.build(_net(t=4, c=16, k=5, s=2)).stages[0]
    assert _convs(block) == [(8, 32, (5, 5), (2, 2)), (32, 16, (1, 1), (1, 1))]   # 32: 8 * t
    assert _leaves(block) == [nn.Conv2d, nn.BatchNorm2d, nn.SiLU, nn.Conv2d, nn.BatchNorm2d]


def test_fused_mbconv_t1_is_one_kxk_conv_with_its_activation():
    block = netspec.build(_net(t=1, c=12, k=5)).stages[0]
    assert _convs(block) == [(8, 12, (5, 5), (1, 1))]                 # no expansion conv
    assert _leaves(block) == [nn.Conv2d, nn.BatchNorm2d, nn.SiLU]
    stem = 3 * 8 * 9 + 2 * 8
    assert netspec.analyze(_net(t=1, c=12, k=5)).params == stem + 8 * 12 * 25 + 2 * 12


def test_fused_mbconv_se_squeezes_its_input_channels():
    report = netspec.analyze(_net(t=4, c=8, se=0.25))
    assert [lay.kind for lay in report.layers[1:]] == ["conv", "se", "conv"]
    assert report.layers[2].info == "32->2->32"                        # floor(8 * 0.25)


@pytest.mark.parametrize("t", [1, 4])
def test_fused_mbconv_adds_its_input_at_stride_1_and_equal_channels(t):
    block = netspec.build(_net(t=t, c=8)).stages[0].eval()
    x = torch.randn(2, 8, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(block(x.clone()), block.body(x.clone()) + x, atol=1e-6)


@pytest.mark.parametrize("changed", [{"s": 2}, {"c": 16}])
def test_fused_mbconv_has_no_shortcut_where_shapes_change(changed):
    block = netspec.build(_net(t=4, **{"c": 8, **changed})).stages[0]
    assert not hasattr(block, "shortcut") and len(_convs(block)) == 2
