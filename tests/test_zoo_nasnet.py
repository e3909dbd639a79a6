"""NASNet (Zoph et al. 2018): the `cells` / `cell` construct, nasnetalarge against timm and both
NASNet-A networks against the paper's Table 2."""
import pytest
import torch
import zoo_proofs
from parity import assert_params_and_macs, check_parity, count_params, random_reference, unported
from torch import nn

import netspec
from netspec import SpecError
from netspec.errors import WeightsError

# -- nasnetalarge against timm, and both NASNet-A against the paper ---------------------------------

# every stride-2 map is odd at 35x35 (17 -> 9 -> 5 -> 3), where TF's "SAME" padding is symmetric
ODD_SIZE = 35


def test_nasnetalarge_params_and_macs_match_timm():
    """What the slow logits test checks first, here in the default run."""
    timm = pytest.importorskip("timm")
    with torch.device("meta"):
        assert_params_and_macs("nasnetalarge", timm.create_model("nasnetalarge").eval())


def _tf_avg_pools(model: nn.Module) -> int:
    """Replace timm's stride-2 AvgPool2dSame (which counts its zero padding) by TF's rule."""
    from timm.layers.pool2d_same import AvgPool2dSame
    n = 0
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, AvgPool2dSame):
                setattr(module, name, nn.AvgPool2d(child.kernel_size, child.stride, 1,
                                                   count_include_pad=False))
                n += 1
    return n


def _with_tf_avg_pools(model: nn.Module) -> nn.Module:
    assert _tf_avg_pools(model) == 4            # the stride-2 average pools of the 4 reductions
    return model


@pytest.mark.parametrize("proof", zoo_proofs.params("test_zoo_nasnet.py::test_nasnetalarge_logits"))
def test_nasnetalarge_logits(proof):
    """The weights port in order; the logits agree exactly once timm's stride-2 average pools
    stop counting their padding (as TF's do), at a size where "SAME" padding is symmetric."""
    reference = random_reference(proof.make).eval()
    model = unported(proof.spec, [f"input.size={proof.size}"]).eval()
    with pytest.raises(WeightsError, match="after porting the outputs differ"):
        netspec.port_weights(model, reference)          # the port sees the quirk itself
    netspec.port_weights(model, reference, verify=False)
    x = torch.randn(2, 3, proof.size, proof.size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        theirs = reference(x)
        quirk = (model(x) - theirs).abs().max().item()
    assert quirk > 1e-2 * theirs.abs().max().item()     # timm's AvgPool2dSame counts its padding
    check_parity(proof.spec, lambda: _with_tf_avg_pools(proof.make()), proof.size)


# Zoph et al. 2018, Table 2: parameters and mult-adds of NASNet-A (4 @ 1056) in the mobile
# setting at 224x224 and (6 @ 4032) at 331x331, as printed
TABLE2 = {"nasnetamobile": ((3, 224, 224), 5.3e6, 564e6),
          "nasnetalarge": ((3, 331, 331), 88.9e6, 23.8e9)}


@pytest.mark.parametrize("proof", zoo_proofs.params("test_zoo_nasnet.py::test_table_2"))
def test_table_2(proof):
    shape, params, macs = TABLE2[proof.spec]
    report = netspec.analyze(proof.spec)
    assert report.input_shape == shape
    assert abs(report.params - params) <= 0.01 * params
    assert abs(report.macs - macs) <= 0.01 * macs


def test_nasnetamobile_builds_and_agrees_with_its_analysis():
    report = netspec.analyze("nasnetamobile", ["input.size=32"])
    model = netspec.build("nasnetamobile", ["input.size=32"]).eval()
    assert count_params(model) == report.params
    with torch.no_grad():
        assert model(torch.randn(1, 3, 32, 32)).shape == (1, 1000)


# -- the construct on a tiny network ----------------------------------------------------------

TINY = """\
input: {channels: 3, size: 32}
num_classes: 5
defaults: {norm: bn, act: relu, bn_eps: 0.001}
blocks:
  normal:
    args: {c: required}
    cell:
      c: c
      genotype:
        - {inputs: [1, 0], ops: [sep_conv_5x5, sep_conv_3x3]}
        - {inputs: [0, 0], ops: [avg_pool_3x3, identity]}
        - {inputs: [2, 1], ops: [max_pool_3x3, identity]}
      concat: [0, 3, 4]
  reduction:
    args: {c: required, skip_input: false}
    cell:
      c: c
      s: 2
      skip_input: skip_input
      genotype:
        - {inputs: [1, 0], ops: [sep_conv_5x5, sep_conv_7x7]}
        - {inputs: [2, 1], ops: [identity, avg_pool_3x3]}
stem:
  - conv: {c: 8, k: 3, s: 2, p: 0, act: none}
stages:
  - cells:
      - reduction: {c: 4}
      - normal: {c: 8}
      - normal: {c: 12}
      - reduction: {c: 16, skip_input: true}
      - normal: {c: 16, n: 2}
head:
  - act: relu
  - pool: global_avg
  - linear: {c: num_classes}
"""


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny_nasnet.yaml"
    path.write_text(TINY)
    return path


def _cells(model) -> list[nn.Module]:
    return model.stages[0].cells


def _stack_out(spec, overrides=()) -> tuple:
    """The output shape of the `cells` stack."""
    net = netspec.resolve(spec, overrides)
    stages = dict(net.children)["stages"]
    return stages.children[0][1].out.shape


def test_tiny_nasnet_forward_and_backward(tiny):
    report = netspec.analyze(tiny)
    model = netspec.build(tiny)
    assert count_params(model) == report.params
    x = torch.randn(2, 3, 32, 32)
    out = model(x)
    assert out.shape == (2, 5)
    out.logsumexp(1).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    # 15x15 stem output -> reduction 8x8 -> 2 normal -> reduction 4x4 -> 2 normal
    assert len(_cells(model)) == 6
    assert _stack_out(tiny) == (48, 4, 4)        # concat [0, 3, 4] of 16 filters


def test_cell_inputs_follow_nasnet(tiny):
    cells = _cells(netspec.build(tiny))
    # the first cell takes the stem output raw as state 0; the next halves it (factorized reduction)
    assert isinstance(cells[0].pre0, nn.Identity)
    assert type(cells[1].pre0).__name__ == "FactorizedReduce"
    assert type(cells[2].pre0).__name__ != "FactorizedReduce"
    # skip_input: the normal cell after the second reduction gets that reduction's state 0 (the
    # first normal cell, 3 x 8 channels), without it the reduction's input (the second, 3 x 12)
    assert cells[4].pre0.path_1.in_channels == 24
    without = _cells(netspec.build(tiny, ["stages[0].cells[3].reduction.skip_input=false"]))
    assert without[4].pre0.path_1.in_channels == 36


def test_genotype_override_changes_the_network():
    base = netspec.analyze("nasnetamobile")
    key = "blocks.normal.cell.genotype[0].ops[0]"
    wider = netspec.analyze("nasnetamobile", [f"{key}=sep_conv_7x7"])
    # 12 normal cells (c = 44, 88, 176, four each); two depthwise convs grow from 5x5 to 7x7
    assert wider.params - base.params == 4 * 2 * (49 - 25) * (44 + 88 + 176)
    rewired = netspec.analyze("nasnetamobile", ["blocks.normal.cell.genotype[4].inputs=[2, 3]",
                                                "blocks.normal.cell.concat=auto"])
    assert rewired.output_shape == base.output_shape
    assert rewired.params != base.params          # the head sees 4 concatenated states, not 6
    tiny = netspec.analyze("nasnetamobile", ["blocks.normal.cell.genotype[1].combine=concat",
                                             "input.size=32"])
    assert tiny.params > netspec.analyze("nasnetamobile", ["input.size=32"]).params


def test_genotype_entries_can_be_search_choices(tiny):
    key = "blocks.normal.cell.genotype[0].ops[1]"
    choice = f"{key}={{choice: [identity, sep_conv_7x7]}}"
    with pytest.raises(SpecError, match="search choice"):
        netspec.analyze(tiny, [choice])
    picked = netspec.resolve(tiny, [choice], sampler=lambda raw, loc: raw["choice"][1])
    direct = netspec.resolve(tiny, [f"{key}=sep_conv_7x7"])
    assert picked.total_params == direct.total_params


def test_width_and_depth_scale_the_cell_stack(tiny):
    assert len(_cells(netspec.build(tiny, ["scale.depth=2"]))) == 8     # n: 2 -> 4
    assert _stack_out(tiny, ["scale.width=2", "scale.divisor=1"]) == (96, 4, 4)   # 3 x 32


def test_concat_of_an_input_state_in_a_reduction_cell_is_halved(tiny):
    over = ["blocks.reduction.cell.concat=[1, 3]"]
    model = netspec.build(tiny, over)
    assert type(_cells(model)[0].reduce["1"]).__name__ == "FactorizedReduce"
    report = netspec.analyze(tiny, over)
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 32, 32)).shape == (1, 5)
    assert count_params(model) == report.params


ERRORS = [
    (["blocks.normal.cell.genotype[0].ops[1]=sep_conv_3x4"],
     r"\(<override blocks\.normal\.cell\.genotype\[0\]\.ops\[1\]=sep_conv_3x4> "
     r"blocks\.normal\.cell\.genotype\[0\]\.ops\[1\]\): unknown cell operation 'sep_conv_3x4' "
     r"\(did you mean 'sep_conv_3x3'\?\)"),
    (["blocks.normal.cell.genotype[1].inputs[1]=3"],
     r"genotype\[1\]\.inputs\[1\]\): input 3 of block 1 is out of range"),
    (["blocks.normal.cell.genotype[0].ops[1]=fire"], r"'fire' cannot be a cell operation"),
    (["blocks.normal.cell.genotype[1].combine=mul"], r"unknown combine 'mul'; use one of add"),
    (["blocks.normal.cell.genotype[1].inputs=[0]"], r"block 1 has 1 inputs but 2 ops"),
    (["blocks.normal.cell.genotype[0]={inputs: [1, 0], op: [identity, identity]}"],
     r"unknown key 'op' in a cell block \(did you mean 'ops'\?\)"),
    (["blocks.normal.cell.concat=[0, 9]"], r"state 9 is out of range"),
    (["blocks.normal.cell.concat=[3, 3]"], r"state 3 is concatenated twice"),
    (["blocks.reduction.cell.s=3"], r"a cell's stride must be 1 or 2"),
    (["stages[0].cells[1]={conv: {c: 8}}"],
     r"^<override stages\[0\]\.cells\[1\]=\{conv: \{c: 8\}\}>: stages\[0\]\.cells\[1\]: only cells "
     r".* got conv"),
    (["stages[0]={normal: {c: 8}}"], r"can only be used inside `cells`"),
    (["stages[0].cells[1]={sep_conv_3x3: {c: 8}}"], r"only cells .* got sep_conv_3x3"),
]


@pytest.mark.parametrize("overrides, message", ERRORS)
def test_genotype_errors_say_where_and_what(tiny, overrides, message):
    with pytest.raises(SpecError, match=message) as err:
        netspec.analyze(tiny, overrides)
    # the place is a line of the spec, or the override that wrote the value (it has no line)
    assert err.value.line is not None or err.value.file.startswith("<override")
    assert err.value.path.startswith("stages[0]")


def test_adding_outputs_of_different_shapes_is_a_spec_error(tmp_path):
    path = tmp_path / "net.yaml"
    text = TINY.replace("blocks:\n", "blocks:\n  wide:\n    args: {c: required, s: 1}\n"
                                    "    conv: {c: 2 * c, k: 1, s: s}\n", 1)
    text = text.replace("ops: [avg_pool_3x3, identity]", "ops: [wide, identity]")
    path.write_text(text)
    with pytest.raises(SpecError, match=r"block 1 cannot add outputs of different shapes: "
                                        r"16x8x8, 8x8x8 \(wide, identity of states \[0, 0\]\)"):
        netspec.analyze(path)


def test_mismatched_cell_inputs_are_a_spec_error(tiny):
    # reductions in a row, each skipping its input: the third one's state 0 is the stem output
    over = ["stages[0].cells[0].reduction.skip_input=true",
            "stages[0].cells[1]={reduction: {c: 8, skip_input: true}}",
            "stages[0].cells[2]={reduction: {c: 8}}"]
    with pytest.raises(SpecError, match=r"stages\[0\]\.cells\[2\]\.reduction: .*the cell's "
                                        r"inputs differ in size \(8x15x15 and 8x4x4\)"):
        netspec.analyze(tiny, over)
