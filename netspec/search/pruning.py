"""Pruning poor trials: a Lightning callback that reports the validation accuracy of every epoch
to the Optuna trial and stops training when the study's pruner says so.

The step of a reported value is the number of epochs trained (1 after the first epoch): the
resource of Hyperband and successive halving, so that ``max_resource = budget.epochs`` is the
last step a trial reaches. The last step is reported but never pruned: the training is done,
and its result is a full one (a trial "pruned after 2 epochs" of 2 had lost nothing but its
record).

Single-objective studies only (Optuna's pruners compare one intermediate value; see
strategies.make_pruner). Under DDP the value is reported by rank 0 and the decision broadcast
from it, so every rank stops at the same epoch; with ``ddp_spawn`` the objective asks the trial
once more after training (the spawned rank 0 wrote the values to the storage).
"""
from __future__ import annotations

import math

import pytorch_lightning as pl


class OptunaPruning(pl.Callback):
    def __init__(self, trial, monitor: str = "val/acc"):
        self.trial = trial
        self.monitor = monitor
        self.pruned_at: int | None = None
        self.value: float | None = None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        epoch = trainer.current_epoch
        prune = False
        if trainer.is_global_zero:
            value = trainer.callback_metrics.get(self.monitor)
            if value is not None:
                value = float(value)
                if math.isfinite(value):
                    self.trial.report(value, step=epoch + 1)
                    self.value = value
                    last = trainer.max_epochs is not None and epoch + 1 >= trainer.max_epochs
                    prune = not last and self.trial.should_prune()
        prune = trainer.strategy.broadcast(prune, src=0)
        if prune:
            self.pruned_at = epoch
            trainer.should_stop = True

    def reason(self) -> str:
        shown = f"{self.value:.4f}" if self.value is not None else "?"
        n = self.pruned_at + 1
        return f"pruned after {n} epoch{'s' if n > 1 else ''}: {self.monitor} {shown}"
