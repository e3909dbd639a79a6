"""Primitives: every norm with its own eps (bn, gn, ln over the channels), global pooling to a map."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision.models.convnext import LayerNorm2d

import netspec
from netspec.errors import SpecError


def _spec(norm: str, **defaults) -> dict:
    return {"input": {"channels": 3, "size": 6}, "num_classes": 4,
            "defaults": {"norm": norm, "act": "relu", **defaults},
            "stem": [{"conv": {"c": 8, "k": 3}}],
            "head": [{"pool": "global_avg"}, {"norm": norm}, {"linear": {"c": "num_classes"}}]}


def _norms(model):
    return [m for m in model.modules() if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d,
                                                         nn.GroupNorm, nn.LayerNorm))]


def test_ln_normalizes_the_channels_of_each_position_as_torchvision_convnext():
    model = netspec.build(_spec("ln"))
    ln_map, ln_vec = _norms(model)
    ref = LayerNorm2d(8, eps=1e-6)
    with torch.no_grad():
        ref.weight.uniform_(0.5, 1.5)
        ref.bias.normal_()
    ln_map.load_state_dict(ref.state_dict())
    x = torch.randn(2, 8, 5, 5) * 3 + 1
    assert torch.allclose(ln_map(x), ref(x), atol=1e-6)
    assert not torch.allclose(ln_map(x), nn.functional.group_norm(x, 1, eps=1e-6), atol=1e-3)
    v = torch.randn(2, 8)
    assert torch.allclose(ln_vec(v), nn.functional.layer_norm(v, (8,), eps=1e-6), atol=1e-6)
    assert netspec.analyze(_spec("ln")).params == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("norm, key, default", [("bn", "bn_eps", 1e-5), ("gn", "gn_eps", 1e-5),
                                                ("ln", "ln_eps", 1e-6)])
def test_each_norm_takes_its_own_eps(norm, key, default):
    extra = {"gn_groups": 4} if norm == "gn" else {}
    assert {m.eps for m in _norms(netspec.build(_spec(norm, **extra)))} == {default}
    model = netspec.build(_spec(norm, **extra, **{key: 1e-3}))
    assert {m.eps for m in _norms(model)} == {1e-3}
    with pytest.raises(SpecError, match=key):
        netspec.build(_spec(norm, **extra, **{key: -1.0}))


def test_global_pool_with_flatten_false_keeps_a_1x1_map_for_a_conv_head():
    spec = {"input": {"channels": 3, "size": 8}, "num_classes": 5,
            "defaults": {"norm": "bn", "act": "relu"}, "stem": [{"conv": {"c": 8, "k": 3}}],
            "head": [{"pool": {"type": "global_avg", "flatten": False}},
                     {"conv": {"c": "num_classes", "k": 1, "norm": "none", "act": "none"}},
                     "flatten"]}
    model = netspec.build(spec).eval()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        pooled = model.head[0](model.stem(x))
        assert pooled.shape == (2, 8, 1, 1)
        assert torch.allclose(pooled.flatten(1), model.stem(x).mean((2, 3)), atol=1e-6)
        assert model(x).shape == (2, 5)
    assert netspec.analyze(spec).params == sum(p.numel() for p in model.parameters())
    with pytest.raises(SpecError, match=r"head\[0\]\.pool\.flatten: flatten applies to global"):
        netspec.analyze({**spec, "head": [{"pool": {"type": "max", "flatten": False}}]})


CONVNEXT_BLOCK = {
    "input": {"channels": 8, "size": 7}, "defaults": {"norm": "ln", "act": "gelu"},
    "stages": [{"residual": {"layer_scale": 1e-6, "body": [
        {"conv": {"c": 8, "k": 7, "groups": 8, "norm": "none", "act": "none", "bias": True}},
        {"norm": "ln"},
        {"conv": {"c": 32, "k": 1, "norm": "none", "act": "gelu", "bias": True}},
        {"conv": {"c": 8, "k": 1, "norm": "none", "act": "none", "bias": True}}]}}]}


def test_layer_scale_is_a_learnable_per_channel_parameter_as_in_convnext():
    from parity import assert_logits_match, randomize
    from torchvision.models.convnext import CNBlock
    model = netspec.build(CONVNEXT_BLOCK)
    scale = model.stages[0].layer_scale
    assert scale.requires_grad and scale.shape == (8, 1, 1) and torch.all(scale == 1e-6)
    assert netspec.analyze(CONVNEXT_BLOCK).params == sum(p.numel() for p in model.parameters())
    ref = randomize(CNBlock(8, layer_scale=1e-6, stochastic_depth_prob=0.0)).eval()
    netspec.port_weights(model, ref)
    assert torch.equal(model.stages[0].layer_scale, ref.layer_scale)
    x = torch.randn(2, 8, 7, 7)
    with torch.no_grad():
        assert_logits_match("CNBlock", model.eval()(x), ref(x))


def test_a_mul_branch_gates_a_map_by_another_paths_per_channel_weights():
    gate = [{"pool": {"type": "global_avg", "flatten": False}},
            {"conv": {"c": 2, "k": 1, "norm": "none", "act": "relu", "bias": True}},
            {"conv": {"c": 8, "k": 1, "norm": "none", "act": "sigmoid", "bias": True}}]
    spec = {"input": {"channels": 8, "size": 5}, "defaults": {"norm": "bn", "act": "relu"},
            "stages": [{"branch": {"merge": "mul", "paths": ["identity", gate]}}]}
    model = netspec.build(spec).eval()
    x = torch.randn(2, 8, 5, 5)
    g = model.stages[0].paths[1]
    with torch.no_grad():
        w = g[2](g[1](x.mean((2, 3), keepdim=True)))        # each conv with its act
        assert w.shape == (2, 8, 1, 1) and 0 < float(w.min()) and float(w.max()) < 1
        assert torch.allclose(model(x), x * w, atol=1e-6)
    assert netspec.analyze(spec).output_shape == (8, 5, 5)
    bad = {**spec, "stages": [{"branch": {"merge": "mul", "paths": [
        "identity", [{"conv": {"c": 4, "k": 1}}]]}}]}
    with pytest.raises(SpecError, match="do not broadcast: 8x5x5, 4x5x5"):
        netspec.analyze(bad)


@pytest.mark.parametrize("args, size", [({"scale": 2}, (10, 10)), ({"size": [7, 9]}, (7, 9)),
                                        ({"scale": 2, "mode": "bilinear"}, (10, 10))])
def test_upsample_resizes_a_map_as_torch_does(args, size):
    spec = {"input": {"channels": 3, "size": 5}, "stages": [{"upsample": args}]}
    model = netspec.build(spec).eval()
    x = torch.randn(2, 3, 5, 5)
    mode = args.get("mode", "nearest")
    want = nn.functional.interpolate(x, size=size, mode=mode,
                                     align_corners=False if mode == "bilinear" else None)
    with torch.no_grad():
        assert torch.allclose(model(x), want, atol=1e-6)
    assert netspec.analyze(spec).output_shape == (3, *size)


def test_upsample_needs_one_of_scale_and_size():
    spec = {"input": {"channels": 3, "size": 5}, "stages": [{"upsample": {"mode": "nearest"}}]}
    with pytest.raises(SpecError, match="upsample takes scale .* or size"):
        netspec.analyze(spec)


@pytest.mark.parametrize("radix, groups", [(2, 1), (2, 2), (4, 1), (1, 1)])
def test_radix_softmax_is_timms_split_attention_softmax(radix, groups):
    from timm.layers.split_attn import RadixSoftmax
    c = 8 * radix * groups
    spec = {"input": {"channels": c, "size": 1},
            "stages": [{"radix_softmax": {"radix": radix, "groups": groups}}]}
    model = netspec.build(spec).eval()
    x = torch.randn(3, c, 1, 1) * 3
    with torch.no_grad():
        out = model(x)
        assert out.shape == x.shape
        want = RadixSoftmax(radix, groups)(x).flatten(1)
        assert torch.allclose(out.flatten(1), want, atol=1e-6)
    if radix > 1:        # the splits of each channel sum to 1
        splits = out.reshape(3, radix, groups, -1).sum(1)     # laid out split-major, as timm
        assert torch.allclose(splits, torch.ones_like(splits), atol=1e-5)
    if radix * groups > 1:
        with pytest.raises(SpecError, match="channels divisible by"):
            netspec.analyze({**spec, "input": {"channels": c + 1, "size": 1}})
