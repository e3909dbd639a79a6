"""The hardest network of each family against torchvision: params, MACs and logits."""
import pytest
import torchvision.models as tv
from parity import check_parity, count_params, reference_macs

import netspec

# spec -> (reference constructor, smallest comfortable test input size)
HARDEST = {
    "resnet50": (lambda: tv.resnet50(), 64),
    "googlenet": (lambda: tv.googlenet(aux_logits=False, init_weights=True), 64),
    "densenet121": (lambda: tv.densenet121(), 64),
    "mobilenet_v2": (lambda: tv.mobilenet_v2(), 64),
    "efficientnet_b0": (lambda: tv.efficientnet_b0(), 64),
    "squeezenet1_0": (lambda: tv.squeezenet1_0(), 64),
}


@pytest.mark.parametrize("name", sorted(HARDEST))
def test_parity_with_torchvision(name):
    factory, size = HARDEST[name]
    check_parity(name, factory(), size)


@pytest.mark.parametrize("name", ["resnet50", "mobilenet_v2", "efficientnet_b0"])
def test_macs_at_full_resolution(name):
    """MACs at the spec's own 224x224 agree with FlopCounterMode, not only at test sizes."""
    report = netspec.analyze(name)
    assert report.input_shape == (3, 224, 224)
    ref = HARDEST[name][0]().eval()
    assert abs(report.macs - reference_macs(ref, (3, 224, 224))) <= 0.005 * report.macs


@pytest.mark.parametrize("width", [0.5, 0.75, 1.0, 1.4])
def test_mobilenet_v2_width_multiplier(width):
    report = netspec.analyze("mobilenet_v2", [f"scale.width={width}"])
    assert report.params == count_params(tv.mobilenet_v2(width_mult=width))


def test_mobilenet_v2_width_logits():
    check_parity("mobilenet_v2", tv.mobilenet_v2(width_mult=0.5), 32, ["scale.width=0.5"])


def test_num_classes_override():
    ref = tv.resnet50(num_classes=10)
    check_parity("resnet50", ref, 32, ["num_classes=10"])
