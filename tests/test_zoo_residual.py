"""The residual family: ResNets, CIFAR ResNets, stochastic depth, pre-activation, wide, ResNeXt, SE.

Networks with a torchvision/timm twin are checked by ``check_parity`` (params, MACs, logits after
``port_weights``); the CIFAR networks of the papers, which have none, by counts derived here from
their papers' architectures and by MACs measured on the built model itself.
"""
import pytest
import timm
import torch
import torchvision.models as tv
import zoo_proofs
from parity import assert_logits_match, check_parity, count_params, randomize, reference_macs, tensor_shapes
from torch import nn

import netspec
from netspec.errors import SpecError, WeightsError


@pytest.mark.parametrize("proof", zoo_proofs.params("test_zoo_residual.py::test_parity_with_reference"))
def test_parity_with_reference(proof):
    check_parity(proof.spec, proof.make, proof.size, proof.overrides)


def _is(module: nn.Module, kind: str) -> bool:
    return type(module).__name__ == kind


def _residuals(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if _is(m, "Residual")]


# -- counts derived from the papers -------------------------------------------------------------

def _conv_bn(c_in, c_out, k=3):
    """A convolution without bias, then BN's scale and shift."""
    return k * k * c_in * c_out + 2 * c_out


def cifar_resnet_params(n: int, widths=(16, 32, 64), classes=10) -> int:
    """He et al. 2016, Sec. 4.2: a 3x3 conv of 16 filters, then 3 stages of n units of two 3x3
    convs with 16, 32, 64 filters, BN after each conv, option A shortcuts (identity, zero-padded:
    no parameters), global average pooling and a 10-way FC: 6n + 2 layers."""
    total, c = _conv_bn(3, widths[0]), widths[0]
    for width in widths:
        for _ in range(n):
            total += _conv_bn(c, width) + _conv_bn(width, width)
            c = width
    return total + c * classes + classes


def preact_resnet_params(n: int, widths=(64, 128, 256), classes=10) -> int:
    """He et al. 2016b, Sec. 4 (CIFAR): a 3x3 conv of 16 filters, then 3 stages of n bottleneck
    units BN-ReLU-1x1 c/4, BN-ReLU-3x3 c/4, BN-ReLU-1x1 c (c = 64, 128, 256), a 1x1 projection
    where the width changes, a final BN-ReLU and the FC: 9n + 2 layers, no biases."""
    total, c = 3 * 16 * 9, 16
    for width in widths:
        mid = width // 4
        for _ in range(n):
            total += 2 * c + c * mid + 2 * mid + 9 * mid * mid + 2 * mid + mid * width
            total += c * width if c != width else 0
            c = width
    return total + 2 * c + c * classes + classes


def wrn_params(N: int, k: int, classes=10) -> int:
    """Zagoruyko & Komodakis 2016, Table 1: a 3x3 conv of 16, then conv2-4 of N pre-activation
    B(3,3) blocks 16k, 32k, 64k wide (BN-ReLU-3x3, BN-ReLU-3x3), a 1x1 projection where the width
    changes, a final BN-ReLU and the FC: 6N + 4 layers, no biases."""
    total, c = 3 * 16 * 9, 16
    for width in (16 * k, 32 * k, 64 * k):
        for _ in range(N):
            total += 2 * c + 9 * c * width + 2 * width + 9 * width * width
            total += c * width if c != width else 0
            c = width
    return total + 2 * c + c * classes + classes


# spec -> count derived from its paper's architecture; depth -> n of the 6n+2, 9n+2, 6N+4 rule
DERIVED_COUNTS = {
    "resnet20": cifar_resnet_params((20 - 2) // 6), "resnet56": cifar_resnet_params((56 - 2) // 6),
    "resnet110": cifar_resnet_params((110 - 2) // 6),
    "resnet1202": cifar_resnet_params((1202 - 2) // 6),
    "resnet110_sd": cifar_resnet_params((110 - 2) // 6),      # stochastic depth adds none
    "preact_resnet164": preact_resnet_params((164 - 2) // 9),
    "wrn28_10": wrn_params((28 - 4) // 6, 10),
}


@pytest.mark.parametrize("proof", zoo_proofs.params("test_zoo_residual.py::test_count_derived"))
def test_count_derived(proof):
    count = DERIVED_COUNTS[proof.spec]
    assert netspec.analyze(proof.spec).params == count
    assert not proof.printed or proof.rounds_to_printed(count), (count, proof.printed)


def test_the_other_cifar_resnets_are_table_6s_millions():
    """He et al. 2016, Table 6: ResNet-32 0.46M, ResNet-44 0.66M (the shipped depths are claims)."""
    for depth, millions in {32: 0.46, 44: 0.66}.items():
        count = cifar_resnet_params((depth - 2) // 6)
        assert round(count / 1e6, 2) == millions, depth
        assert netspec.analyze("resnet20", [f"vars.layers={depth}"]).params == count, depth


def test_wide_resnets_are_table_4s_millions():
    """Zagoruyko & Komodakis 2016, Table 4: WRN-40-4 8.9M, WRN-16-8 11.0M, WRN-22-8 17.2M,
    WRN-40-2 2.2M (WRN-28-10's 36.5M is its claim's)."""
    for (depth, k), millions in {(40, 4): 8.9, (16, 8): 11.0, (22, 8): 17.2, (40, 2): 2.2}.items():
        assert round(wrn_params((depth - 4) // 6, k) / 1e6, 1) == millions, (depth, k)
        params = netspec.analyze("wrn28_10", [f"vars.layers={depth}", f"vars.k={k}"]).params
        assert params == wrn_params((depth - 4) // 6, k), (depth, k)


@pytest.mark.parametrize("name", ["resnet20", "resnet56",
                                  pytest.param("resnet1202", marks=pytest.mark.slow)])
def test_cifar_resnet_built_model_agrees_with_analysis(name):
    report = netspec.analyze(name)
    assert report.input_shape == (3, 32, 32) and report.output_shape == (10,)
    model = netspec.build(name).eval()
    assert count_params(model) == report.params
    assert reference_macs(model, report.input_shape) == report.macs


def test_cifar_depth_is_one_variable():
    # 6n + 2 layers: ResNet-32 and -44 of the paper's Table 6 are resnet20 with another depth
    assert netspec.analyze("resnet20", ["vars.layers=32"]).params == 464_154
    assert netspec.analyze("resnet20", ["vars.layers=44"]).params == 658_586
    convs = [lay for lay in netspec.analyze("resnet56").layers if lay.kind == "conv"]
    assert len(convs) == 55                       # + the classifier: 56 weighted layers
    with pytest.raises(SpecError, match="whole number"):
        netspec.analyze("resnet20", ["vars.layers=21"])


def test_option_a_shortcut_subsamples_and_zero_pads():
    model = netspec.build("resnet20").eval()
    shortcuts = [m.shortcut for m in _residuals(model)]
    assert len(shortcuts) == 9
    assert sum(_is(s, "PadShortcut") for s in shortcuts) == 2           # where the width doubles
    assert sum(p.numel() for s in shortcuts for p in s.parameters()) == 0
    pad = model.stages[1].block0.shortcut
    x = torch.randn(2, 16, 32, 32)
    y = pad(x)
    assert y.shape == (2, 32, 16, 16)
    assert torch.equal(y[:, 8:24], x[:, :, ::2, ::2])
    assert not y[:, :8].any() and not y[:, 24:].any()


# -- stochastic depth (Huang et al. 2016) -----------------------------------------------------

@pytest.mark.parametrize("proof", zoo_proofs.params("test_zoo_residual.py::test_stochastic_depth_survival"))
def test_stochastic_depth_survival(proof):
    """Huang et al. 2016, Eq. 4: block l of L survives with p_l = 1 - l / L (1 - p_L), p_L = 0.5."""
    model = netspec.build(proof.spec)
    drops = [m for m in model.modules() if _is(m, "DropPath")]
    blocks = _residuals(model)
    L = 54                                     # (110 - 2) / 2 residual blocks
    assert len(drops) == len(blocks) == L
    for i, (block, drop) in enumerate(zip(blocks, drops, strict=True), start=1):
        assert block.drop_path is drop
        assert 1 - drop.p == pytest.approx(1 - i / L * 0.5)          # p_l, p_L = 0.5
    assert drops[-1].p == pytest.approx(0.5)


def test_stochastic_depth_runs_the_whole_network_at_test_time():
    sd = netspec.build("resnet110_sd")
    plain = netspec.build("resnet110")
    plain.load_state_dict(sd.state_dict())
    x = torch.randn(2, 3, 32, 32)
    sd.eval()
    plain.eval()
    with torch.no_grad():
        a, b, ref = sd(x), sd(x), plain(x)
    assert torch.equal(a, b)                              # deterministic
    assert torch.allclose(a, ref, atol=1e-5)              # every block, undropped
    sd.train()
    with torch.no_grad():
        torch.manual_seed(1)
        t1 = sd(x)
        torch.manual_seed(2)
        t2 = sd(x)
    assert not torch.allclose(t1, t2)                     # training drops blocks at random


# -- pre-activation and wide ------------------------------------------------------------------

def test_preact_resnet164():
    report = netspec.analyze("preact_resnet164")
    # ResNet-1001 (n = 111) by the same count: 10.33M (the paper's Table 2 prints 10.2M)
    assert netspec.analyze("preact_resnet164", ["vars.layers=1001"]).params == \
        preact_resnet_params(111)
    model = netspec.build("preact_resnet164").eval()
    assert count_params(model) == report.params
    assert reference_macs(model, report.input_shape) == report.macs
    blocks = _residuals(model)
    assert len(blocks) == 54
    # identity units carry x; the 3 projection units read the shared BN-ReLU (pre)
    assert sum(not b.identity for b in blocks) == 3
    assert all(b.pre is not None for b in blocks)
    assert not any(isinstance(m, nn.Conv2d) and m.bias is not None for m in model.modules())


def test_wrn_builds_and_agrees_with_its_analysis():
    small = ["vars.layers=16", "vars.k=2"]
    report = netspec.analyze("wrn28_10", small)
    model = netspec.build("wrn28_10", small).eval()
    assert count_params(model) == report.params
    assert reference_macs(model, report.input_shape) == report.macs
    drop = netspec.build("wrn28_10", [*small, "vars.dropout=0.3"])
    assert sum(isinstance(m, nn.Dropout) for m in drop.modules()) == 6
    assert count_params(drop) == report.params


def test_resnetv2_shortcut_reads_the_pre_activation():
    """timm's PreActBottleneck registers its projection before the pre-activation that feeds it:
    the state_dict orders differ and port_weights pairs the tensors in the order they run."""
    model = netspec.build("resnetv2_50", ["input.size=32"])
    ref = timm.create_model("resnetv2_50")
    def matrices(m):        # timm's classifier is a 1x1 conv, ours a linear layer: the same matrix
        return [s[:2] if s[2:] == (1, 1) else s for s in tensor_shapes(m)]
    ours, theirs = matrices(model), matrices(ref)
    assert ours != theirs and sorted(ours) == sorted(theirs)     # the same tensors, reordered
    unit = model.stages[0].block0
    assert unit.pre is not None and not unit.identity
    assert model.stages[0].block1.identity


# -- the language: residual `pre` -------------------------------------------------------------

def _unit(c_out: int) -> dict:
    return {"input": {"channels": 4, "size": 6}, "defaults": {"norm": "bn", "act": "relu"},
            "stages": [{"residual": {
                "pre": ["norm", "act"],
                "body": [{"conv": {"c": c_out, "k": 3, "norm": "none", "act": "none",
                                   "bias": False}}]}}]}


@pytest.mark.parametrize("c_out", [4, 8])
def test_residual_pre_is_shared_with_a_projection_only(c_out):
    model = randomize(netspec.build(_unit(c_out))).eval()
    unit = model.stages[0]
    x = torch.randn(2, 4, 6, 6)
    with torch.no_grad():
        p = unit.pre(x)
        expected = unit.body(p) + (x if c_out == 4 else unit.shortcut(p))
        assert torch.allclose(model(x), expected)
    if c_out == 8:       # the projection after a pre-activation is a bare 1x1 conv
        assert isinstance(unit.shortcut, nn.Conv2d) and unit.shortcut.bias is None
        assert netspec.analyze(_unit(8)).params == 2 * 4 + 8 * 4 * 9 + 8 * 4


# -- port_weights -------------------------------------------------------------------------------

class _ShortcutFirst(nn.Module):
    """Registers the projection before the pre-activation that feeds it, as timm does."""

    def __init__(self):
        super().__init__()
        self.downsample = nn.Conv2d(4, 8, 1, bias=False)
        self.norm = nn.BatchNorm2d(4)
        self.conv = nn.Conv2d(4, 8, 3, padding=1, bias=False)

    def forward(self, x):
        p = torch.relu(self.norm(x))
        shortcut = self.downsample(p)
        return self.conv(p) + shortcut


def test_port_weights_pairs_in_forward_order_when_registration_differs():
    ref = randomize(_ShortcutFirst())
    ref.train()
    stats = ref.norm.running_mean.clone()
    model = netspec.build(_unit(8))
    netspec.port_weights(model, ref)
    assert ref.training and model.training                 # modes restored
    assert torch.equal(ref.norm.running_mean, stats)       # the pairing pass left BN alone
    x = torch.randn(2, 4, 6, 6)
    with torch.no_grad():
        assert_logits_match("_ShortcutFirst", model.eval()(x), ref.eval()(x))


def test_port_weights_error_names_both_sides():
    model = netspec.build("resnet18", ["input.size=32", "num_classes=10"])
    with pytest.raises(WeightsError) as e:
        netspec.port_weights(model, tv.resnet18())
    msg = str(e.value)
    assert "model 'head.linear1.weight' is 10x512" in msg
    assert "reference 'fc.weight' is 1000x512" in msg
    assert "forward order" in msg
    longer = nn.Sequential(tv.resnet18(), nn.Linear(1000, 10))
    expected = (r"the model has 102 tensors and the reference 104; "
                r"the first unmatched one is reference '1.weight' \(10x1000\)")
    with pytest.raises(WeightsError, match=expected):
        netspec.port_weights(netspec.build("resnet18", ["input.size=32"]), longer)
