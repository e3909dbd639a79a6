"""The efficient family: MobileNet v1/v2/v3, MnasNet, ShuffleNet v1/v2 and EfficientNet B1-B7.

Every network with a torchvision/timm twin is checked against it (parameters, MACs, logits after
port_weights); the paper-only ones against the papers' tables (seed 002 for MobileNet v1 and the
ShuffleNet figures quoted in MobileNetV2's comparison table).
"""
import pytest
import timm
import torch
import torchvision.models as tv
import zoo_proofs
from parity import assert_params_and_macs, check_parity, count_params, reference_macs
from torch import nn

import netspec

M = 1e6


def conv_macs(report) -> int:
    return sum(layer.macs for layer in report.layers if layer.kind == "conv")


# -- MobileNet v1 (Howard et al. 2017) -------------------------------------------------------------

# Table 6 (width multiplier at 224) and Table 7 (resolution at width 1.0): million mult-adds and
# million parameters as the paper prints them
TABLE6 = {1.0: (569, 4.2), 0.75: (325, 2.6), 0.5: (149, 1.3), 0.25: (41, 0.5)}
TABLE7 = {224: 569, 192: 418, 160: 290, 128: 186}


@pytest.mark.parametrize("proof", zoo_proofs.params("test_zoo_efficient.py::test_mobilenet_v1_tables"))
def test_mobilenet_v1_tables(proof):
    for width, (macs, params) in TABLE6.items():
        report = netspec.analyze(proof.spec, [f"scale.width={width}"])
        assert abs(report.macs / M - macs) <= 0.01 * macs, width
        assert round(report.params / M, 1) == params, width
        # plain channels * alpha (the paper) and multiples of 8 (timm) agree at these widths
        assert netspec.analyze(proof.spec, [f"scale.width={width}", "scale.divisor=8"]).macs \
            == report.macs, width
    for size, macs in TABLE7.items():
        report = netspec.analyze(proof.spec, [f"input.size={size}"])
        assert abs(report.macs / M - macs) <= 0.01 * macs, size
        assert round(report.params / M, 1) == 4.2, size
    # timm's mobilenetv1_100 is this network with ReLU6: the same parameters
    assert netspec.analyze(proof.spec).params == count_params(timm.create_model("mobilenetv1_100"))


def test_mobilenet_v1_uses_relu():
    acts = {type(m) for m in netspec.build("mobilenet_v1", ["input.size=32"]).modules()}
    assert nn.ReLU in acts and nn.ReLU6 not in acts


def test_mobilenetv1_width_rounding_is_timms():
    ref = timm.create_model("mobilenetv1_125")
    report = netspec.analyze("mobilenetv1_100", ["scale.width=1.25", "input.size=32"])
    assert report.params == count_params(ref)


# -- every network with a torchvision/timm twin --------------------------------------------------

@pytest.mark.parametrize("proof", zoo_proofs.params("test_zoo_efficient.py::test_parity"))
def test_parity(proof):
    check_parity(proof.spec, proof.make, proof.size, proof.overrides)


@pytest.mark.parametrize("name", ["mobilenet_v3_large", "mobilenet_v3_small"])
def test_mobilenet_v3_uses_torchvisions_norm_and_gates(name):
    model = netspec.build(name, ["input.size=32"])
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert {(m.eps, m.momentum) for m in bns} == {(0.001, 0.01)}
    assert any(isinstance(m, nn.Hardsigmoid) for m in model.modules())


@pytest.mark.parametrize("width", [0.5, 0.75])
def test_mobilenet_v3_width_multiplier(width):
    for name in ("mobilenet_v3_large", "mobilenet_v3_small"):
        ref = getattr(tv, name)(width_mult=width)
        assert netspec.analyze(name, [f"scale.width={width}"]).params == count_params(ref)


@pytest.mark.parametrize("name,width", [("mnasnet0_5", 0.5), ("mnasnet1_3", 1.3)])
def test_mnasnet_width_multiplier(name, width):
    ref = getattr(tv, name)()
    report = netspec.analyze("mnasnet1_0", [f"scale.width={width}", "input.size=32"])
    assert report.params == count_params(ref)
    assert report.macs == reference_macs(ref.eval(), (3, 32, 32))


def test_mnasnet_bn_momentum_is_tensorflows():
    model = netspec.build("mnasnet1_0", ["input.size=32"])
    momenta = {m.momentum for m in model.modules() if isinstance(m, nn.BatchNorm2d)}
    assert len(momenta) == 1 and momenta.pop() == pytest.approx(1 - 0.9997)


# -- ShuffleNet v1 (Zhang et al. 2017) -------------------------------------------------------------

# Table 1's complexity row (1x, 224): MFLOPs (mult-adds) per number of groups. It counts the
# convolutions only: with the FC layer (0.6-1.5 M) g = 4 and 8 would be 1% over.
TABLE1 = {1: 143, 2: 140, 3: 137, 4: 133, 8: 137}
# g = 3 at every size: Table 1 (1x), Table 2 (0.5x: 38, 0.25x: 13) and the ShuffleNet (1.5) and
# (x2) rows of MobileNetV2's comparison in seed 002 (292 M, 524 M); all count the FC layer and are
# printed in whole MFLOPs. (Table 2 prints "140" for the whole 1x row: that is g = 2's figure.)
G3_SIZES = {0.25: 13, 0.5: 38, 1.0: 137, 1.5: 292, 2.0: 524}


@pytest.mark.parametrize("proof", zoo_proofs.params("test_zoo_efficient.py::test_shufflenet_v1_tables"))
def test_shufflenet_v1_tables(proof):
    for g, macs in TABLE1.items():
        report = netspec.analyze(proof.spec, [f"vars.g={g}"])
        assert abs(conv_macs(report) / M - macs) <= 0.005 * macs, g
        assert abs(report.macs / M - macs) <= 0.011 * macs, g
    for scale, macs in G3_SIZES.items():
        report = netspec.analyze(proof.spec, [f"vars.scale={scale}"])
        assert round(report.macs / M) == macs, scale
    # seed 002: "ShuffleNet (1.5) 3.4M 292M", "ShuffleNet (x2) 5.4M 524M"
    for scale, macs, params in ((1.5, 292, 3.4), (2.0, 524, 5.4)):
        report = netspec.analyze(proof.spec, [f"vars.scale={scale}"])
        assert abs(report.macs / M - macs) <= 0.01 * macs, scale
        assert round(report.params / M, 1) == params, scale
    assert round(netspec.analyze(proof.spec).macs / M, 1) == 137.5    # g = 3, 1x: the table's row


@pytest.mark.parametrize("g", [1, 2, 3, 4, 8])
def test_shufflenet_v1_every_group_and_size_resolves(g):
    for scale in (0.25, 0.5, 1.0, 1.5, 2.0):
        netspec.analyze("shufflenet_v1", [f"vars.g={g}", f"vars.scale={scale}"])


def test_shufflenet_v1_units():
    report = netspec.analyze("shufflenet_v1", ["vars.g=8", "vars.scale=0.5"])
    convs = [lay for lay in report.layers if lay.kind == "conv"]
    first_unit = [lay for lay in convs if lay.name.startswith("stages.0.")]
    assert first_unit[0].info == "1x1/1, 48"            # stage 2's first 1x1: not grouped
    assert first_unit[2].info == "1x1/1 g8, 176"        # 192 - 16 channels beside the shortcut
    assert [lay for lay in convs if lay.name.startswith("stages.1.")][0].info == "1x1/1 g8, 48"
    kinds = [lay.kind for lay in report.layers if lay.name.startswith("stages.0.")]
    assert kinds == ["pool", "conv", "conv", "conv", "act"]   # avg-pooled shortcut; no shuffle
    kinds = [lay.kind for lay in report.layers if lay.name.startswith("stages.1.block0.")]
    assert kinds == ["conv", "shuffle", "conv", "conv", "act"]  # identity shortcut, shuffle
    model = netspec.build("shufflenet_v1", ["vars.g=8", "vars.scale=0.5", "input.size=32"])
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 1000)


# -- ShuffleNet v2, EfficientNet B1-B7 (torchvision) -----------------------------------------------

def test_shufflenet_v2_variants_are_thin():
    for size in ("0_5", "1_5", "2_0"):
        spec = netspec.resolve(f"shufflenet_v2_x{size}").spec
        assert spec["reference"] == f"torchvision.shufflenet_v2_x{size}"


EFFICIENTNET = {  # width, depth, resolution, dropout (torchvision's table) and parameters
    "efficientnet_b0": (1.0, 1.0, 224, 0.2, 5_288_548),
    "efficientnet_b1": (1.0, 1.1, 240, 0.2, 7_794_184),
    "efficientnet_b2": (1.1, 1.2, 260, 0.3, 9_109_994),
    "efficientnet_b3": (1.2, 1.4, 300, 0.3, 12_233_232),
    "efficientnet_b4": (1.4, 1.8, 380, 0.4, 19_341_616),
    "efficientnet_b5": (1.6, 2.2, 456, 0.4, 30_389_784),
    "efficientnet_b6": (1.8, 2.6, 528, 0.5, 43_040_704),
    "efficientnet_b7": (2.0, 3.1, 600, 0.5, 66_347_960),
}


@pytest.mark.parametrize("name", sorted(EFFICIENTNET))
def test_efficientnet_published_table(name):
    width, depth, size, dropout, params = EFFICIENTNET[name]
    spec = netspec.resolve(name).spec
    assert spec["scale"]["width"] == width and spec["scale"]["depth"] == depth
    assert spec["vars"]["dropout"] == dropout
    report = netspec.analyze(name)
    assert report.input_shape == (3, size, size)
    assert report.params == params
    drop = [m.p for m in netspec.build(name, ["input.size=32"]).modules()
            if isinstance(m, nn.Dropout)]
    assert drop == [dropout]


@pytest.mark.parametrize("name", ["efficientnet_b4", "efficientnet_b5", "efficientnet_b6",
                                  "efficientnet_b7"])
def test_big_efficientnets_params_and_macs(name):
    """What check_parity's slow logits test checks first, here in the default run."""
    with torch.device("meta"):
        assert_params_and_macs(name, getattr(tv, name)().eval())


def test_efficientnet_drop_path_schedule_follows_depth():
    model = netspec.build("efficientnet_b3", ["input.size=32"])
    ours = [m.p for m in model.modules() if type(m).__name__ == "DropPath"]
    ref = [m.stochastic_depth.p for m in tv.efficientnet_b3().modules()
           if type(m).__name__ == "MBConv" and m.use_res_connect]
    assert ours == pytest.approx(ref)


# -- compound scaling (scale.phi) on any spec ------------------------------------------------------

@pytest.mark.parametrize("name", ["resnet50", "efficientnet_b0", "mobilenet_v2"])
def test_compound_scaling_phi_is_alpha_beta_gamma(name):
    base = netspec.analyze(name)
    phi = netspec.analyze(name, ["scale.phi=1"])
    explicit = netspec.analyze(name, ["scale.depth=1.2", "scale.width=1.1", "input.size=258"])
    assert phi.input_shape == explicit.input_shape == (3, 258, 258)    # 224 * 1.15
    assert (phi.params, phi.macs) == (explicit.params, explicit.macs)
    assert phi.params > base.params and phi.macs > 1.5 * base.macs


def test_compound_scaling_custom_coefficients():
    phi = netspec.analyze("resnet50", ["scale.phi=2", "scale.alpha=1.0", "scale.beta=1.0",
                                       "scale.gamma=1.0"])
    assert (phi.params, phi.macs) == (netspec.analyze("resnet50").params,
                                      netspec.analyze("resnet50").macs)


# -- the language features these specs use ---------------------------------------------------------

def test_table_lookup_says_which_keys_exist():
    with pytest.raises(netspec.SpecError, match=r"no entry 5 in the table \(its keys: 1, 2, 3"):
        netspec.analyze("shufflenet_v1", ["vars.g=5"])


def test_a_name_argument_may_be_an_expression():
    def net(s):
        return {"vars": {"s": s}, "stem": [{"conv": {"c": 8}}, {"branch": {
            "merge": "'add' if s == 1 else 'concat'",
            "paths": [{"conv": {"c": 8}}, {"conv": {"c": 8}}]}}]}
    assert netspec.analyze(net(1)).output_shape == (8, 224, 224)
    assert netspec.analyze(net(2)).output_shape == (16, 224, 224)
    with pytest.raises(netspec.SpecError, match="unknown merge 'sum'"):
        netspec.analyze({"vars": {"s": 1}, "stem": [{"branch": {
            "merge": "'sum' if s == 1 else 'concat'", "paths": [{"conv": {"c": 8}}]}}]})
