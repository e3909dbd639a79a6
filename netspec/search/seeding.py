"""Each trial's draws seeded from (study, seed, trial number), so no two workers draw alike.

An Optuna sampler seeded once per worker draws the same sequence in every worker that got the
same seed, and a seed shifted by the study's progress (``seed + trials so far``) collides for
consecutive seeds. Trial numbers are unique within a study whichever worker runs them, so a
generator reseeded before each trial from ``(study, seed, number)`` gives every worker its own
draws, whatever seeds they were given, and one worker's run still repeats for a given seed.
"""
from __future__ import annotations

import zlib

import numpy as np
from optuna.samplers import BaseSampler
from optuna.samplers._lazy_random_state import LazyRandomState


def trial_seed(study_name: str, seed: int, number: int) -> int:
    return zlib.crc32(f"{study_name}\0{int(seed)}\0{int(number)}".encode())


def _generators(sampler: BaseSampler, seen: set) -> list:
    """The random states of a sampler and of the samplers it delegates to."""
    if id(sampler) in seen:
        return []
    seen.add(id(sampler))
    out = []
    for value in vars(sampler).values():
        if isinstance(value, (LazyRandomState, np.random.RandomState)):
            out.append(value)
        elif isinstance(value, BaseSampler):
            out.extend(_generators(value, seen))
    return out


class _ReseedBeforeTrial:
    """The sampler's own ``before_trial`` after reseeding; a class, not a closure, so the study
    pickles (ddp_spawn sends it to every rank)."""

    def __init__(self, sampler: BaseSampler, seed: int, study_name: str):
        self.sampler, self.seed, self.study_name = sampler, seed, study_name

    def __call__(self, study, trial):
        base = trial_seed(self.study_name, self.seed, trial.number)
        for i, g in enumerate(_generators(self.sampler, set())):
            (g.rng if isinstance(g, LazyRandomState) else g).seed((base + i) % 2**32)
        type(self.sampler).before_trial(self.sampler, study, trial)


def seed_per_trial(sampler: BaseSampler, seed: int, study_name: str) -> BaseSampler:
    """``sampler``, its random states reseeded before each trial (see the module docstring)."""
    sampler.before_trial = _ReseedBeforeTrial(sampler, seed, study_name)
    return sampler
