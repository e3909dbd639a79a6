"""The DenseNet and SqueezeNet families.

densenet161/169/201 and squeezenet1_1 against torchvision, densenet264 against torchvision's
DenseNet class with Table 1's numbers (torchvision has no constructor for it), by
``check_parity``. DenseNet-264 and DenseNet-BC-100 (CIFAR) against counts derived from the paper.
"""
import pytest
import torch
import zoo_proofs
from parity import check_parity, count_params, tensor_shapes

import netspec


@pytest.mark.parametrize("proof", zoo_proofs.params("test_zoo_dense.py::test_logits"))
def test_logits(proof):
    check_parity(proof.spec, proof.make, proof.size, proof.overrides)


@pytest.mark.parametrize("proof", zoo_proofs.params("test_zoo_dense.py::test_logits"))
def test_state_dict_order_is_the_references(proof):
    with torch.device("meta"):
        ours, theirs = netspec.build(proof.spec, list(proof.overrides)), proof.make()
    assert tensor_shapes(ours) == tensor_shapes(theirs)


# -- counts derived from the paper ----------------------------------------------------------------

def densenet_params(k: int, blocks: tuple, stem_k: int, stem_bn: bool, classes: int) -> int:
    """Huang et al. 2017, Sec. 3 and Table 1, by hand: a first conv of 2k channels (no bias),
    BN-ReLU-1x1 4k, BN-ReLU-3x3 k bottleneck layers (DenseNet-B), transitions BN-ReLU-1x1 that
    halve the channels (-C, theta = 0.5), a final BN and the classifier."""
    c = 2 * k
    total = stem_k * stem_k * 3 * c + (2 * c if stem_bn else 0)
    for i, n in enumerate(blocks):
        for _ in range(n):
            total += 2 * c + c * 4 * k + 2 * 4 * k + 4 * k * k * 9
            c += k
        if i < len(blocks) - 1:
            total += 2 * c + c * (c // 2)
            c //= 2
    return total + 2 * c + c * classes + classes


DERIVED_COUNTS = {
    # Table 1: 7x7 conv, BN-ReLU, max pool; k = 32, blocks of 6, 12, 64, 48 layers
    "densenet264": densenet_params(32, (6, 12, 64, 48), 7, True, 1000),
    # Sec. 3: L = 100 -> (100 - 4) / 6 = 16 layers per block, k = 12, a 3x3 first conv whose
    # BN-ReLU is the first dense layer's
    "densenet_bc100": densenet_params(12, (16, 16, 16), 3, False, 10),
}


@pytest.mark.parametrize("proof", zoo_proofs.params("test_zoo_dense.py::test_count_derived"))
def test_count_derived(proof):
    count = DERIVED_COUNTS[proof.spec]
    assert netspec.analyze(proof.spec).params == count
    assert not proof.printed or proof.rounds_to_printed(count), (count, proof.printed)


def test_densenet121_by_the_same_count():
    assert netspec.analyze("densenet121").params == densenet_params(32, (6, 12, 24, 16), 7, True,
                                                                   1000)


def test_densenets_are_densenet121_with_other_numbers():
    """Each variant is the base spec with Table 1's growth rate and block sizes as `vars`."""
    table = {"densenet161": (48, 6, 12, 36, 24), "densenet169": (32, 6, 12, 32, 32),
             "densenet201": (32, 6, 12, 48, 32), "densenet264": (32, 6, 12, 64, 48)}
    for name, (k, *blocks) in table.items():
        over = [f"vars.growth={k}"] + [f"vars.n{i + 1}={n}" for i, n in enumerate(blocks)]
        base = netspec.analyze("densenet121", over)
        ours = netspec.analyze(name)
        assert (ours.params, ours.macs) == (base.params, base.macs)
        # the name counts the weighted layers: 121 = 1 + 2 * (6 + 12 + 24 + 16) + 3 + 1, ...,
        # except that Table 1's blocks for DenseNet-264 give 1 + 2 * 130 + 3 + 1 = 265
        convs = sum(lay.kind in ("conv", "linear") for lay in ours.layers)
        depth = int(name[len("densenet"):])
        assert convs == (265 if depth == 264 else depth)
    assert netspec.analyze("densenet121").params == 7_978_856


def test_densenet_table_1_output_sizes():
    layers = netspec.analyze("densenet169").tree
    stages = [lay.out_shape[1:] for lay in layers if lay.depth == 2
              and lay.name.startswith("stages.")]
    assert stages == [(56, 56), (28, 28), (28, 28), (14, 14), (14, 14), (7, 7), (7, 7)]


# -- DenseNet-BC (L=100, k=12) on CIFAR ----------------------------------------------------------

def test_densenet_bc100_shapes():
    report = netspec.analyze("densenet_bc100")
    assert report.input_shape == (3, 32, 32) and report.output_shape == (10,)
    stages = [lay.out_shape for lay in report.tree if lay.depth == 2
              and lay.name.startswith("stages.")]
    assert stages == [(216, 32, 32), (108, 16, 16), (300, 16, 16), (150, 8, 8), (342, 8, 8)]
    # 100 layers: the first conv, 3 x 16 x 2 in the dense blocks, 2 transitions, the classifier
    assert sum(lay.kind in ("conv", "linear") for lay in report.layers) == 100


def test_densenet_bc100_builds_and_trains():
    model = netspec.build("densenet_bc100")
    assert count_params(model) == DERIVED_COUNTS["densenet_bc100"]
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    out = model(x)
    assert out.shape == (2, 10)
    torch.nn.functional.cross_entropy(out, torch.tensor([3, 7])).backward()
    assert model.stem[0].weight.grad.abs().sum() > 0
