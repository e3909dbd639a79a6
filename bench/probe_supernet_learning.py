"""Probe: does a space's supernet learn when its paths change every step, and which decisions
stall it? (the nasnet_cell supernet barely learns in 4 epochs on digits, README "One-shot search")

A plain AdamW loop (lr 3e-3, batches of 64 digits at 32x32, one torch thread), a fresh supernet
per regime, the mean training loss of each 10 steps. The reference, measured in the same run:
one path held fixed every step. Then: every decision drawn uniformly; the cells' inputs pinned
to the reference path's and the operations drawn; the operations pinned and the inputs drawn;
the inputs pinned and the operations drawn among the separable convs only, or among the
parameter-free operations only; each decision drawn with probability p (the others the
reference's). ``--alone``: each decision drawn alone, the others pinned, ranked by the mean loss
of the last 20 of 60 steps (which decisions disturb the shared weights most).

    python bench/probe_supernet_learning.py              # nasnet_cell, 100 steps: ~5 minutes
    python bench/probe_supernet_learning.py --steps 300
    python bench/probe_supernet_learning.py --alone      # 40 decisions: ~10 minutes
    python bench/probe_supernet_learning.py --warmup 0.5 --steps 400   # ~6 minutes

``--warmup F``: the search's own warm-up (``oneshot.warmup=F``, training.py's Widening: each
decision drawn with a probability rising from 0.05 to 1 over the first F of the steps, else the
anchor path's) against every decision drawn from the start; then each supernet's accuracy on
held-out digits (batch statistics) for its anchor and for 30 uniformly drawn paths.
"""
from __future__ import annotations

import argparse
import random

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

from netspec.search.oneshot.paths import AnchoredTrial, UniformTrial
from netspec.search.oneshot.supernet import OutsideSupernet, Supernet, draw_path
from netspec.search.oneshot.training import Widening, path_accuracy
from netspec.search.rl.options import options_of
from netspec.search.sampling import FixedTrial, Sampler
from netspec.search.space import load_space


class Drawn(UniformTrial):
    """Decisions for which ``pin(name)`` holds take the reference path's value; an operation is
    drawn among the options ``allow`` keeps (all when it keeps none); the rest are uniform."""

    def __init__(self, rng, reference, pin, allow=lambda option: True, p=1.0):
        super().__init__(rng)
        self.reference, self.pin, self.allow, self.p = reference, pin, allow, p

    def draw(self, name, dist):
        pinned = self.pin(name) or (self.p < 1 and self.rng.random() >= self.p)
        if pinned and name in self.reference:
            return self.reference[name]
        options = options_of(dist)
        if ".ops[" in name:
            options = [o for o in options if self.allow(o)] or options
        return self.rng.choice(options)


def supernet_of(space: str) -> Supernet:
    sp = load_space(space)
    base = sp.base_spec(None, [], ["num_classes=10", "input.channels=1", "input.size=[32, 32]"])
    return Supernet(Sampler(sp, base, sp.name), seed=0)


def losses(supernet, make_trial, x, y, steps: int) -> list[float]:
    """``make_trial(step)`` draws each step's path."""
    torch.manual_seed(0)
    opt = torch.optim.AdamW(supernet.parameters(), lr=3e-3)
    out = []
    for step in range(steps):
        while True:
            try:
                path = supernet.path(make_trial(step))
                break
            except OutsideSupernet:
                continue
        path.module.train()
        i = torch.randint(0, len(x), (64,))
        logits = path.module(x[i])
        loss = F.cross_entropy(logits[0] if isinstance(logits, (tuple, list)) else logits, y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
        out.append(loss.item())
    return [sum(out[k:k + 10]) / len(out[k:k + 10]) for k in range(0, steps, 10)]


def alone(space: str, reference: dict, x, y, steps: int = 60) -> None:
    """Each decision drawn alone, the others the reference's; the most disturbing first."""
    rows = []
    for name in sorted(reference):
        curve = losses(supernet_of(space), lambda step, name=name: Drawn(
            random.Random(len(rows)), reference, pin=lambda n, name=name: n != name), x, y, steps)
        rows.append((sum(curve[-2:]) / 2, name))
    fixed = losses(supernet_of(space), lambda step: Drawn(random.Random(0), reference,
                                                     pin=lambda n: True), x, y, steps)
    print(f"one path, fixed: {sum(fixed[-2:]) / 2:.2f} (mean loss of the last 20 of {steps} "
          f"steps)")
    for loss, name in sorted(rows, reverse=True):
        print(f"{loss:.2f}  {name} drawn alone (reference: {reference[name]!r})", flush=True)


def warmup(space: str, reference: dict, fraction: float, x, y, steps: int) -> None:
    """The search's warm-up against every decision drawn from the start; the held-out accuracy
    of each supernet's anchor and of 30 uniform paths (the last 297 digits are held out)."""
    xt, yt, xv, yv = x[:1500], y[:1500], x[1500:], y[1500:]
    widening = Widening(fraction, 0.05)
    for label, p_of in ((f"warm-up {fraction} of the steps", lambda t: widening.p(t, steps)),
                        ("every decision drawn", lambda t: 1.0)):
        supernet, rng = supernet_of(space), random.Random(5)
        curve = losses(supernet, lambda t, rng=rng, p_of=p_of: AnchoredTrial(
            UniformTrial(rng), reference, p_of(t), rng), xt, yt, steps)
        anchor = path_accuracy(supernet, supernet.path(FixedTrial(reference)), [(xv, yv)], "cpu")
        r = random.Random(11)
        others = [path_accuracy(supernet, draw_path(supernet, lambda r=r: UniformTrial(r),
                                                    lambda path: True)[0], [(xv, yv)], "cpu")
                  for _ in range(30)]
        print(f"{label:30s} loss per 10 steps {' '.join(f'{v:.2f}' for v in curve)}\n"
              f"{'':30s} held-out accuracy: anchor {anchor:.3f}, 30 uniform paths mean "
              f"{sum(others) / 30:.3f}, best {max(others):.3f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="nasnet_cell")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--alone", action="store_true", help="each decision drawn alone, ranked")
    ap.add_argument("--warmup", type=float, help="the search's warm-up over this fraction")
    a = ap.parse_args()
    torch.set_num_threads(1)
    images, labels = load_digits(return_X_y=True)
    x = F.interpolate(torch.tensor(images, dtype=torch.float32).view(-1, 1, 8, 8) / 16.0, size=32)
    y = torch.tensor(labels)
    rng = random.Random(5)
    reference = supernet_of(a.space).path(UniformTrial(random.Random(3))).params
    if a.alone:
        alone(a.space, reference, x, y)
        return
    if a.warmup:
        warmup(a.space, reference, a.warmup, x, y, a.steps)
        return
    is_input, is_op = (lambda n: ".inputs[" in n), (lambda n: ".ops[" in n)
    regimes = {
        "one path, fixed (reference)": dict(pin=lambda n: True),
        "every decision drawn": dict(pin=lambda n: False),
        "inputs pinned, ops drawn": dict(pin=is_input),
        "ops pinned, inputs drawn": dict(pin=is_op),
        "inputs pinned, ops among sep_convs": dict(pin=is_input,
                                                  allow=lambda o: "sep_conv" in str(o)),
        "inputs pinned, ops parameter-free": dict(pin=is_input,
                                                 allow=lambda o: "conv" not in str(o)),
        **{f"each decision drawn with p={p}": dict(pin=lambda n: False, p=p)
           for p in (0.05, 0.1, 0.25, 0.5)},
    }
    first = None
    for label, how in regimes.items():
        curve = losses(supernet_of(a.space), lambda step, how=how: Drawn(rng, reference, **how),
                       x, y, a.steps)
        first = first or curve
        print(f"{label:38s} loss per 10 steps {' '.join(f'{v:.2f}' for v in curve)}; last over "
              f"the reference's last {curve[-1] / first[-1]:.2f}", flush=True)


if __name__ == "__main__":
    main()
