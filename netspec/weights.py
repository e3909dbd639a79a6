"""Copy the weights of a reference model (torchvision, timm, or any module) into a compiled one."""
from __future__ import annotations

import torch
from torch import nn

from .errors import WeightsError


def _tensors(module: nn.Module) -> list[tuple[str, torch.Tensor]]:
    # BatchNorm's step counter is bookkeeping, not weights; some libraries don't keep it.
    return [(k, v) for k, v in module.state_dict(keep_vars=True).items()
            if not k.endswith("num_batches_tracked")]


def _shape(t: torch.Tensor) -> str:
    return "x".join(map(str, t.shape)) or "scalar"


def port_weights(model: nn.Module, reference: nn.Module) -> nn.Module:
    """Copy every parameter and buffer of ``reference`` into ``model``, pairing them in order.

    Zoo specs register their layers in the reference's order, so the n-th tensor of one is the
    n-th of the other. Any difference in count or shape raises a WeightsError naming both sides.
    """
    ours, theirs = _tensors(model), _tensors(reference)
    for i, ((mk, mv), (rk, rv)) in enumerate(zip(ours, theirs)):
        if mv.shape != rv.shape:
            raise WeightsError(f"tensor #{i} does not fit: model '{mk}' is {_shape(mv)} but "
                               f"reference '{rk}' is {_shape(rv)}")
    if len(ours) != len(theirs):
        extra = ours[len(theirs):] or theirs[len(ours):]
        side = "model" if len(ours) > len(theirs) else "reference"
        raise WeightsError(f"the model has {len(ours)} tensors and the reference {len(theirs)}; "
                           f"the first unmatched one is {side} '{extra[0][0]}' "
                           f"({_shape(extra[0][1])})")
    with torch.no_grad():
        for (_, mv), (_, rv) in zip(ours, theirs):
            mv.copy_(rv.detach())
    return model
