"""RegNetX and RegNetY (Radosavovic et al. 2020): the quantized linear rule, the zoo's ten sizes
against torchvision's, and the RegNet design space as a search space.

The rule (netspec/lang/regnet.py) is checked against torchvision's own arithmetic
(BlockParams.from_init_params) at each zoo size and at random points of the design space, and
against the paper's RegNetX-400MF; the specs by check_parity (params, MACs, logits after
port_weights from a randomised torchvision model).
"""
import random

import optuna
import pytest
import torch
import zoo_proofs
from parity import check_parity, count_params, tensor_shapes
from torchvision.models.regnet import BlockParams

import netspec
from netspec.errors import SpecError
from netspec.lang.expr import evaluate
from netspec.lang.loader import load_spec
from netspec.lang.regnet import regnet
from netspec.search.sampling import Sampler
from netspec.search.space import load_space

SIZES = ["regnet_x_400mf", "regnet_x_800mf", "regnet_x_1_6gf", "regnet_x_8gf", "regnet_x_16gf",
         "regnet_y_400mf", "regnet_y_800mf", "regnet_y_1_6gf", "regnet_y_8gf", "regnet_y_16gf"]

TEST = "test_zoo_regnet.py::test_parity"
PARITY = zoo_proofs.cases(TEST)


def _rule_params(name: str) -> dict:
    """The RegNet parameters the spec writes (its vars, after its base chain)."""
    v = load_spec(name)["vars"]
    return {k: v[k] for k in ("w0", "wa", "wm", "d", "g", "b")}


def _torchvision_rule(w0, wa, wm, d, g, b=1.0):
    p = BlockParams.from_init_params(depth=d, w_0=w0, w_a=wa, w_m=wm, group_width=g,
                                     bottleneck_multiplier=b)
    return p.widths, p.depths, p.group_widths


def _ours(w0, wa, wm, d, g, b=1.0):
    r = regnet(w0, wa, wm, d, g, b)
    return r["widths"], r["depths"], r["group_widths"]


# -- the rule ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", SIZES)
def test_rule_is_torchvisions_at_each_zoo_size(name):
    p = _rule_params(name)
    assert _ours(**p) == _torchvision_rule(**p)
    r = regnet(**p)
    assert r["stages"] == 4 and sum(r["depths"]) == p["d"]
    assert r["groups"] == [mid // gw for mid, gw in zip(r["mids"], r["group_widths"])]


def test_rule_is_torchvisions_across_the_design_space():
    """Random points of the RegNet design space (and beyond: any b, any group width)."""
    rng = random.Random(0)
    for _ in range(300):
        point = dict(w0=8 * rng.randint(1, 32), wa=round(rng.uniform(0, 256), 2),
                     wm=round(rng.uniform(1.05, 3), 3), d=rng.randint(1, 40),
                     g=rng.choice([1, 2, 4, 8, 16, 24, 32, 56, 120]),
                     b=rng.choice([1.0, 0.5, 0.25, 2.0]))
        assert _ours(**point) == _torchvision_rule(**point), point


# Radosavovic et al. 2020, RegNetX-400MF (d=22, w0=24, wa=24.48, wm=2.54, g=16): per stage
PAPER_X_400MF = {"depths": [1, 2, 7, 12], "widths": [32, 64, 160, 384]}


def test_rule_gives_the_papers_regnetx_400mf():
    """The paper rounds a bottleneck width to the nearest multiple of the group width (pycls's
    quantize_float), torchvision with make_divisible (half up): its last stage's 392 becomes 384
    in the paper and 400 in torchvision; the rest agrees."""
    p = dict(w0=24, wa=24.48, wm=2.54, d=22, g=16)
    paper = regnet(**p, rounding="paper")
    assert {k: paper[k] for k in PAPER_X_400MF} == PAPER_X_400MF
    ours = regnet(**p)
    assert ours["depths"] == PAPER_X_400MF["depths"]
    assert ours["widths"] == PAPER_X_400MF["widths"][:3] + [400]


def test_rule_in_an_expression():
    assert evaluate("regnet(24, 24.48, 2.54, 22, 16)['widths'][3]", {}) == 400
    assert evaluate("regnet(w0, 36.44, 2.49, 13, 8, 1)['depths']", {"w0": 24}) == [1, 1, 4, 7]


@pytest.mark.parametrize("override, message", [
    ("vars.w0=20", "w0 (the initial width) must be a positive multiple of 8"),
    ("vars.wm=1", "wm (the width multiplier per stage) must be more than 1"),
    ("vars.d=0", "d (the number of blocks) must be an integer"),
    ("vars.d=4", "no entry 3 in the table"),              # three stages for four rows
    ("vars.d=60", "no entry 5 in the table"),             # five
])
def test_bad_rule_parameters_are_located(override, message):
    with pytest.raises(SpecError) as e:
        netspec.analyze("regnet_x_400mf", [override])
    assert message in str(e.value)
    assert e.value.file.endswith("regnet_x_400mf.yaml") and e.value.line is not None
    assert e.value.path.startswith("vars.")


# -- the zoo -------------------------------------------------------------------------------------

def _live(proof):
    """The torchvision model, built on the CPU and moved where check_parity asks (meta there):
    its BlockParams computes the widths with tensors, which the meta device cannot read."""
    def make():
        device = torch.empty(0).device
        with torch.device("cpu"):
            model = proof.make()
        return model.to(device)
    return make


@pytest.mark.parametrize("proof", PARITY, ids=[p.id for p in PARITY])
def test_params_and_tensor_order_are_torchvisions(proof):
    """Every size, the big ones too (parity, which also counts them, is slow there): the count at
    the spec's input, and the state_dict's shapes in torchvision's order (its projection
    shortcut before the block's body: shortcut_first), so that weights pair without a run."""
    report = netspec.analyze(proof.spec)
    assert report.input_shape == (3, 224, 224) and report.output_shape == (1000,)
    with torch.device("meta"):
        reference = _live(proof)()
        ours = netspec.build(proof.spec)
    assert report.params == count_params(reference)
    assert tensor_shapes(ours) == tensor_shapes(reference)


def test_se_squeezes_the_block_input_on_the_3x3():
    """RegNetY's SE sits between the grouped 3x3 and the last 1x1 and squeezes to
    round(0.25 * the block's input width), as torchvision's SqueezeExcitation there."""
    model = netspec.build("regnet_y_400mf", ["input.size=32"])
    body = model.stages[1].block0.body              # 48 -> 104 channels, the stage's first
    assert list(body._modules) == ["conv1", "conv2", "se1", "conv3"]
    assert (body.se1.fc1.in_channels, body.se1.fc1.out_channels) == (104, round(0.25 * 48))
    later = model.stages[1].block1.body.se1.fc1     # the next block's input: 104
    assert (later.in_channels, later.out_channels) == (104, round(0.25 * 104))


@pytest.mark.parametrize("proof", zoo_proofs.params(TEST))
def test_parity(proof):
    check_parity(proof.spec, _live(proof), proof.size, proof.overrides)


# -- the design space ----------------------------------------------------------------------------

def test_regnet_space_samples_build_and_analyze():
    """Random points of search/regnet.yaml: the four-stage ones (its `where:`) resolve, and build
    into the network the analysis describes; the others are rejected before anything trains."""
    sp = load_space("regnet")
    sampler = Sampler(sp, sp.base_spec(), "regnet")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    kept = []
    for _ in range(40):
        s = sampler.sample(study.ask(), "regnet")
        four = sampler.where(s.params)[0]
        rule = regnet(*(s.params[f"vars.{k}"] for k in ("w0", "wa", "wm", "d", "g")))
        assert four == (rule["stages"] == 4), s.params
        if four:
            kept.append(s)
    assert len(kept) >= 3
    for s in kept[:3]:
        report = netspec.analyze(s.spec)
        assert (report.params, report.macs) == (s.report.params, s.report.macs)
        assert report.input_shape == (3, 32, 32) and report.output_shape == (10,)
        model = netspec.build(s.spec).eval()
        assert count_params(model) == report.params
        with torch.no_grad():
            assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
