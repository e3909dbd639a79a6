"""Drawing paths: stand-ins for an Optuna trial that the resolve pass asks for each decision.

Each draws among a decision's options as the REINFORCE controller sees them (rl/options.py: a
choice's options, an int range's grid, a float range's points), so a path the supernet trains is
one the controller can propose and the evolution can score:

    UniformTrial      every option equally likely (SPOS's uniform path sampling)
    PinnedTrial       one decision fixed, the others uniform (the supernet's coverage pass)
    ControllerTrial   the LSTM controller's softmax (ENAS), its steps kept for the update
    AnchoredTrial     another trial's draw for each decision with probability p, else one anchor
                      path's value (the supernet's warm-up, training.py's Widening)
"""
from __future__ import annotations

import random

import torch
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from ..rl.options import options_of


class DrawTrial:
    """The trial interface the resolve pass's Chooser calls; ``draw`` picks an option."""

    def draw(self, name: str, dist):        # pragma: no cover - abstract
        raise NotImplementedError

    def suggest_categorical(self, name, choices):
        return self.draw(name, CategoricalDistribution(list(choices)))

    def suggest_int(self, name, low, high, step=1, log=False):
        return int(self.draw(name, IntDistribution(low, high, step=step, log=log)))

    def suggest_float(self, name, low, high, step=None, log=False):
        return float(self.draw(name, FloatDistribution(low, high, step=step, log=log)))


class UniformTrial(DrawTrial):
    def __init__(self, rng: random.Random):
        self.rng = rng
        self.pinned_choice = None

    def draw(self, name, dist):
        return self.rng.choice(options_of(dist))


class PinnedTrial(UniformTrial):
    """``name`` takes ``value``; every other decision is uniform."""

    def __init__(self, rng: random.Random, choice, value):
        super().__init__(rng)
        self.pinned_choice, self.value = choice, value

    def draw(self, name, dist):
        return self.value if name == self.pinned_choice.path else super().draw(name, dist)


def pinned_options(space) -> list[tuple]:
    """(choice, option) for every option of every choice of the space."""
    out = []
    for c in space.index.values():
        if c.kind == "choice":
            dist = CategoricalDistribution(c.labels())
        elif c.kind == "int":
            lo, hi = c.raw["int"]
            dist = IntDistribution(lo, hi, step=c.raw.get("step", 1), log=c.raw.get("log", False))
        else:
            lo, hi = c.raw["float"]
            dist = FloatDistribution(lo, hi, step=c.raw.get("step"), log=c.raw.get("log", False))
        out.extend((c, v) for v in options_of(dist))
    return out


class ControllerTrial(DrawTrial):
    """The controller's draw of one path (rl/policy.py's Policy); ``steps`` for its update."""

    def __init__(self, policy, generator: torch.Generator, greedy: bool = False):
        self.policy, self.generator, self.greedy = policy, generator, greedy
        x, hc = policy.model.initial()
        self.x, self.hc = x.detach(), tuple(t.detach() for t in hc)
        self.steps: list[tuple[int, int]] = []

    def draw(self, name, dist):
        from ..rl.options import signature
        options = options_of(dist)
        index = self.policy.add({"key": signature(name, dist, options), "name": name,
                                 "n": len(options)})
        token, self.x, self.hc = self.policy.draw(index, self.x, self.hc, self.generator,
                                                  greedy=self.greedy)
        self.steps.append((index, token))
        return options[token]


class AnchoredTrial(DrawTrial):
    """Each decision drawn by ``inner`` with probability ``p``; otherwise the ``anchor`` path's
    value (a decision the anchor lacks, as a repeat it did not have, is always drawn)."""

    def __init__(self, inner: DrawTrial, anchor: dict, p: float, rng: random.Random):
        self.inner, self.anchor, self.p, self.rng = inner, anchor, p, rng

    def draw(self, name, dist):
        if name in self.anchor and self.rng.random() >= self.p:
            return self.anchor[name]
        return self.inner.draw(name, dist)
