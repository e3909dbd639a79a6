"""Networks that return maps: U-Net (Ronneberger et al. 2015), counted by hand from Fig. 1 and
run against a U-Net written here in plain torch; ResNet-50's four stage maps against torchvision's
IntermediateLayerGetter, map by map after port_weights from the randomised reference."""
from __future__ import annotations

import pytest
import torch
import zoo_proofs
from parity import assert_logits_match, assert_params_and_macs, random_reference, unported
from torch import nn

import netspec

# -- U-Net ------------------------------------------------------------------------------------

# Fig. 1: the channels of the five levels, the 2-class output, and the map sizes it prints
LEVELS = [64, 128, 256, 512, 1024]
CLASSES = 2
ENCODER_SIZES = [(570, 568), (282, 280), (138, 136), (66, 64), (30, 28)]
UP_SIZES = [56, 104, 200, 392]                # each up-conv doubles the map
DECODER_SIZES = [(54, 52), (102, 100), (198, 196), (390, 388)]


def conv(cin: int, cout: int, k: int) -> int:
    return k * k * cin * cout + cout           # weights and bias: the paper's convs have no BN


@pytest.mark.parametrize("proof", zoo_proofs.params("test_zoo_maps.py::test_unet_count_derived"))
def test_unet_count_derived(proof):
    count, cin = 0, 1
    for c in LEVELS:                            # contracting path: two 3x3 convs per level
        count += conv(cin, c, 3) + conv(c, c, 3)
        cin = c
    for c in reversed(LEVELS[:-1]):             # up-conv 2x2 halving, then two 3x3 convs on the
        count += conv(cin, c, 2)                # concatenation of the copied map and the up-conv
        count += conv(2 * c, c, 3) + conv(c, c, 3)
        cin = c
    count += conv(cin, CLASSES, 1)
    assert netspec.analyze(proof.spec).params == count


@pytest.mark.parametrize("proof", zoo_proofs.params("test_zoo_maps.py::test_unet_map_sizes"))
def test_unet_map_sizes(proof):
    report = netspec.analyze(proof.spec)
    convs = [lay.out_shape[1] for lay in report.layers if lay.kind == "conv"]
    ups = [lay.out_shape[1] for lay in report.layers if lay.kind == "conv_transpose"]
    assert convs == [s for pair in ENCODER_SIZES + DECODER_SIZES for s in pair] + [388]
    assert ups == UP_SIZES
    assert report.input_shape == (1, 572, 572) and report.output_shape == (CLASSES, 388, 388)
    merges = [lay for lay in report.layers if lay.kind == "concat"]
    assert [m.out_shape for m in merges] == [(2 * c, s, s)
                                             for c, s in zip(reversed(LEVELS[:-1]), UP_SIZES)]


class PaperUNet(nn.Module):
    """Fig. 1 in plain torch: unpadded convs, copy and crop (the copied map first)."""

    def __init__(self, widths, classes=2):
        super().__init__()
        twice = lambda i, o: nn.Sequential(nn.Conv2d(i, o, 3), nn.ReLU(), nn.Conv2d(o, o, 3),
                                           nn.ReLU())
        self.down = nn.ModuleList()
        cin = 1
        for c in widths:
            self.down.append(twice(cin, c))
            cin = c
        self.up = nn.ModuleList()
        for c in reversed(widths[:-1]):
            self.up.append(nn.ModuleList([nn.ConvTranspose2d(cin, c, 2, 2), twice(2 * c, c)]))
            cin = c
        self.out = nn.Conv2d(cin, classes, 1)

    def forward(self, x):
        skips = []
        for i, level in enumerate(self.down):
            x = level(x if i == 0 else nn.functional.max_pool2d(x, 2))
            skips.append(x)
        for (upconv, convs), skip in zip(self.up, reversed(skips[:-1])):
            x = upconv(x)
            top = (skip.shape[-1] - x.shape[-1]) // 2
            skip = skip[..., top:top + x.shape[-2], top:top + x.shape[-1]]
            x = convs(torch.cat([skip, x], 1))
        return self.out(x)


def test_unet_computes_the_papers_network():
    # an eighth of the width and the smallest input the valid convs allow (572 - 384): the same
    # wiring at a size a CPU runs in a moment
    overrides = ["scale.width=0.125", "input.size=188"]
    make = lambda: PaperUNet([8, 16, 32, 64, 128])
    reference = random_reference(make).eval()
    model = unported("unet", overrides).eval()
    assert netspec.analyze("unet", overrides).params == sum(p.numel() for p in make().parameters())
    netspec.port_weights(model, reference)
    x = torch.randn(2, 1, 188, 188, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours, theirs = model(x), reference(x)
    assert ours.shape == theirs.shape == (2, CLASSES, 4, 4)
    assert_logits_match("unet", ours.flatten(1), theirs.flatten(1))


# -- a backbone with several outputs ---------------------------------------------------------

@pytest.mark.parametrize("proof", zoo_proofs.params("test_zoo_maps.py::test_backbone_maps"))
def test_backbone_maps(proof):
    with torch.device("meta"):
        meta = proof.make().eval()
    assert_params_and_macs(proof.spec, meta)
    small = [f"input.size={proof.size}"]
    assert_params_and_macs(proof.spec, meta, small)
    reference = random_reference(proof.make).eval()
    model = unported(proof.spec, small).eval()
    netspec.port_weights(model, reference)
    x = torch.randn(2, 3, proof.size, proof.size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours, theirs = model(x), reference(x)
    assert list(ours) == list(theirs) == ["c2", "c3", "c4", "c5"]
    for key in theirs:
        assert ours[key].shape == theirs[key].shape, key
        assert_logits_match(f"{proof.spec} {key}", ours[key].flatten(1), theirs[key].flatten(1))
