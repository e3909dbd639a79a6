"""The DenseNet and SqueezeNet families.

densenet161/169/201 and squeezenet1_1 against torchvision, densenet264 against torchvision's
DenseNet class with Table 1's numbers (torchvision has no constructor for it): equal parameters
and MACs at 224x224 (both sides on the meta device), equal eval logits at a small input after
``port_weights``. DenseNet-BC-100 (CIFAR) against its parameter count by hand.
"""
import pytest
import torch
import torchvision.models as tv
from parity import MACS_TOLERANCE, check_parity, count_params, randomize, reference_macs
from torchvision.models.densenet import DenseNet

import netspec

# spec -> (reference constructor, small input size of the logits test)
REFERENCES = {
    "densenet161": (tv.densenet161, 64),
    "densenet169": (tv.densenet169, 64),
    "densenet201": (tv.densenet201, 64),
    "densenet264": (lambda: DenseNet(growth_rate=32, block_config=(6, 12, 64, 48),
                                     num_init_features=64), 64),
    "squeezenet1_1": (tv.squeezenet1_1, 64),
}


def _tensor_shapes(model):
    return [tuple(v.shape) for k, v in model.state_dict().items()
            if not k.endswith("num_batches_tracked")]


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_params_and_macs_at_full_size(name):
    report = netspec.analyze(name)
    assert report.input_shape == (3, 224, 224)
    with torch.device("meta"):
        reference = REFERENCES[name][0]().eval()
        ref_macs = reference_macs(reference, report.input_shape)
        model = netspec.build(name)
    assert report.params == count_params(reference)
    assert abs(report.macs - ref_macs) <= MACS_TOLERANCE * ref_macs, (report.macs, ref_macs)
    assert _tensor_shapes(model) == _tensor_shapes(reference)   # same state_dict order


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_logits(name):
    make, size = REFERENCES[name]
    check_parity(name, randomize(make()), size)


def test_densenet264_params():
    assert netspec.analyze("densenet264").params == 33_337_704


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

def _bc100_params(k=12, layers=16, classes=10):
    """By hand: a bottleneck layer on c channels is BN(c) + 1x1 c->4k + BN(4k) + 3x3 4k->k."""
    def layer(c):
        return 2 * c + c * 4 * k + 2 * 4 * k + 4 * k * k * 9

    total, c = 3 * 2 * k * 9, 2 * k               # the first 3x3 conv, no bias
    for block in range(3):
        total += sum(layer(c + i * k) for i in range(layers))
        c += layers * k
        if block < 2:                             # transition: BN, 1x1 to c/2
            total += 2 * c + c * (c // 2)
            c //= 2
    return total + 2 * c + c * classes + classes  # final BN, linear


def test_densenet_bc100_params():
    assert _bc100_params() == 769_162
    report = netspec.analyze("densenet_bc100")
    assert report.params == 769_162
    assert report.input_shape == (3, 32, 32) and report.output_shape == (10,)
    stages = [lay.out_shape for lay in report.tree if lay.depth == 2
              and lay.name.startswith("stages.")]
    assert stages == [(216, 32, 32), (108, 16, 16), (300, 16, 16), (150, 8, 8), (342, 8, 8)]
    # 100 layers: the first conv, 3 x 16 x 2 in the dense blocks, 2 transitions, the classifier
    assert sum(lay.kind in ("conv", "linear") for lay in report.layers) == 100


def test_densenet_bc100_builds_and_trains():
    model = netspec.build("densenet_bc100")
    assert count_params(model) == 769_162
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    out = model(x)
    assert out.shape == (2, 10)
    torch.nn.functional.cross_entropy(out, torch.tensor([3, 7])).backward()
    assert model.stem[0].weight.grad.abs().sum() > 0
