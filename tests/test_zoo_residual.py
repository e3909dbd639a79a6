"""The residual family: ResNets, CIFAR ResNets, stochastic depth, pre-activation, wide, ResNeXt, SE.

Networks with a torchvision/timm twin are checked by ``check_parity`` (params, MACs, logits after
``port_weights``); the CIFAR networks of the papers, which have none, by their exact parameter
counts and by MACs measured on the built model itself.
"""
import pytest
import timm
import torch
import torchvision.models as tv
from parity import check_parity, count_params, reference_macs
from torch import nn

import netspec
from netspec.errors import SpecError, WeightsError
from netspec.ops.modules import DropPath, PadShortcut, Residual
from netspec.weights import _mismatch, _tensors

# spec -> (reference, test input size); ImageNet networks at 32x32 (their last maps are 1x1)
REFERENCES = {
    "resnet18": (lambda: tv.resnet18(), 32),
    "resnet34": (lambda: tv.resnet34(), 32),
    "resnet101": (lambda: tv.resnet101(), 32),
    "resnet152": (lambda: tv.resnet152(), 32),
    "resnext50_32x4d": (lambda: tv.resnext50_32x4d(), 32),
    "resnext101_32x8d": (lambda: tv.resnext101_32x8d(), 32),
    "wide_resnet50_2": (lambda: tv.wide_resnet50_2(), 32),
    "wide_resnet101_2": (lambda: tv.wide_resnet101_2(), 32),
    "seresnet50": (lambda: timm.create_model("seresnet50"), 32),
    "seresnext50_32x4d": (lambda: timm.create_model("legacy_seresnext50_32x4d"), 32),
    "resnetv2_50": (lambda: timm.create_model("resnetv2_50"), 32),
}
SLOW = {"wide_resnet101_2"}         # the heaviest: 127M parameters to initialize twice



@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n
                                  for n in REFERENCES])
def test_parity_with_reference(name):
    factory, size = REFERENCES[name]
    check_parity(name, factory(), size)


def test_every_reference_is_named_in_its_spec():
    for name in REFERENCES:
        spec = netspec.resolve(name).spec
        assert spec["reference"].split(".")[0] in ("torchvision", "timm"), name
    assert netspec.resolve("seresnext50_32x4d").spec["reference"] == \
        "timm.legacy_seresnext50_32x4d"


# -- CIFAR ResNets (He et al. 2016, section 4.2) ----------------------------------------------

CIFAR = {"resnet20": 269_722, "resnet56": 853_018, "resnet110": 1_727_962,
         "resnet1202": 19_421_274}


@pytest.mark.parametrize("name", sorted(CIFAR))
def test_cifar_resnet_params(name):
    report = netspec.analyze(name)
    assert report.input_shape == (3, 32, 32) and report.output_shape == (10,)
    assert report.params == CIFAR[name]


@pytest.mark.parametrize("name", ["resnet20", "resnet56",
                                  pytest.param("resnet1202", marks=pytest.mark.slow)])
def test_cifar_resnet_built_model_agrees_with_analysis(name):
    report = netspec.analyze(name)
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
    shortcuts = [m.shortcut for m in model.modules() if isinstance(m, Residual)]
    assert len(shortcuts) == 9
    assert sum(isinstance(s, PadShortcut) for s in shortcuts) == 2     # where the width doubles
    assert sum(p.numel() for s in shortcuts for p in s.parameters()) == 0
    pad = model.stages[1].block0.shortcut
    x = torch.randn(2, 16, 32, 32)
    y = pad(x)
    assert y.shape == (2, 32, 16, 16)
    assert torch.equal(y[:, 8:24], x[:, :, ::2, ::2])
    assert not y[:, :8].any() and not y[:, 24:].any()


# -- stochastic depth (Huang et al. 2016) -----------------------------------------------------

def test_stochastic_depth_survival_probabilities_are_the_papers():
    model = netspec.build("resnet110_sd")
    drops = [m for m in model.modules() if isinstance(m, DropPath)]
    blocks = [m for m in model.modules() if isinstance(m, Residual)]
    L = 54                                     # (110 - 2) / 2 residual blocks
    assert len(drops) == len(blocks) == L
    for i, (block, drop) in enumerate(zip(blocks, drops, strict=True), start=1):
        assert block.drop_path is drop
        assert 1 - drop.p == pytest.approx(1 - i / L * 0.5)          # p_l, p_L = 0.5
    assert drops[-1].p == pytest.approx(0.5)
    assert netspec.analyze("resnet110_sd").params == CIFAR["resnet110"]


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
    assert report.params == 1_703_258
    assert netspec.analyze("preact_resnet164", ["vars.layers=1001"]).params == 10_327_706
    model = netspec.build("preact_resnet164").eval()
    assert count_params(model) == report.params
    assert reference_macs(model, report.input_shape) == report.macs
    blocks = [m for m in model.modules() if isinstance(m, Residual)]
    assert len(blocks) == 54
    # identity units carry x; the 3 projection units read the shared BN-ReLU (pre)
    assert sum(not b.identity for b in blocks) == 3
    assert all(b.pre is not None for b in blocks)
    assert not any(isinstance(m, nn.Conv2d) and m.bias is not None for m in model.modules())


def test_wrn28_10():
    assert netspec.analyze("wrn28_10").params == 36_479_194
    # the paper's Table 4: WRN-40-4 8.9M, WRN-16-8 11.0M, WRN-22-8 17.2M, WRN-40-2 2.2M
    for (depth, k), millions in {(40, 4): 8.9, (16, 8): 11.0, (22, 8): 17.2,
                                 (40, 2): 2.2}.items():
        params = netspec.analyze("wrn28_10", [f"vars.layers={depth}", f"vars.k={k}"]).params
        assert round(params / 1e6, 1) == millions, (depth, k)
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
    assert _mismatch(_tensors(model), _tensors(ref)) is not None
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


def _randomize_bn(model):
    torch.manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            for t in (m.weight, m.bias, m.running_mean):
                nn.init.normal_(t)
            nn.init.uniform_(m.running_var, 0.5, 2.0)


@pytest.mark.parametrize("c_out", [4, 8])
def test_residual_pre_is_shared_with_a_projection_only(c_out):
    model = netspec.build(_unit(c_out)).eval()
    _randomize_bn(model)
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
    ref = _ShortcutFirst()
    _randomize_bn(ref)
    ref.train()
    stats = ref.norm.running_mean.clone()
    model = netspec.build(_unit(8))
    netspec.port_weights(model, ref)
    assert ref.training and model.training                 # modes restored
    assert torch.equal(ref.norm.running_mean, stats)       # the pairing pass left BN alone
    x = torch.randn(2, 4, 6, 6)
    with torch.no_grad():
        assert torch.allclose(model.eval()(x), ref.eval()(x), atol=1e-6)


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
