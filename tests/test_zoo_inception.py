"""The Inception family: GoogLeNet's auxiliary classifiers, Inception-v3 (torchvision),
Inception-v4, Inception-ResNet-v2 and Xception (timm).

Reference networks by ``check_parity``, with the reference's tensors in their own state_dict
order; the training outputs of Inception-v3 (logits and aux logits) as well.
"""
import pytest
import torch
import zoo_proofs
from parity import (
    assert_logits_match,
    assert_params_and_macs,
    check_parity,
    count_params,
    random_reference,
    tensor_shapes,
    unported,
)

import netspec


@pytest.mark.parametrize("proof", zoo_proofs.params("test_zoo_inception.py::test_logits"))
def test_logits(proof):
    check_parity(proof.spec, proof.make, proof.size, proof.overrides)


@pytest.mark.parametrize("proof", zoo_proofs.params("test_zoo_inception.py::test_logits"))
def test_state_dict_order_is_the_references(proof):
    """The spec registers its layers in the reference's order: the state_dicts pair one to one."""
    with torch.device("meta"):
        ours, theirs = netspec.build(proof.spec, list(proof.overrides)), proof.make()
    assert tensor_shapes(ours) == tensor_shapes(theirs)


def test_inception_v3_params_of_torchvision():
    # torchvision's documented counts (Inception_V3_Weights.meta: 27,161,264 with the aux head)
    assert netspec.analyze("inception_v3").params == 27_161_264
    assert netspec.analyze("inception_v3", ["vars.aux_logits=false"]).params == 23_834_568


def test_inception_v3_aux_needs_the_full_input():
    """The aux head's 5x5 conv needs the 17x17 grid of a 299x299 input; 298 is refused."""
    with pytest.raises(netspec.SpecError, match="smaller than 1x1"):
        netspec.analyze("inception_v3", ["input.size=298"])
    netspec.analyze("inception_v3", ["input.size=298", "vars.aux_logits=false"])
    with pytest.raises(netspec.SpecError):
        netspec.analyze("inception_v3", ["input.size=74", "vars.aux_logits=false"])
    netspec.analyze("inception_v3", ["input.size=75", "vars.aux_logits=false"])


@pytest.mark.parametrize(
    "proof", zoo_proofs.params("test_zoo_inception.py::test_inception_v3_training_outputs"))
def test_inception_v3_training_outputs(proof):
    """In training both return the logits and the aux logits (ours with its loss weight)."""
    with torch.device("meta"):
        assert_params_and_macs(proof.spec, proof.make().eval(), proof.overrides)
    reference = random_reference(proof.make).train()
    model = unported(proof.spec, proof.overrides).train()
    netspec.port_weights(model, reference)
    x = torch.randn(2, 3, proof.size, proof.size, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)                 # the same dropout mask on both sides
    logits, aux = reference(x)
    torch.manual_seed(0)
    ours, heads = model(x)
    assert [w for w, _ in heads] == [0.4]
    assert_logits_match("inception_v3 (training)", ours, logits)
    assert_logits_match("inception_v3 aux head (training)", heads[0][1], aux)


# -- shapes of the papers' tables ---------------------------------------------------------------

def _stage_shapes(name, over=()):
    tree = netspec.analyze(name, list(over)).tree
    return [lay.out_shape for lay in tree if lay.depth == 2 and lay.name.startswith("stages.")]


def test_inception_v3_grid_sizes():
    """Table 1: 35x35x288 after the Fig. 5 modules, 17x17x768 after Fig. 6, 8x8x2048 after
    Fig. 7."""
    assert netspec.analyze("inception_v3").layers[6].out_shape == (192, 35, 35)
    assert _stage_shapes("inception_v3", ["vars.aux_logits=false"]) == [
        (256, 35, 35), (288, 35, 35), (768, 17, 17), (768, 17, 17), (768, 17, 17),
        (768, 17, 17), (1280, 8, 8), (2048, 8, 8)]


def test_inception_v4_grid_sizes():
    """Fig. 9: stem 35x35x384, Inception-A 35x35x384, Reduction-A 17x17x1024, ..., 8x8x1536."""
    stem = [lay for lay in netspec.analyze("inception_v4").tree if lay.depth == 2
            and lay.name.startswith("stem.")]
    assert [lay.out_shape for lay in stem[3:]] == [(160, 73, 73), (192, 71, 71), (384, 35, 35)]
    assert _stage_shapes("inception_v4") == [
        (384, 35, 35), (1024, 17, 17), (1024, 17, 17), (1536, 8, 8), (1536, 8, 8)]


def test_inception_resnet_v2_grid_sizes():
    assert _stage_shapes("inception_resnet_v2") == [
        (320, 35, 35), (1088, 17, 17), (1088, 17, 17), (2080, 8, 8), (2080, 8, 8), (2080, 8, 8)]


def test_reduction_a_is_table_1():
    """Reduction-A's filter banks k, l, m, n: Inception-v4 192, 224, 256, 384; Inception-ResNet-v2
    256, 256, 384, 384; its output adds m + n to the input's 35x35 channels at 17x17."""
    for name, (k, l_, m, n), cin in (("inception_v4", (192, 224, 256, 384), 384),
                                     ("inception_resnet_v2", (256, 256, 384, 384), 320)):
        layers = [lay for lay in netspec.analyze(name).layers if lay.name.startswith("stages.1.")]
        convs = [lay.out_shape[0] for lay in layers if lay.kind == "conv"]
        assert convs == [n, k, l_, m]
        assert layers[-1].out_shape == (cin, 17, 17)          # the max pool branch


def test_xception_registers_the_skip_first():
    """timm's Block registers its 1x1 skip before the separable convs: so does the spec."""
    model = netspec.build("xception", ["input.size=64"])
    first = next(iter(model.stages[0].state_dict()))
    assert first.startswith("shortcut.")
    assert isinstance(model.stages[3][0].shortcut, torch.nn.Identity)   # middle flow: identity


# -- GoogLeNet's auxiliary classifiers (Szegedy et al. 2014, Sec. 5) ------------------------------

# Per head: 1x1 conv 128 (+bias) on 4a's 512 / 4d's 528 channels, FC 4*4*128 -> 1024 (+bias),
# linear 1024 -> 1000 (+bias)
AUX_4A = 512 * 128 + 128 + 4 * 4 * 128 * 1024 + 1024 + 1024 * 1000 + 1000
AUX_4D = 528 * 128 + 128 + 4 * 4 * 128 * 1024 + 1024 + 1024 * 1000 + 1000
assert (AUX_4A, AUX_4D) == (3_188_840, 3_190_888)


def test_googlenet_paper_aux_params():
    plain = netspec.analyze("googlenet_paper")
    with_aux = netspec.analyze("googlenet_paper", ["vars.aux=true"])
    assert plain.params == 6_998_552
    assert with_aux.params == plain.params + AUX_4A + AUX_4D
    assert with_aux.macs == plain.macs                 # not spent at inference
    heads = [lay for lay in with_aux.tree if lay.kind == "googlenet_aux"]
    assert [(lay.name, lay.params) for lay in heads] == [
        ("stages.3.googlenet_aux1", AUX_4A), ("stages.6.googlenet_aux1", AUX_4D)]
    # the 4x4x128 maps of the paper
    assert [lay.out_shape for lay in with_aux.layers
            if lay.name.startswith("stages.3.googlenet_aux1") and lay.kind == "conv"] == \
        [(128, 4, 4)]
    assert "googlenet_aux" in with_aux.table(depth=3)   # what netspec.summary prints


def test_googlenet_paper_aux_training_forward():
    model = netspec.build("googlenet_paper", ["vars.aux=true"])
    assert count_params(model) == 6_998_552 + AUX_4A + AUX_4D
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    model.train()
    logits, heads = model(x)
    assert logits.shape == (2, 1000)
    assert [(w, tuple(out.shape)) for w, out in heads] == [(0.3, (2, 1000)), (0.3, (2, 1000))]
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor([1, 2])) + sum(
        w * torch.nn.functional.cross_entropy(out, torch.tensor([1, 2])) for w, out in heads)
    loss.backward()
    aux_fc = model.stages[3].googlenet_aux1.body[3].linear     # FC 2048 -> 1024
    assert aux_fc.weight.shape == (1024, 2048) and aux_fc.weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        assert model(x).shape == (2, 1000)          # in eval: the logits alone
