"""Weight slicing (Once-for-All, Cai et al. 2020), ``oneshot.share=slice``.

A module whose options differ only in size (a conv's kernel or channels, a norm's or a linear's
width) keeps one tensor of the largest size, and each path uses a slice of it: the first
channels of dims 0 and 1 (output, input), the centre of spatial dims (a 3x3 kernel is the
centre of the 5x5). So the options of a kernel, expansion or width choice train each other:
a 3x3 and a 5x5 path start from related features, which is what lets a supernet of many such
choices learn in few steps. What a path computes is still exactly its standalone network with
those slices as weights (``standalone_state``). Options that change anything else (stride,
dilation, a grouped into a depthwise conv, a bias) keep weights of their own, as in
``share=module``; so does any module of a kind not listed here.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.modules.batchnorm import _NormBase
from torch.nn.modules.conv import _ConvNd


def structure(m: nn.Module):
    """What must agree for two modules at one place to share one sliced tensor; None where the
    module's kind is not sliced (its shape then keys its weights, as in share=module)."""
    if isinstance(m, _ConvNd):
        depthwise = m.groups > 1 and m.groups == m.in_channels
        return ("conv", m.stride, m.dilation, m.transposed, m.padding_mode, m.bias is not None,
                "depthwise" if depthwise else m.groups)
    if isinstance(m, nn.Linear):
        return ("linear", m.bias is not None)
    if isinstance(m, _NormBase):
        return ("norm", m.eps, m.affine, m.track_running_stats)
    if isinstance(m, nn.GroupNorm):
        return ("groupnorm", m.eps, m.affine)
    if isinstance(m, nn.LayerNorm):
        return ("layernorm", m.eps, m.elementwise_affine)
    return None


def index(full: torch.Size, shape: torch.Size):
    """The slice of a tensor of shape ``full`` that a module of ``shape`` uses; None where
    it does not fit."""
    if len(full) != len(shape) or any(n > f for n, f in zip(shape, full)):
        return None
    return tuple(slice(0, n) if d < 2 else slice((f - n) // 2, (f - n) // 2 + n)
                 for d, (n, f) in enumerate(zip(shape, full)))


def grown(old: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
    """One tensor holding both: the elementwise largest shape, ``new`` in its slice and ``old``
    over it (the weights allocated first keep their values). What neither covers is filled
    like ``new``: its constant where it is one (a norm's ones, a bias's zeros), else normal
    with its mean and std."""
    shape = torch.Size(max(a, b) for a, b in zip(old.shape, new.shape))
    if shape == old.shape:
        return old
    out = torch.empty(shape, dtype=new.dtype)
    flat = new.detach().float().flatten()
    if flat.numel() == 0 or bool((flat == flat[0]).all()):
        out.fill_(float(flat[0]) if flat.numel() else 0.0)
    else:
        out.normal_(float(flat.mean()), float(flat.std()))
    with torch.no_grad():
        out[index(shape, new.shape)] = new
        out[index(shape, old.shape)] = old
    return out


class Views:
    """A path's sliced tensors: set on their modules as plain attributes before each forward
    (a forward pre-hook on the path), so each forward slices the current shared tensors and
    gradients and in-place running-statistics updates reach them."""

    def __init__(self):
        self.items: list[tuple[nn.Module, str, torch.Tensor, tuple]] = []

    def add(self, module: nn.Module, name: str, full: torch.Tensor, where: tuple) -> None:
        module._parameters.pop(name, None)
        module._buffers.pop(name, None)
        self.items.append((module, name, full, where))

    def refresh(self, *_):
        for module, name, full, where in self.items:
            module.__dict__[name] = full[where]

    def hook(self, root: nn.Module) -> None:
        if self.items:
            self.refresh()
            root.register_forward_pre_hook(self.refresh)


def standalone_state(module: nn.Module, views: Views) -> dict:
    """The state_dict of the standalone network a path stands for (its slices copied)."""
    state = module.state_dict()
    names = {id(m): n for n, m in module.named_modules()}
    for m, tname, full, where in views.items:
        prefix = names[id(m)]
        state[f"{prefix}.{tname}" if prefix else tname] = full[where].detach().clone()
    return state
