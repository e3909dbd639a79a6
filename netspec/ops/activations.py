"""The activations a spec may name (``act: relu``), and how to add one: :func:`register_activation`."""
from __future__ import annotations

from collections.abc import Callable

from torch import nn

from .base import Names

# name -> factory(inplace) of the module; `none` (no activation) is accepted wherever these are
ACTIVATIONS: dict[str, Callable[[bool], nn.Module]] = {}
ACT_NAMES = Names(ACTIVATIONS, "none")


def register_activation(name: str, factory: Callable[[bool], nn.Module]) -> None:
    """Make ``act: name`` build ``factory(inplace)``; ``inplace`` is a hint it may ignore."""
    if name == "none":
        raise ValueError("'none' means no activation; choose another name")
    ACTIVATIONS[name] = factory


def activation(name: str, inplace: bool = True) -> nn.Module:
    return ACTIVATIONS[name](inplace)


for _name, _factory in {
    "relu": lambda inplace: nn.ReLU(inplace=inplace),
    "relu6": lambda inplace: nn.ReLU6(inplace=inplace),
    "silu": lambda inplace: nn.SiLU(inplace=inplace),
    "swish": lambda inplace: nn.SiLU(inplace=inplace),
    "hswish": lambda inplace: nn.Hardswish(inplace=inplace),
    "hsigmoid": lambda inplace: nn.Hardsigmoid(inplace=inplace),
    "sigmoid": lambda inplace: nn.Sigmoid(),
    "tanh": lambda inplace: nn.Tanh(),
    "gelu": lambda inplace: nn.GELU(),
    "elu": lambda inplace: nn.ELU(inplace=inplace),
    "leaky_relu": lambda inplace: nn.LeakyReLU(0.01, inplace=inplace),
    "mish": lambda inplace: nn.Mish(inplace=inplace),
}.items():
    register_activation(_name, _factory)
