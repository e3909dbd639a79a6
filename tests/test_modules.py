"""The built modules compute what their specs say, also where they save work (in-place adds)."""
import copy

import pytest
import torch
import torch.nn.functional as F

import netspec
from netspec.ops.modules import Residual

# residual networks of every kind: projection and identity shortcuts, option A (pad), a shared
# pre-activation, the shortcut registered first, a scaled body, stochastic depth
RESIDUAL_NETS = {
    "resnet50": ["input.size=32"],
    "resnet20": ["input.size=16"],
    "mobilenet_v2": ["input.size=32"],
    "efficientnet_b0": ["input.size=32", "drop_path=0.2"],
    "resnetv2_50": ["input.size=32"],
    "xception": ["input.size=71"],
    "inception_resnet_v2": ["input.size=75"],
}


def _grads(model, x, y, seed=0):
    torch.manual_seed(seed)                      # the same drop-path draws in both runs
    model.zero_grad(set_to_none=True)
    out = model(x)
    logits = out[0] if isinstance(out, tuple) else out
    loss = F.cross_entropy(logits, y)
    loss.backward()
    return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("name", sorted(RESIDUAL_NETS))
def test_adding_the_shortcut_in_place_changes_nothing(name):
    torch.manual_seed(0)
    model = netspec.build(name, ["num_classes=5", *RESIDUAL_NETS[name]]).train()
    units = [m for m in model.modules() if isinstance(m, Residual)]
    assert any(u.add_in_place for u in units), f"{name}: no residual adds in place"
    plain = copy.deepcopy(model)
    for u in plain.modules():
        if isinstance(u, Residual):
            u.add_in_place = False
    x = torch.randn(2, *model.input_shape)
    y = torch.tensor([1, 3])
    loss_a, grads_a = _grads(model, x, y)
    loss_b, grads_b = _grads(plain, x, y)
    assert loss_a == loss_b
    assert grads_a.keys() == grads_b.keys()
    for k in grads_a:
        assert torch.equal(grads_a[k], grads_b[k]), k


BODY_ENDS_IN_RELU = {
    "input": {"channels": 4, "size": 8}, "num_classes": 3,
    "stages": [{"residual": {"body": [{"conv": {"c": 4}}, {"conv": {"c": 4, "norm": "none"}}]}}],
    "head": [{"pool": "global_avg"}, {"linear": {"c": 3}}],
}


def test_a_body_whose_output_backward_needs_is_not_added_into():
    model = netspec.build(BODY_ENDS_IN_RELU).train()      # the body's last op is a ReLU
    unit = next(m for m in model.modules() if isinstance(m, Residual))
    assert not unit.add_in_place
    x = torch.randn(2, 4, 8, 8)
    _grads(model, x, torch.tensor([0, 2]))
    unit.add_in_place = True     # what the rule prevents: autograd needs the ReLU's output
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        _grads(model, x, torch.tensor([0, 2]))


def test_drop_path_output_is_added_into_only_while_training():
    tree = copy.deepcopy(BODY_ENDS_IN_RELU)
    tree["stages"][0]["residual"]["drop_path"] = 0.5
    model = netspec.build(tree)
    unit = next(m for m in model.modules() if isinstance(m, Residual))
    x, y = torch.randn(2, 4, 8, 8), torch.tensor([0, 2])
    _grads(model.train(), x, y)       # training: drop-path's product is fresh, added into
    # eval: drop-path is the identity, the ReLU's own output comes through, and backward (a
    # saliency map, say) still needs it
    _grads(model.eval(), x, y)
    assert not unit.add_in_place
