"""What a search keeps on disk: the checkpoints of its best ``keep_checkpoints`` trials only.

Each trial's training writes its best and last checkpoints (11 compound-scaling trials took
2.2 GB). After each trial, the finished trials outside the best K (by validation accuracy, the
first objective) lose their ``checkpoints/`` folder; their spec, log and numbers stay. A trial
still running (here or in another worker) is never touched.
"""
from __future__ import annotations

import shutil

from optuna.trial import TrialState


def keep_best_checkpoints(search, trials) -> list[int]:
    """Delete the checkpoints of the finished trials outside the best K; the numbers deleted."""
    k = int(search.cfg.keep_checkpoints)
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.values]
    best = sorted(complete, key=lambda t: (-t.values[0], t.number))[:k]
    keep = {t.number for t in best}
    deleted = []
    for t in trials:
        if not t.state.is_finished() or t.number in keep:
            continue
        folder = search.trial_dir(t.number) / "checkpoints"
        if folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
            deleted.append(t.number)
    return deleted
