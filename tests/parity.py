"""Shared checks of a zoo spec against a live reference model (torchvision, timm or a class of theirs).

A reference is compared at random weights of a sane scale, never at its library's own init: at
that init many references give logits near 1e-14 (torchvision's efficientnet_b0 at 64 px) or
zero-initialise the last BN of each block (timm's seresnet50), and a comparison of such logits
passes whatever the port did. Logits are compared relative to their scale, and logits too small
to compare are refused rather than passed.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

import netspec

MACS_TOLERANCE = 0.005     # the zoo's promise: MACs within 0.5% of FlopCounterMode / 2
LOGITS_TOLERANCE = 1e-4    # of the reference's largest logit
LOGITS_FLOOR = 1e-6        # float32 rounding of the largest logit; below 1e-3 nothing is compared
SMALLEST_LOGITS = 1e-3     # a reference whose logits peak below this proves nothing: refused


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def reference_macs(model: torch.nn.Module, shape: tuple) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, *shape))
    return counter.get_total_flops() // 2


def randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every floating tensor of the model's state_dict a random value, in place.

    Weights are He normals (std sqrt(2 / fan-in)) so the signal keeps its scale through ReLU
    layers; norm weights and running variances lie in [0.5, 1.5] (never zero, so no branch is
    switched off and a mix-up of two BN tensors shows); biases, shifts and running means are
    small normals.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict(keep_vars=True).items():
            if not t.is_floating_point():
                continue
            if t.dim() > 1:
                t.normal_(0.0, math.sqrt(2.0 / t[0].numel()), generator=gen)
            elif name.endswith(("running_var", "weight")):
                t.uniform_(0.5, 1.5, generator=gen)
            else:
                t.normal_(0.0, 0.1, generator=gen)
    return model


def poison(model: torch.nn.Module) -> torch.nn.Module:
    """NaN in every floating tensor: whatever port_weights leaves unset poisons the logits."""
    with torch.no_grad():
        for t in model.state_dict(keep_vars=True).values():
            if t.is_floating_point():
                t.fill_(math.nan)
    return model


def assert_logits_match(name: str, ours: torch.Tensor, theirs: torch.Tensor):
    """Equal logits within 1e-4 of the reference's largest one; tiny reference logits fail."""
    assert ours.shape == theirs.shape, f"{name}: logits {tuple(ours.shape)} vs {tuple(theirs.shape)}"
    scale = theirs.abs().max().item()
    assert scale >= SMALLEST_LOGITS, (
        f"{name}: the reference's logits peak at {scale:.3g}, too small to compare a port by")
    spread = (theirs - theirs.mean(0)).abs().max().item()
    assert spread >= SMALLEST_LOGITS * scale, (
        f"{name}: the reference's logits hardly depend on the input (spread {spread:.3g} of "
        f"{scale:.3g}): biases alone would pass")
    diff = (ours - theirs).abs().max().item()
    tolerance = max(LOGITS_TOLERANCE * scale, LOGITS_FLOOR)
    assert diff <= tolerance, (
        f"{name}: logits differ by {diff:.3g}, over {tolerance:.3g} (1e-4 of their peak {scale:.3g})")


def tensor_shapes(model: torch.nn.Module) -> list[tuple]:
    """The shapes of the state_dict in its order (BN's step counters left out)."""
    return [tuple(v.shape) for k, v in model.state_dict().items()
            if not k.endswith("num_batches_tracked")]


def unset(make: Callable[[], torch.nn.Module]) -> torch.nn.Module:
    """``make()`` with its tensors allocated but not initialised, for randomize or poison to
    fill: a library's init of a 140M-parameter VGG costs more than the rest of its test. A model
    with buffers outside its state_dict (computed at construction) is made as it is."""
    with torch.device("meta"):
        model = make()
    if {n for n, _ in model.named_buffers()} - set(model.state_dict()):
        return make()
    model.to_empty(device="cpu")
    with torch.no_grad():
        for t in model.state_dict(keep_vars=True).values():
            if not t.is_floating_point():
                t.zero_()
    return model


def random_reference(make: Callable[[], torch.nn.Module], seed: int = 0) -> torch.nn.Module:
    return randomize(unset(make), seed)


def unported(name: str, overrides=()) -> torch.nn.Module:
    """Our model for the spec with NaN in every tensor, to port into."""
    return poison(unset(lambda: netspec.build(name, list(overrides))))


def assert_params_and_macs(name: str, reference: torch.nn.Module, overrides=()):
    """Equal parameters, and MACs within 0.5%, at the input the overrides leave; ``reference``
    is best on the meta device, where counting its MACs costs nothing."""
    report = netspec.analyze(name, list(overrides))
    assert report.params == count_params(reference), (
        f"{name}: params {report.params:,} vs reference {count_params(reference):,}")
    with torch.device(next(reference.parameters()).device):
        ref_macs = reference_macs(reference, report.input_shape)
    assert abs(report.macs - ref_macs) <= MACS_TOLERANCE * ref_macs, (
        f"{name} at {report.input_shape}: MACs {report.macs:,} vs reference {ref_macs:,}")
    return report


def check_parity(name: str, make: Callable[[], torch.nn.Module], size: int, overrides=(),
                 batch: int = 2):
    """The spec against ``make()``: params and MACs at the spec's own input size and at ``size``,
    then equal eval-mode logits at ``size`` after port_weights from a randomised reference."""
    small = [f"input.size={size}", *overrides]
    with torch.device("meta"):
        meta = make().eval()
    assert_params_and_macs(name, meta, overrides)
    report = assert_params_and_macs(name, meta, small)
    reference = random_reference(make).eval()
    model = unported(name, small).eval()
    netspec.port_weights(model, reference)
    x = torch.randn(batch, *report.input_shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert_logits_match(name, model(x), reference(x))
    return report
