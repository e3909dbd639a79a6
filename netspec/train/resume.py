"""Exact resume: a killed run, resumed from its checkpoint, ends with the weights it would have had.

Three things make the continuation exact:

* The train data is a pure function of ``(seed, epoch, batch position)``: :class:`ResumableSampler`
  shuffles each epoch with ``data.seed + epoch`` and gives every batch its own augmentation seed,
  which :class:`SeededBatches` uses on a forked generator (so the draws don't depend on the worker
  that makes the batch, nor on what else consumed torch's global generator). :class:`ResumableLoader`
  is a stateful loader: Lightning saves its position inside the epoch with every checkpoint and
  gives it back on resume, and the loader skips the batches already trained on without loading them.
* :class:`ResumeState` checkpoints what the training steps draw from the global generators (torch
  CPU and CUDA, numpy, python: dropout, MixUp, ...) and the torchmetrics states (the epoch's train
  accuracy, the best val accuracy), and restores them when training restarts. Resumed into another
  run directory, it carries the best checkpoints over, so ModelCheckpoint keeps its bookkeeping.
* :class:`RecoveryCheckpoint` (``callbacks.recovery_every=N``) writes ``checkpoints/recovery.ckpt``
  every N steps, atomically; :func:`resume_checkpoint` picks the newest of it and ``last.ckpt``.
"""
from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler

from ..errors import CheckpointError, ConfigError

RECOVERY = "recovery.ckpt"
LAST = "last.ckpt"


# -- the data: a pure function of (seed, epoch, position) ----------------------------------------

def batch_seed(*keys: int) -> int:
    """A 32-bit seed mixed from ``keys`` (torch seeds its CPU generator from 32 bits only)."""
    return int(np.random.SeedSequence([int(k) % 2**63 for k in keys]).generate_state(1)[0])


class ResumableSampler(DistributedSampler):
    """This process's share of the train split (all of it on one process), shuffled with
    ``seed + epoch``; yields ``(index, augmentation seed)``, the seed one per batch of
    ``batch_size``. ``skip_batches`` leaves out the first batches of the next iteration."""

    def __init__(self, dataset, batch_size: int, shuffle: bool, seed: int, aug_seed: int,
                 num_replicas: int = 1, rank: int = 0):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed)
        self.batch_size, self.aug_seed = batch_size, aug_seed
        self.skip_batches = 0

    def __iter__(self):
        indices = list(super().__iter__())
        start, self.skip_batches = self.skip_batches * self.batch_size, 0
        for i in range(start, len(indices)):
            yield indices[i], batch_seed(self.aug_seed, self.epoch, i // self.batch_size, self.rank)


class SeededBatches(Dataset):
    """``dataset``, each batch fetched with torch's CPU generator seeded by the batch's seed (forked:
    the global stream is left as it was). Plain indices (a sampler Lightning put in) fetch as is."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item):
        return self.__getitems__([item])[0]

    def __getitems__(self, items: list):
        if not items or not isinstance(items[0], tuple):
            return self._fetch(items)
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(items[0][1])
            return self._fetch([i for i, _ in items])

    def _fetch(self, idx: list[int]):
        getitems = getattr(self.dataset, "__getitems__", None)
        return getitems(idx) if getitems else [self.dataset[i] for i in idx]


class ResumableLoader(DataLoader):
    """A DataLoader that Lightning checkpoints (``state_dict``: the epoch and the batches yielded in
    it) and resumes where it was, with a :class:`ResumableSampler`."""

    position = 0                 # batches yielded in the current epoch
    _resume: dict | None = None

    def __iter__(self):
        sampler = self.sampler
        resumable = isinstance(sampler, ResumableSampler)
        skip = 0
        if resumable and self._resume and self._resume["epoch"] == sampler.epoch:
            skip = self._resume["batches"]
        self._resume = None
        if resumable:
            sampler.skip_batches = skip
            if self.generator is not None:   # the workers' base seed: per epoch too
                self.generator.manual_seed(batch_seed(sampler.aug_seed, sampler.epoch))
        self.position = skip
        for batch in super().__iter__():
            self.position += 1
            yield batch

    def state_dict(self) -> dict:
        if not isinstance(self.sampler, ResumableSampler):
            return {}
        return {"epoch": self.sampler.epoch, "batches": self.position,
                "aug_seed": self.sampler.aug_seed}

    def load_state_dict(self, state: dict) -> None:
        if not state or not isinstance(self.sampler, ResumableSampler):
            return
        self.sampler.aug_seed = int(state["aug_seed"])
        self.sampler.set_epoch(int(state["epoch"]))
        self._resume = {"epoch": int(state["epoch"]), "batches": int(state["batches"])}


def train_loader(ds, batch_size: int, shuffle: bool, seed: int, distributed: dict | None,
                 **kwargs) -> ResumableLoader:
    """The resumable train loader of ``ds``; ``distributed``: Lightning's sampler kwargs under
    DDP (this rank's share), else None. The augmentation seed comes from torch's global generator,
    so it follows the run's seed (and travels in the checkpoint)."""
    aug_seed = int(torch.randint(2**31, ()))
    sampler = ResumableSampler(ds, batch_size, shuffle, seed, aug_seed, **(distributed or {}))
    return ResumableLoader(SeededBatches(ds), batch_size=batch_size, sampler=sampler,
                           generator=torch.Generator(), **kwargs)


# -- the global generators and the metrics, checkpointed -----------------------------------------

def capture_rng() -> dict:
    """The states of every global generator, as plain data (checkpoints load with weights_only)."""
    bits, key, pos, has_gauss, gauss = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": {"bits": bits, "key": torch.from_numpy(key.astype(np.int64)), "pos": pos,
                       "has_gauss": has_gauss, "gauss": gauss}}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    n = state["numpy"]
    np.random.set_state((n["bits"], n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _metrics(module: torch.nn.Module) -> dict:
    from torchmetrics import Metric
    return {name: m for name, m in module.named_modules() if isinstance(m, Metric)}


def capture_metrics(module: torch.nn.Module) -> dict:
    return {name: {"state": {k: (v.detach().clone() if torch.is_tensor(v)
                                 else [t.detach().clone() for t in v])
                             for k, v in m.metric_state.items()},
                   "updates": m.update_count}
            for name, m in _metrics(module).items()}


def restore_metrics(module: torch.nn.Module, saved: dict) -> None:
    for name, m in _metrics(module).items():
        if name in saved:
            for key, value in saved[name]["state"].items():
                device = m.device
                setattr(m, key, value.to(device) if torch.is_tensor(value)
                        else [t.to(device) for t in value])
            m._update_count = saved[name]["updates"]   # compute() refuses a metric never updated
            m._computed = None


class ResumeState(pl.Callback):
    """Checkpoints the global generators and the metric states; restores them when training starts
    (after the sanity check, where Lightning would resume the steps). Resumed into another run
    directory, it copies the best checkpoints there first, so ModelCheckpoint keeps its best
    path, score and top-k (it drops them when its directory changed, and would delete files of
    the old run when a better epoch comes)."""

    KEY = "netspec_resume"

    def __init__(self):
        self._pending: dict | None = None

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        checkpoint[self.KEY] = {"rng": capture_rng(), "metrics": capture_metrics(pl_module)}

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        if trainer.state.fn != "fit":      # trainer.test(ckpt_path="best") loads one too
            return
        self._pending = dict(checkpoint.get(self.KEY) or {})
        loop = checkpoint.get("loops", {}).get("fit_loop", {}).get("state_dict", {})
        self._pending["loaders"] = loop.get("combined_loader") or []
        carry_best_checkpoints(trainer, checkpoint)
        batches = (self._pending["loaders"] or [{}])[0].get("batches")
        where = f", batch {batches}" if batches else ""
        print(f"resume: epoch {checkpoint.get('epoch')}{where}, step {checkpoint.get('global_step')}")

    def on_train_start(self, trainer, pl_module) -> None:
        if self._pending is None:
            return
        pending, self._pending = self._pending, None
        if "rng" in pending:
            restore_rng(pending["rng"])
            restore_metrics(pl_module, pending["metrics"])
        # Lightning loads the loaders' states itself only when it makes the train loader after
        # restoring; configure_optimizers (estimated_stepping_batches) made it before
        for loader, state in zip(_stateful(trainer.train_dataloader), pending["loaders"]):
            loader.load_state_dict(state)


def _stateful(loaders) -> list:
    """The stateful loaders among Lightning's train loaders, in its order (CombinedLoader's)."""
    from lightning_fabric.utilities.types import _Stateful
    from torch.utils._pytree import tree_leaves
    return [dl for dl in tree_leaves(loaders) if isinstance(dl, _Stateful)]


def carry_best_checkpoints(trainer, checkpoint: dict) -> None:
    """For each ModelCheckpoint whose saved directory is not its own: copy the files it keeps
    into its directory and point its saved state there."""
    from pytorch_lightning.callbacks import ModelCheckpoint
    states = checkpoint.get("callbacks") or {}
    for cb in trainer.checkpoint_callbacks:
        state = states.get(cb.state_key) if isinstance(cb, ModelCheckpoint) else None
        if not state or not cb.dirpath or state.get("dirpath") in (None, cb.dirpath):
            continue
        old, new = Path(state["dirpath"]), Path(cb.dirpath)
        copy = trainer.is_global_zero    # the files kept: copied (by one process)
        state["best_k_models"] = {_moved(p, old, new, copy): v
                                  for p, v in state.get("best_k_models", {}).items()}
        state["best_model_path"] = _moved(state.get("best_model_path", ""), old, new, copy)
        for key in ("kth_best_model_path", "last_model_path"):     # names only
            state[key] = _moved(state.get(key, ""), old, new, False)
        state["dirpath"] = cb.dirpath


def _moved(path: str, old: Path, new: Path, copy: bool) -> str:
    """``path`` of folder ``old`` as the same name in ``new``; ``copy``: the file copied there."""
    if not path or Path(path).parent != old:
        return path
    target = new / Path(path).name
    if copy and Path(path).is_file() and not target.exists():
        new.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    return str(target)


# -- recovery checkpoints inside an epoch, and which checkpoint a resume takes --------------------

def atomic_save(trainer: pl.Trainer, path: Path) -> None:
    """``trainer.save_checkpoint`` to a temporary file beside ``path``, then renamed over it: a
    kill while writing leaves the previous checkpoint whole."""
    tmp = path.with_name(f".{path.name}.tmp")
    trainer.save_checkpoint(tmp)
    if trainer.is_global_zero:
        os.replace(tmp, path)


class RecoveryCheckpoint(pl.Callback):
    """``checkpoints/recovery.ckpt`` every ``every`` training steps (removed when training ends
    normally: last.ckpt is newer then)."""

    def __init__(self, folder: Path, every: int):
        self.path, self.every = Path(folder) / RECOVERY, every
        self._saved_step = -1

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if trainer.fast_dev_run or step % self.every or step == self._saved_step:
            return
        self._saved_step = step
        if trainer.is_global_zero:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_save(trainer, self.path)

    def on_train_end(self, trainer, pl_module) -> None:
        if trainer.is_global_zero and self.path.exists():
            self.path.unlink()


def recovery_every(value) -> int:
    """``callbacks.recovery_every``: a number of steps, 0 or None for none."""
    if value is None or value == 0:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"callbacks.recovery_every={value}: give a number of training steps "
                          f"(>= 1) between recovery checkpoints, or 0 (or null) for none")
    return value


def resume_callbacks(cfg, out: Path) -> list:
    """ResumeState, and RecoveryCheckpoint when ``callbacks.recovery_every`` asks for it."""
    every = recovery_every(cfg.callbacks.get("recovery_every"))
    cbs: list = [ResumeState()]
    if every:
        cbs.append(RecoveryCheckpoint(out / "checkpoints", every))
    return cbs


def _newest(folder: Path) -> str | None:
    found = [p for p in (folder / LAST, folder / RECOVERY) if p.is_file()]
    return str(max(found, key=lambda p: p.stat().st_mtime_ns)) if found else None


def resume_checkpoint(ckpt_path: str | None, out: Path) -> str | None:
    """The checkpoint to resume from. ``last``: the newest of this run's last.ckpt and
    recovery.ckpt (none yet: a fresh start); a run directory or its checkpoints/ folder: the
    newest of those there; a last.ckpt: the recovery.ckpt beside it when that is newer."""
    if not ckpt_path:
        return None
    if ckpt_path == "last":
        return _newest(Path(out) / "checkpoints")
    path = Path(ckpt_path)
    if path.is_dir():
        folder = path / "checkpoints" if (path / "checkpoints").is_dir() else path
        newest = _newest(folder)
        if newest is None:
            raise CheckpointError(f"ckpt_path={ckpt_path}: no {LAST} or {RECOVERY} in {folder}")
        return newest
    if path.name == LAST:
        return _newest(path.parent) or ckpt_path
    return ckpt_path
