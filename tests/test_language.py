"""The language's features, each on a small spec: expressions, scaling, blocks, combinators."""
import math
import textwrap

import pytest
import torch
import torchvision.models as tv
from torch import nn

import netspec
from netspec.lang.expr import evaluate, make_divisible
from netspec.ops.base import Arg

TINY = {
    "input": {"channels": 3, "size": 16},
    "num_classes": 4,
    "head": [{"pool": "global_avg"}, {"linear": {"c": "num_classes"}}],
}


def spec(**parts):
    return {**TINY, **parts}


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


# -- expressions ------------------------------------------------------------------------------

def test_make_divisible_matches_torchvision():
    from torchvision.models._utils import _make_divisible
    for v in [3, 7.5, 16 * 0.35, 32 * 1.4, 1280 * 0.75, 24 * 0.5, 101.9, 320 * 1.1]:
        for d in (4, 8, 16):
            assert make_divisible(v, d) == _make_divisible(v, d)


def test_expressions_cover_the_whitelist():
    scope = {"in": 24, "t": 6, "c": 40}
    assert evaluate("in * t", scope) == 144
    assert evaluate("make_divisible(in * 1.4, 8)", scope) == 32
    assert evaluate("ceil(c / 3) + floor(2.5) + round(2.6) + min(1, 2) + max(3, 4)", scope) == 24
    assert evaluate("1 if t != 1 else 0", scope) == 1
    assert evaluate("t > 1 and not c < 10", scope) is True


def test_in_is_the_block_input_inside_blocks(tmp_path):
    path = write(tmp_path, "net.yaml", """
        input: {channels: 3, size: 8}
        blocks:
          widen:
            args: {t: 2}
            body:
              - conv: {c: in * t, k: 1}
              - conv: {c: in * t * 2, k: 1}   # `in` is still the block's input (8), not 16
        stem: [conv: {c: 8, k: 3}]
        stages: [widen: {t: 2}]
        """)
    assert netspec.analyze(path).output_shape == (32, 8, 8)


# -- scaling ----------------------------------------------------------------------------------

def test_depth_multiplier_rounds_up_like_efficientnet():
    base = netspec.resolve("efficientnet_b0")
    deeper = netspec.resolve("efficientnet_b0", ["scale.depth=1.2"])
    n0 = [len(row.children) for _, row in base.children[1][1].children]
    n1 = [len(row.children) for _, row in deeper.children[1][1].children]
    assert n1 == [math.ceil(n * 1.2) for n in n0]


def test_width_multiplier_scales_stem_stages_and_head_but_not_the_classifier():
    report = netspec.analyze("efficientnet_b0", ["scale.width=1.1", "scale.depth=1.2",
                                                 "input.size=260"])
    assert report.params == sum(p.numel() for p in tv.efficientnet_b2().parameters())


def test_resolution_multiplier():
    assert netspec.analyze("resnet50", ["scale.resolution=0.5"]).input_shape == (3, 112, 112)


def test_vars_base_inheritance_and_expressions_in_scale(tmp_path):
    path = write(tmp_path, "b1.yaml", """
        base: efficientnet_b0
        vars: {phi: 1, dropout: 0.2}
        scale: {width: 1.0, depth: "1.1 ** phi"}
        input: {size: 240}
        """)
    report = netspec.analyze(path)
    assert report.input_shape == (3, 240, 240)
    assert report.params == sum(p.numel() for p in tv.efficientnet_b1().parameters())


# -- overrides --------------------------------------------------------------------------------

def test_overrides_reach_nested_keys_and_list_items():
    report = netspec.analyze("mobilenet_v2", ["num_classes=10", "input.size=32",
                                              "stages[6].inverted_residual.c=64"])
    assert report.output_shape == (10,)
    assert report.input_shape == (3, 32, 32)
    assert netspec.resolve("mobilenet_v2", ["stages.6.inverted_residual.c=64"]) \
        .children[1][1].children[6][1].out.shape[0] == 64


# -- blocks -----------------------------------------------------------------------------------

def test_user_block_in_spec_positional_args_and_conditions(tmp_path):
    path = write(tmp_path, "net.yaml", """
        input: {channels: 3, size: 32}
        num_classes: 10
        blocks:
          double:
            args: {c: required, s: 1, extra: false}
            body:
              - conv: {c: c, s: s}
              - conv: {c: c, if: extra}
        stem: [conv: {c: 16}]
        stages:
          - double: [32, 2]
          - double: {c: 64, s: 2, extra: true}
        head: [pool: global_avg, linear: {c: num_classes}]
        """)
    layers = netspec.analyze(path).layers
    convs = [lay for lay in layers if lay.kind == "conv"]
    assert [c.out_shape for c in convs] == [(16, 32, 32), (32, 16, 16), (64, 8, 8), (64, 8, 8)]


def test_block_library_file_is_included(tmp_path):
    write(tmp_path, "lib.yaml", """
        blocks:
          sep:
            args: {c: required}
            body: [conv: {dw: true}, conv: {c: c, k: 1}]
        """)
    path = write(tmp_path, "net.yaml", """
        include: [lib.yaml]
        input: {channels: 3, size: 8}
        stages: [sep: {c: 16}]
        """)
    assert netspec.analyze(path).params == (3 * 9 + 6) + (3 * 16 + 32)


def test_python_registered_block():
    @netspec.register_block("twin_conv", args={"c": Arg("int")})
    def twin_conv(a, feat, ctx):
        """Two convs written as spec data inside Python."""
        return ctx.resolve([{"conv": {"c": a.c}}, {"conv": {"c": a.c}}], feat, a.loc)

    model = netspec.build(spec(stages=[{"twin_conv": {"c": 8}}]))
    assert model(torch.randn(1, 3, 16, 16)).shape == (1, 4)


# -- combinators ------------------------------------------------------------------------------

def test_repeat_puts_the_stride_on_the_first_repeat_only():
    report = netspec.analyze(spec(stages=[{"conv": {"c": 8, "s": 2, "n": 3}}]))
    names = [(lay.name, lay.out_shape) for lay in report.layers if lay.kind == "conv"]
    assert names == [("stages.0.block0", (8, 8, 8)), ("stages.0.block1", (8, 8, 8)),
                     ("stages.0.block2", (8, 8, 8))]


def test_module_names_follow_the_spec():
    model = netspec.build("resnet50", ["input.size=32"])
    names = dict(model.named_modules())
    assert isinstance(names["stages.2.block1.body.conv2.conv"], nn.Conv2d)
    assert "stages.0.block0.shortcut.conv" in names


def test_branch_concat_and_add():
    paths = [[{"conv": {"c": 4}}], [{"conv": {"c": 6, "k": 1}}]]
    cat = netspec.analyze(spec(stages=[{"branch": paths}]))
    assert cat.layers[-3].out_shape == (6, 16, 16) and cat.tree[1].out_shape == (10, 16, 16)
    add = netspec.analyze(spec(stages=[{"branch": {"paths": [[{"conv": {"c": 6}}],
                                                             [{"conv": {"c": 6, "k": 1}}]],
                                                   "merge": "add"}}]))
    assert add.tree[1].out_shape == (6, 16, 16)


def test_residual_shortcut_kinds():
    body = [{"conv": {"c": 8, "s": 2}}, {"conv": {"c": 8, "act": "none"}}]
    for shortcut, extra in (("projection", 3 * 8 + 16), ("pad", 0)):
        net = spec(stem=[{"conv": {"c": 3, "k": 1}}],
                   stages=[{"residual": {"body": body, "shortcut": shortcut, "act": "relu"}}])
        report = netspec.analyze(net)
        assert report.params == (9 + 6) + (3 * 9 * 8 + 16) + (8 * 9 * 8 + 16) + extra + 8 * 4 + 4
        out = netspec.build(net)(torch.randn(2, 3, 16, 16))
        assert out.shape == (2, 4)


def test_dense_growth_and_transition():
    report = netspec.analyze(spec(stem=[{"conv": {"c": 16}}],
                                  stages=[{"dense_block": {"n": 3, "k": 4}},
                                          {"transition": {"compression": 0.5}}]))
    assert report.tree[1].out_shape[0] == 16  # stem conv
    dense = next(lay for lay in report.tree if lay.kind == "dense_block")
    assert dense.out_shape == (16 + 3 * 4, 16, 16)
    trans = next(lay for lay in report.tree if lay.kind == "transition")
    assert trans.out_shape == (14, 8, 8)


def test_pre_activation_order_puts_norm_and_act_first():
    model = netspec.build(spec(stem=[{"conv": {"c": 8, "order": "pre"}}]))
    first = model.stem[0]
    assert [type(m) for m in first] == [nn.BatchNorm2d, nn.ReLU, nn.Conv2d]
    assert first[0].num_features == 3 and first[2].bias is None


def test_drop_path_schedule_is_linear_like_torchvision():
    model = netspec.build("efficientnet_b0", ["input.size=32"])
    ours = [m.p for m in model.modules() if type(m).__name__ == "DropPath"]
    # torchvision also gives the blocks without a shortcut a probability (never used), so the
    # schedule counts every MBConv block, as ours does
    ref = [m.stochastic_depth.p for m in tv.efficientnet_b0().modules()
           if type(m).__name__ == "MBConv" and m.use_res_connect and m.stochastic_depth.p > 0]
    assert len(ours) == 9
    assert ours == pytest.approx(ref)


def test_drop_path_drops_whole_samples_in_training_and_nothing_in_eval():
    stages = [{"mbconv": {"c": 3, "t": 2, "n": 3}}]
    model = netspec.build(spec(drop_path=0.5, stages=stages))
    plain = netspec.build(spec(stages=stages))                 # the same network without it
    plain.load_state_dict(model.state_dict())
    x = torch.randn(64, 3, 16, 16)
    model.eval(), plain.eval()
    torch.testing.assert_close(model(x), plain(x), rtol=0, atol=0)   # eval: the identity
    # training: each sample's residual branch is dropped, or kept and scaled by 1/(1-p)
    drops = [m for m in model.modules() if type(m).__name__ == "DropPath"]
    assert [m.p for m in drops] == pytest.approx([0.5 / 3, 1 / 3])  # torchvision's rate * i / N
    seen = []
    for m in drops:
        # copies: the residual then adds its shortcut into the output in place
        m.register_forward_hook(lambda m, args, out: seen.append((m.p, args[0], out.clone())))
    model.train()
    torch.manual_seed(0)
    model(x).sum().backward()
    model(x)
    masks = []
    for p, branch, out in seen:
        kept = (out != 0).flatten(1).any(1)
        assert 0 < int(kept.sum()) < 64, p                 # some samples dropped, some kept
        torch.testing.assert_close(out[kept], branch[kept] / (1 - p))
        assert not out[~kept].any()
        masks.append(kept)
    assert not torch.equal(masks[0], masks[2])             # a new draw each forward


# -- the analysis -----------------------------------------------------------------------------

def test_analysis_allocates_no_weights(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("analysis allocated a module")
    monkeypatch.setattr(nn.Conv2d, "__init__", forbidden)
    monkeypatch.setattr(nn.Linear, "__init__", forbidden)
    assert netspec.analyze("vgg16").params == 138_357_544


def test_receptive_field_grows_as_the_lecture_says():
    # three stacked 3x3 convs see 7x7 (seed 000: "3 слоя 3x3 = 7x7")
    report = netspec.analyze(spec(stages=[{"conv": {"c": 4, "n": 3}}]))
    assert [lay.rf for lay in report.layers if lay.kind == "conv"] == [(3, 3), (5, 5), (7, 7)]


def test_activation_memory_counts_outputs():
    report = netspec.analyze("vgg16")
    first = report.layers[0]
    assert first.activations == 224 * 224 * 64 and first.bytes == 224 * 224 * 64 * 4


def test_zoo_lists_the_shipped_specs():
    names = netspec.zoo()
    for name in ("resnet50", "mobilenet_v2", "vgg16", "densenet121", "efficientnet_b0"):
        assert name in names


# -- the built module -------------------------------------------------------------------------

def test_built_model_is_plain_pytorch_and_exports():
    model = netspec.build("mobilenet_v2", ["input.size=32", "num_classes=10"]).eval()
    x = torch.randn(1, 3, 32, 32)
    exported = torch.export.export(model, (x,))
    assert torch.allclose(exported.module()(x), model(x), atol=1e-5)
    expected = model(x)
    cl = model.to(memory_format=torch.channels_last)        # (in place: `model` is `cl` now)
    assert cl.stem[0][0].weight.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(cl(x.to(memory_format=torch.channels_last)), expected, atol=1e-5)
    assert model.spec["name"] == "mobilenet_v2"


def test_compound_scaling_multiplies_depth_width_and_resolution():
    node = netspec.resolve("efficientnet_b0", ["scale.phi=1"])
    assert node.inp.shape == (3, round(224 * 1.15), round(224 * 1.15))
    plain = netspec.analyze("efficientnet_b0", ["scale.width=1.1", "scale.depth=1.2",
                                                f"input.size={round(224 * 1.15)}"])
    assert netspec.analyze("efficientnet_b0", ["scale.phi=1"]).params == plain.params


def test_branch_split_gives_each_path_a_channel_slice():
    net = spec(stem=[{"conv": {"c": 8}}],
               stages=[{"branch": {"paths": ["identity", [{"conv": {"c": 4, "k": 1}}]],
                                   "split": True}}, {"shuffle": 2}])
    report = netspec.analyze(net)
    assert report.tree[1].out_shape == (8, 16, 16)
    assert netspec.build(net)(torch.randn(2, 3, 16, 16)).shape == (2, 4)


def test_aux_heads_train_with_the_network_and_cost_nothing_at_inference():
    head = [{"pool": "global_avg"}, {"linear": {"c": "num_classes"}}]
    net = spec(stem=[{"conv": {"c": 8}}], stages=[{"aux": {"body": head, "weight": 0.3}},
                                                  {"conv": {"c": 8}}])
    report = netspec.analyze(net)
    without = netspec.analyze(spec(stem=[{"conv": {"c": 8}}], stages=[{"conv": {"c": 8}}]))
    assert report.params == without.params + 8 * 4 + 4 and report.macs == without.macs
    model = netspec.build(net)
    x = torch.randn(2, 3, 16, 16)
    logits, aux = model.train()(x)
    assert logits.shape == (2, 4) and aux[0][0] == 0.3 and aux[0][1].shape == (2, 4)
    assert model.eval()(x).shape == (2, 4)


def test_repeated_pool_keeps_its_default_stride():
    report = netspec.analyze(spec(input={"channels": 3, "size": 16},
                                  stages=[{"pool": {"type": "max", "k": 2, "n": 2}}]))
    assert report.layers[1].out_shape == (3, 4, 4)
