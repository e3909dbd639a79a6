"""``shapes``: a procedurally generated offline task (no download), meant to make a search
space's architectures differ more than digits does.

Each gray 32x32 image holds two shapes (disk, ring, square, plus; random size, rotation,
intensity and place, never overlapping) on a noisy background with a few distractor strokes; the
label is the unordered pair of their kinds (4 kinds: 10 pairs, 10 classes, balanced). Telling the
kinds apart through the noise takes local capacity, and the label couples two objects apart, so
a network must keep both. Measured (bench/README.md, bench_oneshot.py): harder than digits (the
mobile_stages networks reach 0.45-0.59 in 3 epochs of 3000 images), not yet stable across
training seeds at that budget. Deterministic by ``data.seed``; ``data.num_samples`` images (the
validation split is held out of them).
"""
from __future__ import annotations

from itertools import combinations_with_replacement
from pathlib import Path

import numpy as np
import torch

from .config import need
from .raw import Arrays, Raw
from .registry import source

SIZE = 32
KINDS = ("disk", "ring", "square", "plus")
PAIRS = list(combinations_with_replacement(range(len(KINDS)), 2))   # class i: PAIRS[i]
NOISE = 0.15          # the background noise's standard deviation (shapes are 0.45-1.0 bright)
STROKES = 2           # distractor strokes per image
RADII = (5.0, 8.0)    # of the shapes, in pixels


def shape_mask(kind: int, u: np.ndarray, v: np.ndarray, r: float) -> np.ndarray:
    """The pixels of a shape of ``kind`` and radius ``r`` in its own (rotated) coordinates."""
    if KINDS[kind] == "disk":
        return u * u + v * v <= r * r
    if KINDS[kind] == "square":
        return np.maximum(np.abs(u), np.abs(v)) <= r * 0.8
    if KINDS[kind] == "ring":
        return (u * u + v * v <= r * r) & (u * u + v * v >= (r * 0.55) ** 2)
    arm = r / 3                       # plus
    return ((np.abs(u) <= arm) & (np.abs(v) <= r)) | ((np.abs(v) <= arm) & (np.abs(u) <= r))


def place_two(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Radii [n, 2] and centres [n, 2 shapes, (x, y)] inside the image of two shapes that
    neither overlap nor touch (a pair that would is drawn again, its radii too)."""
    radii = np.empty((n, 2))
    centres = np.empty((n, 2, 2))
    todo = np.arange(n)
    while len(todo):
        r = radii[todo] = rng.uniform(*RADII, size=(len(todo), 2))
        centres[todo] = r[:, :, None] + 1 + rng.random((len(todo), 2, 2)) * (
            SIZE - 3 - 2 * r[:, :, None])
        gap = np.hypot(*(centres[todo, 0] - centres[todo, 1]).T)
        todo = todo[gap <= r.sum(1) + 2]
    return radii, centres


def render(rng: np.random.Generator, kinds: np.ndarray) -> np.ndarray:
    """Images [n, 32, 32] (float32 in [0, 1]) of the two shapes of each row of ``kinds``."""
    n = len(kinds)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    img = np.zeros((n, SIZE, SIZE), np.float32)
    rows = np.arange(n)[:, None]
    for _ in range(STROKES):          # thin lines: edges that belong to no shape
        x0, y0 = rng.uniform(0, SIZE, size=(2, n, 1))
        angle, length = rng.uniform(0, np.pi, (n, 1)), rng.uniform(4, 10, (n, 1))
        t = np.linspace(0, 1, 24)[None] * length
        xs = np.clip((x0 + t * np.cos(angle)).astype(int), 0, SIZE - 1)
        ys = np.clip((y0 + t * np.sin(angle)).astype(int), 0, SIZE - 1)
        img[rows, ys, xs] = np.maximum(img[rows, ys, xs], rng.uniform(0.3, 0.8, (n, 1)))
    radii, centres = place_two(rng, n)
    for j in range(2):
        a = rng.uniform(0, 2 * np.pi, (n, 1, 1))
        dx, dy = xx - centres[:, j, 0, None, None], yy - centres[:, j, 1, None, None]
        u, v = np.cos(a) * dx + np.sin(a) * dy, -np.sin(a) * dx + np.cos(a) * dy
        r = radii[:, j, None, None]
        bright = rng.uniform(0.45, 1.0, (n, 1, 1)).astype(np.float32)
        for kind in range(len(KINDS)):
            mask = shape_mask(kind, u, v, r) & (kinds[:, j] == kind)[:, None, None]
            img = np.where(mask, bright, img)
    img += rng.normal(0.0, NOISE, size=img.shape).astype(np.float32)
    return np.clip(img, 0.0, 1.0)


def generate(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images [n, 32, 32] and their labels, balanced (class i % 10, shuffled)."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % len(PAIRS))
    kinds = np.array(PAIRS)[labels]
    swap = rng.random(n) < 0.5        # which of the pair is drawn first: no order to learn
    kinds[swap] = kinds[swap, ::-1]
    return render(rng, kinds), labels


def check_shapes(cfg) -> None:
    need(cfg, cfg.num_samples >= 2 * len(PAIRS), "num_samples", f"must be at least {2 * len(PAIRS)}")


@source("shapes", check=check_shapes)
def load_shapes(cfg, root: Path) -> Raw:
    images, labels = generate(int(cfg.num_samples), int(cfg.seed))
    classes = ["+".join(KINDS[k] for k in pair) for pair in PAIRS]
    return Raw(Arrays(torch.from_numpy(images).unsqueeze(1), torch.from_numpy(labels).long()),
               None, None, classes, 1, (SIZE, SIZE))
