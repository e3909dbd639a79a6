"""Bookkeeping over a study's trials that the runner and the results share: which trials count
towards ``n_trials``, and which failed trials a retry stands for."""
from __future__ import annotations


def replaced_trials(trials) -> set[int]:
    """Numbers of failed trials that a retry stands for (their worker died or was interrupted)."""
    out = set()
    for t in trials:
        n = t.system_attrs.get("failed_trial")          # set by Optuna's retry callback
        if n is not None:
            out.add(n)
        if t.user_attrs.get("retry_of") is not None:
            out.add(t.user_attrs["retry_of"])
    return out


def finished_trials(trials) -> list:
    """The trials that count towards n_trials: COMPLETE, PRUNED and FAIL, a retried one once."""
    gone = replaced_trials(trials)
    return [t for t in trials if t.state.is_finished() and t.number not in gone]
