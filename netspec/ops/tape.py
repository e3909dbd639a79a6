"""Named tensors at run time: the tape a network's named outputs are kept on during a forward pass.

A layer whose output is read further on (``from:``, a ``concat``/``add``/``mul`` of names, the
network's ``outputs``) gets a forward hook that puts its output on the tape; the readers take it
from there. Hooks, not wrapper modules, so that naming a layer leaves its module path and the
state_dict as they are. Each built network has its own tape, which its forward clears.
"""
from __future__ import annotations

from contextvars import ContextVar

import torch
from torch import nn


class Tape:
    """The named outputs of the forward pass under way, by key."""

    def __init__(self):
        self.saved: dict[str, torch.Tensor] = {}

    def read(self, key: str) -> torch.Tensor:
        try:
            return self.saved[key]
        except KeyError:      # a module run outside its network's forward, or out of order
            raise RuntimeError(f"named tensor '{key.partition('#')[0]}' was read before the "
                               f"layer that makes it ran in this forward pass") from None

    def clear(self) -> None:
        self.saved.clear()

    def __getstate__(self):            # a pickled or copied network carries no tensors of a pass
        return {}

    def __setstate__(self, state):
        self.saved = {}


_BUILDING: ContextVar[Tape | None] = ContextVar("netspec_tape", default=None)
_LOOSE = Tape()           # the tape of a part built outside a network (its own forward runs it)


def building_tape(tape: Tape):
    """Set the tape the modules built until ``reset`` use; returns the reset token."""
    return _BUILDING.set(tape)


def done_building(token) -> None:
    _BUILDING.reset(token)


def current_tape() -> Tape:
    return _BUILDING.get() or _LOOSE


class SaveOutput:
    """A forward hook: keep the module's output on the tape under ``key``."""

    def __init__(self, key: str, tape: Tape):
        self.key, self.tape = key, tape

    def __call__(self, module, args, output):
        self.tape.saved[self.key] = output


class ReadInput:
    """A forward pre-hook: the module reads the tensor ``key`` instead of its input."""

    def __init__(self, key: str, tape: Tape):
        self.key, self.tape = key, tape

    def __call__(self, module, args):
        return (self.tape.read(self.key),)


def _centre(t: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    top, left = (t.shape[-2] - size[0]) // 2, (t.shape[-1] - size[1]) // 2
    return t[..., top:top + size[0], left:left + size[1]]


def combine(parts: list[torch.Tensor], mode: str) -> torch.Tensor:
    """concat (channels), add or mul of tensors, in order (a branch's merge and a names' merge)."""
    if mode == "concat":
        return torch.cat(parts, 1)
    out = parts[0]
    for p in parts[1:]:
        out = out * p if mode == "mul" else out + p
    return out


class Merge(nn.Module):
    """The concatenation (channels), sum or product of named tensors, in the written order;
    ``None`` in ``keys`` stands for the module's own input (the current tensor)."""

    def __init__(self, keys: list[str | None], mode: str, tape: Tape,
                 crop: tuple[int, int] | None = None):
        super().__init__()
        self.keys, self.mode, self.crop = keys, mode, crop
        self.__dict__["tape"] = tape               # not a submodule, not state

    def forward(self, x):
        parts = [x if k is None else self.tape.read(k) for k in self.keys]
        if self.crop is not None:
            parts = [_centre(p, self.crop) for p in parts]
        return combine(parts, self.mode)

    def extra_repr(self):
        names = [". " if k is None else k.partition("#")[0] for k in self.keys]
        crop = f", cropped to {self.crop[0]}x{self.crop[1]}" if self.crop else ""
        return f"{self.mode}({', '.join(n.strip() for n in names)}){crop}"
