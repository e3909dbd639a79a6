"""Optuna's and Lightning's chatter off while a search runs its trials or trains its supernet."""
from __future__ import annotations

import logging

import optuna


class Quiet:
    """Optuna's and Lightning's per-trial chatter off while trials run (the progress line and
    each trial's train.log say it)."""

    NAMES = ("pytorch_lightning", "lightning.pytorch", "lightning.fabric", "lightning")

    def __enter__(self):
        self.optuna_level = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        self.levels = {n: logging.getLogger(n).level for n in self.NAMES}
        for n in self.NAMES:
            logging.getLogger(n).setLevel(logging.WARNING)
        return self

    def __exit__(self, *exc):
        optuna.logging.set_verbosity(self.optuna_level)
        for n, level in self.levels.items():
            logging.getLogger(n).setLevel(level)
        return False
