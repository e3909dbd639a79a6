"""Grid search: each trial takes the next point of the grid no trial has taken yet.

The points are not enqueued up front (a 9,216-point grid wrote a thousand waiting trials before
training one): a trial picks its point as it starts, from what the study's trials hold, so the
grid costs nothing before the first trial, ``n_trials`` bounds what is run, a rerun goes on where
the study stands, and workers on one storage share the grid. A trial that failed keeps its point
(it is not run again; a worker that died has its trial retried by the heartbeat, with its point).

Two workers starting a trial at the same moment may pick the same point: each writes its pick,
reads the study back, and the later-numbered trial moves on to the next point.
"""
from __future__ import annotations

import random
import zlib

from optuna.samplers import BaseSampler, RandomSampler

PICK = "netspec:grid_point"   # the trial's system attribute that holds its point
RETRY = "fixed_params"         # Optuna's key for an enqueued trial's params (a retry)


def _key(params: dict, names: list[str]):
    return tuple(params.get(n) for n in names)


def _all_trials(study):
    # the storage's, not study.get_trials: Hyperband hands samplers a study of one bracket
    return study._storage.get_all_trials(study._study_id, deepcopy=False)


class GridPointSampler(BaseSampler):
    """Optuna sampler over an explicit list of points (those of the space that satisfy its
    ``where:``), in the grid's order or, with ``shuffle``, in one order shared by every worker
    (seeded by the study name)."""

    def __init__(self, points: list[dict], seed: int | None = None, shuffle: bool = False,
                 study_name: str = ""):
        self.points = list(points)
        self.names = sorted({k for p in self.points for k in p})
        self.shuffle = bool(shuffle)
        if self.shuffle:
            random.Random(zlib.crc32(f"{study_name}\0{seed}".encode())).shuffle(self.points)
        self._fallback = RandomSampler(seed=seed)     # a param no point names (none, unconditional)

    def infer_relative_search_space(self, study, trial):
        return {}

    def sample_relative(self, study, trial, search_space):
        return {}

    def sample_independent(self, study, trial, param_name, param_distribution):
        point = trial.system_attrs.get(PICK) or {}
        if param_name in point:
            return point[param_name]
        return self._fallback.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study, trial) -> None:
        if RETRY in trial.system_attrs:       # a retried point (heartbeat, Ctrl-C)
            return
        storage = study._storage
        skip: set = set()
        for _ in range(len(self.points)):
            taken = self._taken(study, exclude=trial.number)
            point = next((p for p in self.points
                          if _key(p, self.names) not in taken and
                          _key(p, self.names) not in skip), None)
            if point is None:                 # every point taken: the runner stops before this
                return
            storage.set_trial_system_attr(trial._trial_id, PICK, point)
            rivals = [t.number for t in _all_trials(study)
                      if t.number < trial.number and self._point_of(t) == _key(point, self.names)]
            if not rivals:
                return
            skip.add(_key(point, self.names))

    def _point_of(self, t):
        attrs = t.system_attrs
        params = t.params if len(t.params) >= len(self.names) else \
            attrs.get(PICK) or attrs.get(RETRY) or None
        return _key(params, self.names) if params else None

    def _taken(self, study, exclude: int) -> set:
        return {self._point_of(t) for t in _all_trials(study)
                if t.number != exclude} - {None}
