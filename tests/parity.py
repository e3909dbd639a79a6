"""Shared checks of a zoo spec against a live reference model (torchvision or timm)."""
from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

import netspec

MACS_TOLERANCE = 0.005     # the zoo's promise: MACs within 0.5% of FlopCounterMode / 2
LOGITS_TOLERANCE = 1e-4


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def reference_macs(model: torch.nn.Module, shape: tuple) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, *shape))
    return counter.get_total_flops() // 2


def check_parity(name: str, reference: torch.nn.Module, size: int, overrides=(), batch: int = 2):
    """Params equal, MACs within 0.5%, and equal eval-mode logits after port_weights."""
    over = [f"input.size={size}", *overrides]
    report = netspec.analyze(name, over)
    reference.eval()
    assert report.params == count_params(reference), f"{name}: params differ"
    ref_macs = reference_macs(reference, report.input_shape)
    assert abs(report.macs - ref_macs) <= MACS_TOLERANCE * ref_macs, (
        f"{name}: MACs {report.macs:,} vs reference {ref_macs:,}")
    model = netspec.build(name, over).eval()
    assert count_params(model) == report.params, f"{name}: built model disagrees with analysis"
    netspec.port_weights(model, reference)
    torch.manual_seed(0)
    x = torch.randn(batch, *report.input_shape)
    with torch.no_grad():
        ours, theirs = model(x), reference(x)
    assert ours.shape == theirs.shape
    diff = (ours - theirs).abs().max().item()
    assert diff <= LOGITS_TOLERANCE, f"{name}: logits differ by {diff:.3g}"
    return report


def randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give a reference random weights at a sane scale, in place, before ``check_parity``.

    Libraries' own inits can make deep logits explode (torchvision's Inception-v3: ~1e10) or
    leave BN statistics at 0 and 1, where a mix-up of two BN tensors would not show. Here weights
    are fan-in normals, BN scales and running variances lie in [0.5, 1.5], biases, shifts and
    running means are small: the logits stay O(1) and every tensor matters.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict(keep_vars=True).items():
            if not t.is_floating_point():
                continue
            if t.dim() > 1:
                t.normal_(0.0, (1.0 / t[0].numel()) ** 0.5, generator=gen)
            elif name.endswith(("running_var", "weight")):
                t.uniform_(0.5, 1.5, generator=gen)
            else:
                t.normal_(0.0, 0.1, generator=gen)
    return model
