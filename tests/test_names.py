"""Named tensors: a layer's ``name:`` is read later by ``from:``, by ``concat``/``add``/``mul`` in the
written order, and by the network's ``outputs:``; every bad reference is a located SpecError."""
from __future__ import annotations

import textwrap

import pytest
import torch
import torch.nn.functional as F

import netspec
from netspec.errors import SpecError

UNET = """\
input: {channels: 1, size: 16}
num_classes: 3
stem:
  - conv: {c: 4, k: 3, name: e1}
stages:
  - pool: {type: max, k: 2, s: 2}
  - conv: {c: 8, k: 3, name: e2}
  - pool: {type: max, k: 2, s: 2}
  - conv: {c: 8, k: 3}
  - upsample: 2
  - concat: [e2, .]
  - conv: {c: 8, k: 3}
  - upsample: 2
  - concat: [e1, .]
head:
  - conv: {c: num_classes, k: 1, norm: none, act: none}
"""


def _file(tmp_path, text: str, name: str = "net.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def _randomise(model):
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                low = 0.5 if "running_var" in name or name.endswith("norm.weight") else -0.5
                t.copy_(torch.rand(t.shape, generator=g) * 1.0 + low)
    return model.eval()


def test_a_skip_connection_concatenates_in_the_written_order(tmp_path):
    model = _randomise(netspec.build(_file(tmp_path, UNET)))
    x = torch.randn(2, 1, 16, 16)
    s = model.stages
    e1 = model.stem.e1(x)
    e2 = s[1](s[0](e1))
    u = s[4](s[3](s[2](e2)))
    u = s[7](s[6](torch.cat([e2, u], 1)))          # e2 first, as written
    expected = model.head(torch.cat([e1, u], 1))
    out = model(x)
    assert out.shape == (2, 3, 16, 16)
    assert torch.allclose(out, expected, atol=1e-5, rtol=1e-4)
    # the other order is another network with the same tensors: it must not match
    wrong = s[7](s[6](torch.cat([s[4](s[3](s[2](e2))), e2], 1)))
    assert not torch.allclose(model.head(torch.cat([e1, wrong], 1)), out, atol=1e-3)


def test_the_report_counts_the_merge_and_names_its_inputs(tmp_path):
    report = netspec.analyze(_file(tmp_path, UNET))
    merges = [lay for lay in report.layers if lay.kind == "concat"]
    assert [(m.info, m.out_shape) for m in merges] == [("e2, .", (16, 8, 8)),
                                                       ("e1, .", (12, 16, 16))]
    assert report.output_shape == (3, 16, 16)
    assert sum(m.params for m in merges) == 0
    # the conv after the first merge reads 16 channels: 3*3*16*8 weights
    assert report.layers[report.layers.index(merges[0]) + 1].params == 3 * 3 * 16 * 8 + 16


def test_a_kept_tensor_is_not_changed_in_place(tmp_path):
    spec = _file(tmp_path, """\
        input: {channels: 2, size: 4}
        stem:
          - conv: {c: 3, k: 1, act: none, norm: none, bias: true, name: a}
          - act: relu
          - add: [a, .]
        """)
    model = _randomise(netspec.build(spec))
    x = torch.randn(2, 2, 4, 4)
    a = model.stem.a(x)
    assert (a < 0).any()                       # a ReLU in place would change the kept tensor
    assert torch.allclose(model(x), a + F.relu(a))


def test_from_reads_a_named_tensor_instead_of_the_previous_output(tmp_path):
    spec = _file(tmp_path, """\
        input: {channels: 3, size: 8}
        stem:
          - conv: {c: 4, k: 3, s: 2, name: c3}
          - conv: {c: 6, k: 3, s: 2, name: c4}
          - conv: {c: 5, k: 1, from: c3, name: lateral}
        """)
    report = netspec.analyze(spec)
    assert [(lay.name, lay.out_shape) for lay in report.layers] == [
        ("stem.c3", (4, 4, 4)), ("stem.c4", (6, 2, 2)), ("stem.lateral", (5, 4, 4))]
    assert report.layers[2].params == 4 * 5 + 10      # reads c3's 4 channels, not c4's 6
    assert "from c3" in report.layers[2].info
    model = _randomise(netspec.build(spec))
    x = torch.randn(1, 3, 8, 8)
    assert torch.allclose(model(x), model.stem.lateral(model.stem.c3(x)))


def test_outputs_return_a_dict_of_named_maps(tmp_path):
    spec = _file(tmp_path, """\
        input: {channels: 3, size: 16}
        stem:
          - conv: {c: 4, k: 3, s: 2}
        stages:
          - conv: {c: 8, k: 3, s: 2, name: p3}
          - conv: {c: 16, k: 3, s: 2, name: p4}
        outputs: [p4, p3]
        """)
    report = netspec.analyze(spec)
    assert report.outputs == {"p4": (16, 2, 2), "p3": (8, 4, 4)}
    assert "outputs          a dict of 2: p4 2x2x16, p3 4x4x8" in report.table()
    model = _randomise(netspec.build(spec))
    out = model(torch.randn(2, 3, 16, 16))
    assert list(out) == ["p4", "p3"]
    assert out["p3"].shape == (2, 8, 4, 4) and out["p4"].shape == (2, 16, 2, 2)
    assert not model.tape.saved                       # nothing of the pass stays behind


def test_outputs_by_module_path_leave_the_spec_as_written(tmp_path):
    spec = _file(tmp_path, """\
        base: resnet18
        input: {size: 32}
        head: []
        outputs: {c4: stages.2, c5: stages.3}
        """)
    model = _randomise(netspec.build(spec))
    plain = netspec.build("resnet18", ["input.size=32"])
    assert list(model.state_dict()) == [k for k in plain.state_dict() if not k.startswith("head")]
    x = torch.randn(1, 3, 32, 32)
    out = model(x)
    c4 = model.stages[2](model.stages[1](model.stages[0](model.stem(x))))
    assert torch.allclose(out["c4"], c4, atol=1e-5)
    assert torch.allclose(out["c5"], model.stages[3](c4), atol=1e-5)


def test_a_crop_concat_takes_the_centre_of_the_larger_map(tmp_path):
    spec = _file(tmp_path, """\
        input: {channels: 1, size: 10}
        stem:
          - conv: {c: 2, k: 1, name: big}
          - conv: {c: 3, k: 5, p: 0}
          - concat: {of: [big, .], crop: true}
        """)
    report = netspec.analyze(spec)
    assert report.output_shape == (5, 6, 6)
    model = _randomise(netspec.build(spec))
    x = torch.randn(1, 1, 10, 10)
    big = model.stem.big(x)
    assert torch.allclose(model(x)[:, :2], big[..., 2:8, 2:8])


def test_names_survive_a_copy_and_a_pickle(tmp_path):
    import copy
    import pickle
    model = _randomise(netspec.build(_file(tmp_path, UNET)))
    x = torch.randn(1, 1, 16, 16)
    want = model(x)
    for other in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert other.tape is not model.tape
        assert torch.allclose(other(x), want)


# -- bad references: one located error each -----------------------------------------------------

@pytest.mark.parametrize("body, line, words", [
    ("  - conv: {c: 4, k: 3, name: a}\n  - concat: [b, .]\n", 4, "no layer named 'b'"),
    ("  - conv: {c: 4, k: 3, name: first}\n  - add: [frist, .]\n", 4, "did you mean 'first'"),
    ("  - concat: [later, .]\n  - conv: {c: 4, k: 3, name: later}\n", 3,
     "'later' is defined later (line 4)"),
    ("  - conv: {c: 4, k: 3, name: a}\n  - conv: {c: 4, k: 3, s: 2}\n  - concat: [a, .]\n", 5,
     "cannot concatenate maps of different sizes: 4x8x8, 4x4x4"),
    ("  - conv: {c: 4, k: 3, name: a}\n  - conv: {c: 5, k: 3}\n  - add: [a, .]\n", 5,
     "cannot add outputs of different shapes"),
    ("  - residual: [conv: {c: 3, k: 3, name: a}]\n  - residual: [conv: {c: 3, k: 3, name: a}]\n"
     "  - add: [a, .]\n", 5, "'a' names 2 layers in the network (lines 3, 4)"),
    ("  - conv: {c: 4, k: 3, from: nowhere}\n", 3, "no layer named 'nowhere'"),
    ("  - conv: {c: 4, k: 3}\n  - concat: []\n", 4, "takes a list of layer names"),
])
def test_bad_references_are_located(tmp_path, body, line, words):
    spec = _file(tmp_path, "input: {channels: 3, size: 8}\nstem:\n" + body)
    with pytest.raises(SpecError) as e:
        netspec.analyze(spec)
    assert e.value.line == line, str(e.value)
    assert words in str(e.value)


def test_a_block_body_sees_only_its_own_names(tmp_path):
    spec = _file(tmp_path, """\
        input: {channels: 3, size: 8}
        blocks:
          reader:
            args: {c: required}
            body:
              - conv: {c: c, k: 3, name: inner}
              - add: [outer, .]
        stem:
          - conv: {c: 4, k: 3, name: outer}
          - reader: 4
        """)
    with pytest.raises(SpecError, match=r"'outer' \(line 9\) is outside block 'reader'"):
        netspec.analyze(spec)


def test_a_block_s_names_are_its_own_in_each_call(tmp_path):
    spec = _file(tmp_path, """\
        input: {channels: 3, size: 8}
        blocks:
          twice:
            args: {c: required}
            body:
              - conv: {c: c, k: 3, name: inner}
              - conv: {c: c, k: 3}
              - add: [inner, .]
        stem:
          - twice: {c: 4, n: 3}
        """)
    model = _randomise(netspec.build(spec))
    x = torch.randn(1, 3, 8, 8)
    h = x
    blocks = list(model.stem.repeat1)
    assert len({b.add1.keys[0] for b in blocks}) == 3       # each call keeps its own 'inner'
    for block in blocks:
        inner = block[0](h)
        h = inner + block[1](inner)
    assert torch.allclose(model(x), h, atol=1e-5)


def test_a_residual_shortcut_cannot_read_what_its_body_makes(tmp_path):
    spec = _file(tmp_path, """\
        input: {channels: 4, size: 8}
        stem:
          - residual:
              body: [conv: {c: 4, k: 3, name: mid}, conv: {c: 4, k: 3}]
              shortcut: [conv: {c: 4, k: 1, from: mid}]
        """)
    with pytest.raises(SpecError, match="'mid' is made by the residual's body, which runs after "
                                        "its shortcut"):
        netspec.analyze(spec)


def test_a_cell_cannot_read_a_name_from_outside(tmp_path):
    spec = _file(tmp_path, """\
        input: {channels: 3, size: 8}
        stem:
          - conv: {c: 8, k: 3, name: stem_out}
        stages:
          - cells:
              - cell: {c: 8, genotype: [{inputs: [0, 1], ops: [identity, identity]}]}
              - conv: {c: 8, k: 1, from: stem_out}
        """)
    with pytest.raises(SpecError) as e:
        netspec.analyze(spec)
    assert e.value.line == 7
    assert "'stem_out' (line 3) is outside this cells stack" in str(e.value)
    assert "a cell reads its two input states" in str(e.value)


@pytest.mark.parametrize("outputs, words", [
    ("[p3, p3]", "'p3' is listed twice in outputs"),
    ("{c4: stages.7}", "no layer at module path 'stages.7'"),
    ("[]", "outputs must be a list of layer names"),
    ("[p9]", "no layer named 'p9'"),
])
def test_bad_outputs_are_located(tmp_path, outputs, words):
    spec = _file(tmp_path, "input: {channels: 3, size: 8}\nstages:\n"
                           "  - conv: {c: 4, k: 3, name: p3}\n"
                           f"outputs: {outputs}\n")
    with pytest.raises(SpecError) as e:
        netspec.analyze(spec)
    assert e.value.line == 4, str(e.value)
    assert words in str(e.value)
