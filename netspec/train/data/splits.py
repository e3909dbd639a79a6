"""The validation (and test) splits held out of a train split: stratified, seeded, no class left
out."""
from __future__ import annotations

import numpy as np
import torch


def stratified_split(targets: torch.Tensor, fraction: float, seed: int):
    """``(train_idx, val_idx)``, sorted: about ``fraction`` of every class goes to val (by
    sklearn's ``train_test_split(stratify=...)``), at least one sample of each class with two or
    more stays on each side, and the same seed gives the same split. ``fraction=0``: no val."""
    from sklearn.model_selection import train_test_split

    y = targets.numpy()
    classes, counts = np.unique(y, return_counts=True)
    # sklearn refuses a class of one sample, or fewer val (or train) samples than classes: a
    # lone sample can only be trained on, and the val count is raised to one sample per class
    pairs = np.isin(y, classes[counts >= 2])
    pool, alone = np.flatnonzero(pairs), np.flatnonzero(~pairs)
    k = int((counts >= 2).sum())
    if fraction <= 0 or k == 0:
        return torch.arange(len(y)), torch.zeros(0, dtype=torch.long)
    n_val = min(max(int(round(len(pool) * fraction)), k), len(pool) - k)
    train, val = train_test_split(pool, test_size=n_val, stratify=y[pool], random_state=seed)
    train, val = _one_each_side(y, list(train), list(val))
    train += alone.tolist()
    return (torch.from_numpy(np.sort(np.asarray(train, dtype=np.int64))),
            torch.from_numpy(np.sort(np.asarray(val, dtype=np.int64))))


def _one_each_side(y: np.ndarray, train: list, val: list) -> tuple[list, list]:
    """sklearn shares the val count out by class proportions, so a class of a few samples among
    large ones can land on one side only: move one of its samples across."""
    for side, other in ((train, val), (val, train)):
        missing = set(y[other].tolist()) - set(y[side].tolist())
        for c in sorted(missing):
            i = next(j for j, s in enumerate(other) if y[s] == c)
            side.append(other.pop(i))
    return train, val


def holdout_splits(targets: torch.Tensor, val_fraction: float, test_fraction: float, seed: int):
    """``(train_idx, val_idx, test_idx)``, disjoint and sorted: ``test_fraction`` of the samples
    held out first, then ``val_fraction`` of all of them out of the rest, each stratified and
    seeded by ``seed``. Used where a data set brings no test split of its own."""
    rest, test = stratified_split(targets, test_fraction, seed)
    share = val_fraction / (1.0 - test_fraction) if val_fraction > 0 else 0.0
    train, val = stratified_split(targets[rest], min(share, 0.99), seed)
    return rest[train], rest[val], test
