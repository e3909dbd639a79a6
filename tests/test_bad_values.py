"""Every bad value of a search or training command: one line, exit status 2, nothing written."""
from __future__ import annotations

import sys

import pytest

from netspec.search.__main__ import main as search_main
from netspec.train.app import main as train_main


def _run(main, args, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["prog", *args, f"run_dir={tmp_path / 'run'}"])
    with pytest.raises(SystemExit) as e:
        main()
    err = capsys.readouterr().err.strip()
    return e.value.code, err


@pytest.mark.parametrize("arg, says", [
    ("n_trials=-1", "n_trials=-1: a search needs at least 1 trial"),
    ("strategy=tpee", "strategy=tpee: no such strategy (did you mean 'tpe'?); use one of: cmaes"),
    ("pruner=medain", "pruner=medain: no such pruner (did you mean 'median'?)"),
    ("constraints.max_macs=abc", "constraints.max_macs=abc: Value 'abc' of type 'str' could "
                                 "not be converted to Float"),
    ("n_trials=abc", "n_trials=abc: Value 'abc'"),
    ("budget.epochs=0", "budget.epochs=0: each trial trains at least 1 epoch"),
    ("budget.fraction=0", "budget.fraction=0.0: the fraction"),
    ("n_trials==", "Error parsing override 'n_trials=='"),
    ("+n_trial=5", "n_trial: no such key (did you mean 'n_trials'?)"),
    ("jobs=two", "jobs=two: a number of trials at once"),
    ("timeout=0", "timeout=0.0: seconds of wall clock, > 0"),
])
def test_a_bad_search_value_is_one_line_and_exit_2(arg, says, tmp_path, monkeypatch, capsys):
    code, err = _run(search_main, [arg], tmp_path, monkeypatch, capsys)
    assert code == 2
    assert err == f"error: {err[7:]}" and "\n" not in err and says in err
    assert sorted(p.name for p in tmp_path.iterdir()) == []      # no run dir, no outputs/


@pytest.mark.parametrize("arg, says", [
    ("optim=adamx", "optim=adamx: no such optim (did you mean 'adam'?); use one of: adam,"),
    ("data.batch_size=x", "data.batch_size=x: Value 'x' of type 'str'"),
    ("+max_epoch=3", "max_epoch: no such key"),
])
def test_a_bad_training_value_is_one_line_and_exit_2(arg, says, tmp_path, monkeypatch, capsys):
    code, err = _run(train_main, [arg], tmp_path, monkeypatch, capsys)
    assert code == 2 and "\n" not in err and says in err
    assert sorted(p.name for p in tmp_path.iterdir()) == []
