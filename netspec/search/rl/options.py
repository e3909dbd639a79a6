"""The options of a decision: the values the controller chooses among for an Optuna distribution.

* ``CategoricalDistribution``: one token per choice.
* ``IntDistribution``: the grid ``low, low + step, ..., high`` when it has at most
  ``max_int_options`` values; otherwise ``bins`` values evenly spaced (log-spaced with
  ``log=True``) and rounded to the grid, duplicates dropped.
* ``FloatDistribution``: ``bins`` values evenly spaced from ``low`` to ``high`` inclusive
  (log-spaced with ``log=True``); with ``step``, the grid when it has at most ``bins`` values,
  else the evenly spaced values rounded to the grid. The controller only ever proposes these
  points; a fixed value elsewhere in the range counts as its nearest point.

A decision is named by its parameter name and the hash of its options (``signature``), so a
name whose options changed gets a new decision.
"""
from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence

import torch
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from ...errors import StrategyError


def _snap(values: list[float], low: float, step: float, high: float) -> list[float]:
    out = []
    for v in values:
        s = low + round((v - low) / step) * step
        s = min(max(s, low), high)
        if not out or abs(s - out[-1]) > 1e-12 * max(1.0, abs(s)):
            out.append(s)
    return out


def _spaced(low: float, high: float, n: int, log: bool) -> list[float]:
    if n <= 1 or low == high:
        return [low]
    if log:
        a, b = math.log(low), math.log(high)
        return [math.exp(a + (b - a) * i / (n - 1)) for i in range(n - 1)] + [high]
    return [low + (high - low) * i / (n - 1) for i in range(n - 1)] + [high]


def options_of(dist: BaseDistribution, bins: int = 10, max_int_options: int = 32) -> list:
    """The values a decision chooses among (see the module's docstring)."""
    if isinstance(dist, CategoricalDistribution):
        return list(dist.choices)
    if isinstance(dist, IntDistribution):
        low, high, step = int(dist.low), int(dist.high), int(dist.step)
        count = (high - low) // step + 1
        if count <= max_int_options:
            return [low + i * step for i in range(count)]
        values = _spaced(float(low), float(high), bins, dist.log)
        return [int(v) for v in _snap(values, low, step, high)]
    if isinstance(dist, FloatDistribution):
        low, high = float(dist.low), float(dist.high)
        if dist.step is not None:
            step = float(dist.step)
            count = int(math.floor((high - low) / step + 1e-9)) + 1
            if count <= bins:
                return [min(low + i * step, high) for i in range(count)]
            return _snap(_spaced(low, high, bins, False), low, step, high)
        return _spaced(low, high, bins, dist.log)
    raise StrategyError(f"strategy=rl: unsupported distribution {type(dist).__name__}; it "
                        f"handles CategoricalDistribution, IntDistribution and FloatDistribution")


def signature(name: str, dist: BaseDistribution, options: list) -> str:
    """The key of a decision: its name and a hash of its kind and options."""
    kind = type(dist).__name__.replace("Distribution", "").lower()
    text = json.dumps([kind, [repr(o) for o in options]])
    return f"{name}|{hashlib.sha1(text.encode()).hexdigest()[:12]}"


def token_of(dist: BaseDistribution, options: list, value) -> int:
    """The option a (fixed, not sampled) value stands for: its index, or the nearest point."""
    if isinstance(dist, CategoricalDistribution):
        return int(dist.to_internal_repr(value))
    log = getattr(dist, "log", False) and float(dist.low) > 0

    def key(o):
        return math.log(o) if log else float(o)
    v = key(max(float(value), float(dist.low)) if log else value)
    return min(range(len(options)), key=lambda i: abs(key(options[i]) - v))


def mask(logits: torch.Tensor, masked: Sequence[int]) -> torch.Tensor:
    """The logits with the masked options at -inf (probability 0)."""
    if not masked:
        return logits
    return logits.index_fill(0, torch.tensor(list(masked), dtype=torch.long), float("-inf"))
