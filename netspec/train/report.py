"""The run's report: one plain line per epoch (screen and log), ``summary.csv``, the history
behind ``curves.png`` (kept in the checkpoint, so a resumed run plots the whole run), and the
line that says which split an evaluation is on."""
from __future__ import annotations

import csv
import logging
import time
from pathlib import Path

import torch
from pytorch_lightning import Callback

COLUMNS = ["epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "samples_per_s",
           "seconds"]
LR_POINTS_PER_EPOCH = 20     # the LR panel's resolution; the checkpoint stays small


class EpochReport(Callback):
    """After each epoch's validation: one line on the screen (Lightning's rank-zero print, above
    any progress bar) and in the run's log files, and a row of ``summary.csv``. Its rows and the
    learning rate through the epochs travel in the checkpoint (``state_dict``)."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / "summary.csv"
        self.rows: list[dict] = []
        self.lrs: list[list[float]] = []          # [epoch as a fraction, lr]
        self._reset()

    def _reset(self):
        self._start, self._loss_sum, self._samples, self._train_seconds = time.time(), 0.0, 0, 0.0
        self._validated = False

    # -- the checkpoint ---------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"rows": [dict(r) for r in self.rows], "lrs": [list(p) for p in self.lrs]}

    def load_state_dict(self, state: dict) -> None:
        # trainer.test(ckpt_path="best") restores callbacks too: keep this run's own history
        if not self.rows:
            self.rows = [dict(r) for r in state.get("rows", [])]
            self.lrs = [list(p) for p in state.get("lrs", [])]

    # -- the hooks --------------------------------------------------------------------------
    def on_train_start(self, trainer, pl_module):
        # resumed inside an epoch (a recovery checkpoint): that epoch is trained again
        self.rows = [r for r in self.rows if r["epoch"] < trainer.current_epoch]
        self.lrs = [p for p in self.lrs if p[0] < trainer.current_epoch]

    def on_train_epoch_start(self, trainer, pl_module):
        self._reset()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        n = int(batch[0].shape[0])
        self._loss_sum += float(outputs["loss"].detach()) * n
        self._samples += n
        batches = trainer.num_training_batches
        every = max(1, int(batches) // LR_POINTS_PER_EPOCH) if batches != float("inf") else 1
        if batch_idx % every == 0 and trainer.optimizers:
            at = trainer.current_epoch + batch_idx / max(1, batches if batches != float("inf")
                                                         else batch_idx + 1)
            self.lrs.append([at, float(trainer.optimizers[0].param_groups[0]["lr"])])

    def on_validation_start(self, trainer, pl_module):
        if not trainer.sanity_checking and _fitting(trainer):
            self._train_seconds = time.time() - self._start

    def on_validation_end(self, trainer, pl_module):
        if trainer.sanity_checking or not _fitting(trainer):
            return
        self._validated = True
        self._add_row(trainer, pl_module)

    def on_train_epoch_end(self, trainer, pl_module):
        if not self._validated:           # no validation this epoch (limit_val_batches=0)
            self._train_seconds = time.time() - self._start
            self._add_row(trainer, pl_module)

    # -- one row ----------------------------------------------------------------------------
    def _add_row(self, trainer, pl_module):
        m = trainer.callback_metrics
        # every rank takes part in these reductions; only rank zero prints and writes
        loss = trainer.strategy.reduce(torch.tensor(self._loss_sum / max(1, self._samples)),
                                       reduce_op="mean")
        samples = trainer.strategy.reduce(torch.tensor(float(self._samples)), reduce_op="sum")
        row = {"epoch": trainer.current_epoch,
               "lr": float(trainer.optimizers[0].param_groups[0]["lr"]) if trainer.optimizers
               else None,
               "train_loss": float(loss) if self._samples else None,
               "train_acc": _metric(pl_module, "train_acc"),
               "val_loss": _value(m, "val/loss") if self._validated else None,
               "val_acc": _value(m, "val/acc") if self._validated else None,
               "samples_per_s": float(samples) / self._train_seconds
               if self._train_seconds > 0 else None,
               "seconds": time.time() - self._start}
        self.rows = [r for r in self.rows if r["epoch"] != row["epoch"]] + [row]
        if trainer.is_global_zero:
            line = epoch_line(row, trainer.max_epochs)
            pl_module.print(line)
            to_log_files(line)
            write_summary(self.rows, self.path)


def _fitting(trainer) -> bool:
    return trainer.state.fn == "fit"      # not trainer.validate() nor trainer.test()


def _value(metrics, key: str) -> float | None:
    v = metrics.get(key)
    return float(v) if v is not None else None


def _metric(pl_module, name: str) -> float | None:
    """The epoch's value so far of one of the module's torchmetrics (synced across ranks)."""
    metric = getattr(pl_module, name, None)
    if metric is None or not getattr(metric, "update_called", False):
        return None
    return float(metric.compute())


def _num(value, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def epoch_line(row: dict, max_epochs: int | None = None) -> str:
    """``epoch 3/9  lr 0.0012  train loss 0.4321 acc 0.8765  val loss ... acc ...  ...``: epochs
    count from 0, as in the progress bar, the checkpoints' names and summary.csv."""
    of = f"/{max_epochs - 1}" if max_epochs and max_epochs > 0 else ""
    return (f"epoch {row['epoch']}{of}  lr {_num(row['lr'], '.3g')}  "
            f"train loss {_num(row['train_loss'], '.4f')} acc {_num(row['train_acc'], '.4f')}  "
            f"val loss {_num(row['val_loss'], '.4f')} acc {_num(row['val_acc'], '.4f')}  "
            f"{_num(row['samples_per_s'], '.0f')} samples/s  {row['seconds']:.1f} s")


def to_log_files(line: str) -> None:
    """Write ``line`` to the files the root logger writes (Hydra's job log), not to its console
    handlers: the line is printed already, above the progress bar."""
    record = logging.LogRecord("netspec.train", logging.INFO, __file__, 0, line, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def write_summary(rows: list[dict], path: Path) -> Path:
    """``summary.csv``: one row per epoch, the columns of COLUMNS (empty where not measured)."""
    path = Path(path)
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow({k: "" if r.get(k) is None else r[k] for k in COLUMNS})
    tmp.replace(path)               # a reader (or a kill) never sees half a file
    return path


def read_summary(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return [{k: (int(v) if k == "epoch" else float(v)) if v not in ("", None) else None
                 for k, v in row.items()} for row in csv.DictReader(f)]


def report_of(trainer) -> EpochReport | None:
    return next((cb for cb in trainer.callbacks if isinstance(cb, EpochReport)), None)


def best_epoch(rows: list[dict], monitor: str = "val/acc", mode: str = "max") -> int | None:
    """The epoch (0-based) of the best ``monitor`` in the history, where no checkpoint says."""
    key = monitor.replace("/", "_")
    scored = [r for r in rows if r.get(key) is not None]
    if not scored:
        return None
    pick = max if mode == "max" else min
    return pick(scored, key=lambda r: r[key])["epoch"]


def write_figures(trainer, out: Path) -> list[Path]:
    """curves.png from the run's history (all of it, across resumes); the paths written."""
    from .plots import plot_curves
    report = report_of(trainer)
    if report is None or not report.rows or not trainer.is_global_zero:
        return []
    png = plot_curves(report.rows, Path(out) / "curves.png", report.lrs)
    return [png] if png else []


def evaluation_line(label: str, metrics: dict, prefix: str = "test") -> str:
    """``test (held out, 180 images): acc 0.9611  top-5 0.9990  loss 0.1234``"""
    acc5 = metrics.get(f"{prefix}/acc_top5")
    return (f"{label}: acc {metrics[f'{prefix}/acc']:.4f}"
            + (f"  top-5 {acc5:.4f}" if acc5 is not None else "")
            + f"  loss {metrics[f'{prefix}/loss']:.4f}")
