"""Grid search: a trial takes the next point no trial holds, so a large grid costs nothing
before its first trial and workers share it."""
from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState
from tiny_search import search, states

from netspec.search.grid import PICK, GridPointSampler

# 4*2 * 4*2 * 4*2 * 2 * 9 = 9,216 points, every one valid
LARGE = """\
spec:
  input: {channels: 3, size: 8}
  num_classes: 10
  stem: [conv: {c: {choice: [4, 8, 12, 16]}, k: {choice: [1, 3]}}]
  stages:
    - conv: {c: {choice: [4, 8, 12, 16]}, k: {choice: [1, 3]}, s: 2}
    - conv: {c: {choice: [4, 8, 12, 16]}, k: {choice: [1, 3]}}
  head: [pool: global_avg, dropout: {choice: [0.0, 0.2]}, linear: {c: num_classes}]
train:
  optim.lr: {choice: [0.001, 0.002, 0.003, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1]}
"""


@pytest.fixture
def space(tmp_path):
    path = tmp_path / "large.yaml"
    path.write_text(LARGE)
    return path


def test_a_large_grid_trains_n_trials_points_and_nothing_waits(tmp_path, space):
    r = search(tmp_path, f"space={space}", "strategy=grid", "n_trials=2")
    assert any("grid: 9,216 points satisfy the space; 2 of them are run" in line
               for line in r.lines)
    assert states(r.study) == [TrialState.COMPLETE] * 2
    assert len(r.study.trials) == 2                      # no waiting trials enqueued
    # a rerun with a larger total goes on with points not run yet
    r = search(tmp_path, f"space={space}", "strategy=grid", "n_trials=3")
    points = [tuple(sorted(t.params.items())) for t in r.study.trials]
    assert len(r.study.trials) == 3 and len(set(points)) == 3


def _study(storage, points, **kw):
    return optuna.load_study(study_name="g", storage=storage,
                             sampler=GridPointSampler(points, study_name="g", **kw))


def _draw(study, names):
    trial = study.ask()
    params = tuple(trial.suggest_categorical(n, [0, 1, 2]) for n in names)
    study.tell(trial, 0.0)
    return params


POINTS = [{"a": a, "b": b} for a in (0, 1, 2) for b in (0, 1, 2)]


def test_two_workers_share_the_grid_and_cover_it_once(tmp_path):
    storage = f"sqlite:///{tmp_path / 'g.db'}"
    optuna.create_study(study_name="g", storage=storage)
    one, two = _study(storage, POINTS), _study(storage, POINTS)
    drawn = [_draw(w, "ab") for _ in range(4) for w in (one, two)] + [_draw(one, "ab")]
    assert sorted(drawn) == sorted((p["a"], p["b"]) for p in POINTS)
    assert drawn[:3] == [(0, 0), (0, 1), (0, 2)]           # the grid's order


def test_a_later_trial_that_picked_the_same_point_at_once_moves_on(tmp_path):
    storage = f"sqlite:///{tmp_path / 'g.db'}"
    optuna.create_study(study_name="g", storage=storage)
    study = _study(storage, POINTS)
    first = study.ask()
    assert first.suggest_categorical("a", [0, 1, 2]) == 0
    # the second worker read the study before the first wrote its pick
    sampler = study.sampler
    reads = []
    real = sampler._taken
    sampler._taken = lambda s, exclude: real(s, exclude) if reads.append(1) or len(reads) > 1 \
        else set()
    second = study.ask()
    assert len(reads) == 2           # it picked (0, 0), saw trial 0 holding it, read again
    assert study._storage.get_trial(second._trial_id).system_attrs[PICK] == {"a": 0, "b": 1}
    assert (second.suggest_categorical("a", [0, 1, 2]),
            second.suggest_categorical("b", [0, 1, 2])) == (0, 1)


def test_shuffle_is_one_order_for_every_worker(tmp_path):
    a = GridPointSampler(POINTS, shuffle=True, study_name="g", seed=1)
    b = GridPointSampler(POINTS, shuffle=True, study_name="g", seed=1)
    assert a.points == b.points and a.points != POINTS and sorted(
        a.points, key=lambda p: (p["a"], p["b"])) == POINTS
