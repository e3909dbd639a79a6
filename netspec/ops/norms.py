"""The normalizations a spec may name (``norm: bn``), and how to add one: :func:`register_norm`.

A norm declares the ``defaults:`` keys it reads (``bn_eps``, ``gn_groups``, ...) with their default,
type and range, so the ``defaults`` section accepts and checks them, and a check of the channels it
can normalize, so that a bad combination is a SpecError in the resolve pass, never a torch error.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

from .base import Names


@dataclass(frozen=True)
class Setting:
    """A ``defaults:`` key a norm reads: its default and the range a value must lie in."""

    default: float
    type: str = "float"           # "float" or "int"
    low: float = 0.0              # exclusive
    high: float | None = None     # inclusive


@dataclass(frozen=True)
class Norm:
    name: str
    make: Callable[..., nn.Module]           # (channels, dims, **kwargs) -> module
    reads: dict[str, str]                    # its keyword argument -> the defaults key it comes from
    check: Callable[[int, dict], str | None] | None = None   # (channels, kwargs) -> what is wrong
    params: Callable[[int], int] = field(default=lambda c: 2 * c)   # affine weight and bias

    def kwargs(self, defaults: dict) -> dict:
        return {arg: defaults[key] for arg, key in self.reads.items()}


NORMS: dict[str, Norm] = {}
NORM_NAMES = Names(NORMS, "none")
SETTINGS: dict[str, Setting] = {}          # every defaults key some norm reads


def register_norm(name: str, make: Callable[..., nn.Module], *, reads: dict[str, str] | None = None,
                  settings: dict[str, Setting] | None = None,
                  check: Callable[[int, dict], str | None] | None = None,
                  params: Callable[[int], int] | None = None) -> None:
    """Make ``norm: name`` build ``make(channels, dims, **kwargs)`` (dims: 2 on maps, 1 on vectors).

    ``reads`` maps each keyword argument to the ``defaults:`` key it takes its value from;
    ``settings`` declares the new keys among them; ``check(channels, kwargs)`` returns what is wrong
    with a channel count, or None; ``params(channels)`` counts its parameters (default 2 * channels).
    """
    if name == "none":
        raise ValueError("'none' means no norm; choose another name")
    for key, setting in (settings or {}).items():
        if SETTINGS.get(key, setting) != setting:
            raise ValueError(f"defaults key '{key}' is declared twice with different settings")
        SETTINGS[key] = setting
    reads = dict(reads or {})
    missing = [key for key in reads.values() if key not in SETTINGS]
    if missing:
        raise ValueError(f"norm '{name}' reads undeclared defaults keys: {missing}")
    NORMS[name] = Norm(name, make, reads, check, params or (lambda c: 2 * c))


def norm_module(kind: str, channels: int, dims: int, kwargs: dict) -> nn.Module:
    return NORMS[kind].make(channels, dims, **kwargs)


def _batch_norm(channels: int, dims: int, *, eps: float, momentum: float) -> nn.Module:
    return (nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d)(channels, eps=eps, momentum=momentum)


def _group_norm(channels: int, dims: int, *, eps: float, groups: int) -> nn.Module:
    return nn.GroupNorm(groups, channels, eps=eps)


def _groups_divide(channels: int, kw: dict) -> str | None:
    g = kw["groups"]
    if g < 1 or channels % g:
        return (f"group norm with {g} groups cannot normalize {channels} channels; set "
                f"defaults.gn_groups to a divisor or use bn")
    return None


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channels of each position of an NCHW map (torchvision's LayerNorm2d,
    ConvNeXt's): its weight and bias are per channel, as nn.LayerNorm(c)'s on a vector."""

    def forward(self, x):
        if x.dim() == 2:
            return super().forward(x)
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def _layer_norm(channels: int, dims: int, *, eps: float) -> nn.Module:
    return ChannelLayerNorm(channels, eps=eps)


register_norm("bn", _batch_norm, reads={"eps": "bn_eps", "momentum": "bn_momentum"},
              settings={"bn_eps": Setting(1e-5), "bn_momentum": Setting(0.1, high=1.0)})
register_norm("gn", _group_norm, reads={"eps": "gn_eps", "groups": "gn_groups"},
              settings={"gn_eps": Setting(1e-5), "gn_groups": Setting(32, "int")},
              check=_groups_divide)
register_norm("ln", _layer_norm, reads={"eps": "ln_eps"}, settings={"ln_eps": Setting(1e-6)})
