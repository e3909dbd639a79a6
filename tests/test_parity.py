"""The hardest network of each family against torchvision: params, MACs and logits; and the
helper every parity test uses, seen to refuse what cannot prove a port."""
import pytest
import torch
import torchvision.models as tv
import zoo_proofs
from parity import assert_logits_match, check_parity, count_params, randomize

import netspec


@pytest.mark.parametrize("proof", zoo_proofs.params("test_parity.py::test_parity_with_torchvision"))
def test_parity_with_torchvision(proof):
    check_parity(proof.spec, proof.make, proof.size, proof.overrides)


@pytest.mark.parametrize("width", [0.5, 0.75, 1.0, 1.4])
def test_mobilenet_v2_width_multiplier(width):
    report = netspec.analyze("mobilenet_v2", [f"scale.width={width}"])
    assert report.params == count_params(tv.mobilenet_v2(width_mult=width))


# -- the helper itself ---------------------------------------------------------------------------

def test_randomize_touches_every_floating_tensor_and_zeroes_no_gamma():
    model = randomize(tv.resnet18())
    for name, t in model.state_dict().items():
        if name.endswith(("running_var", "bn1.weight", "bn2.weight")):
            assert t.min() >= 0.5 and t.max() <= 1.5, name
    fresh = tv.resnet18()             # zero biases, unit variances: each must have changed
    for (name, ours), theirs in zip(model.state_dict().items(), fresh.state_dict().values(),
                                    strict=True):
        if ours.is_floating_point():
            assert not torch.equal(ours, theirs), name


def test_logits_too_small_to_compare_are_refused():
    tiny = torch.full((2, 10), 1e-4)
    tiny[1] *= 2
    with pytest.raises(AssertionError, match="too small to compare"):
        assert_logits_match("net", tiny, tiny)


def test_logits_that_do_not_depend_on_the_input_are_refused():
    flat = torch.ones(2, 10)
    with pytest.raises(AssertionError, match="hardly depend on the input"):
        assert_logits_match("net", flat, flat)


def test_the_tolerance_is_relative_to_the_logits_scale():
    theirs = torch.tensor([[1000.0, -3.0], [2.0, 5.0]])
    assert_logits_match("net", theirs + 0.09, theirs)           # 0.09 < 1e-4 * 1000
    with pytest.raises(AssertionError, match="logits differ by 0.11"):
        assert_logits_match("net", theirs + 0.11, theirs)
