"""Workers on one study draw their own samples, whatever seeds they were given."""
from __future__ import annotations

import zlib

import optuna
import pytest

from netspec.search.seeding import seed_per_trial
from netspec.search.strategies import make_sampler

CHOICES = {f"c{i}": [0, 1, 2, 3] for i in range(6)}          # 4,096 points


def _draw(study):
    trial = study.ask()
    params = {k: trial.suggest_categorical(k, v) for k, v in CHOICES.items()}
    study.tell(trial, zlib.crc32(repr(params).encode()) / 2**32)   # no structure to exploit
    return tuple(params.values())


def _worker(storage, strategy, seed):
    sampler = make_sampler(strategy, {}, seed=seed, n_objectives=1, categorical=list(CHOICES))
    return optuna.load_study(study_name="s", storage=storage,
                             sampler=seed_per_trial(sampler, seed, "s"))


@pytest.mark.parametrize("strategy", ["random", "tpe", "nsga2"])
@pytest.mark.parametrize("seeds", [(1, 2), (3, 3)])
def test_two_workers_never_draw_the_same_architecture(tmp_path, strategy, seeds):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    optuna.create_study(study_name="s", storage=storage, direction="maximize")
    a, b = (_worker(storage, strategy, s) for s in seeds)
    # interleaved, as workers run; 10 trials: within TPE's start-up, where a repeat is no
    # exploitation but two generators alike
    drawn = [_draw(w) for _ in range(5) for w in (a, b)]
    assert len(set(drawn)) == len(drawn)


def test_one_worker_repeats_its_draws_for_a_seed(tmp_path):
    runs = []
    for name in ("one", "two"):
        storage = f"sqlite:///{tmp_path / name}.db"
        optuna.create_study(study_name="s", storage=storage, direction="maximize")
        w = _worker(storage, "tpe", 5)
        runs.append([_draw(w) for _ in range(12)])
    assert runs[0] == runs[1]


@pytest.mark.parametrize("strategy", ["random", "tpe"])
def test_a_seeded_sampler_pickles_and_draws_as_before(tmp_path, strategy):
    """ddp_spawn pickles the study, sampler with it, to send it to every rank."""
    import pickle
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    optuna.create_study(study_name="s", storage=storage, direction="maximize")
    w = _worker(storage, strategy, 4)
    copy = optuna.load_study(study_name="s", storage=storage,
                             sampler=pickle.loads(pickle.dumps(w.sampler)))
    first = _draw(w)
    # the copy's next trial is number 1; a fresh seeded worker's trial 1 draws the same
    storage2 = f"sqlite:///{tmp_path / 'two.db'}"
    optuna.create_study(study_name="s", storage=storage2, direction="maximize")
    ref = _worker(storage2, strategy, 4)
    assert _draw(ref) == first
    assert _draw(copy) == _draw(ref)
