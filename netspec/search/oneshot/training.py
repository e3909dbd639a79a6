"""Training the supernet: netspec.train's LightningModule around it, and who picks each batch's path.

    UniformPaths      SPOS: a path drawn uniformly (within the constraints) for every batch
    ControllerPaths   ENAS: the controller draws each batch's path, and after every epoch takes
                      ``controller_steps`` REINFORCE steps, each rewarded with the accuracy of a
                      path it drew on one validation batch (the shared weights, batch statistics)

Every draw comes from a generator seeded with ``(seed, step)``, so all DDP ranks (which hold the
same weights and, for ENAS, take the same controller steps on the same validation batches) run
the same path, and a resumed run draws what the uninterrupted one would have. The path's state
(the controller's) travels in the Lightning checkpoint.
"""
from __future__ import annotations

import contextlib
import itertools
import random
import zlib

import torch
from omegaconf import OmegaConf
from torch import nn

from ...lang.source import plain
from ...threads import one_thread
from ...train.module import SpecClassifier
from ..rl.policy import Policy, mnas_reward
from .paths import ControllerTrial, UniformTrial
from .supernet import decision_key, draw_path

STATE_KEY = "netspec_oneshot"


def _rng(seed: int, *salt: int) -> random.Random:
    return random.Random(hash((seed, *salt)) & 0xFFFFFFFF)


class UniformPaths:
    """SPOS: each batch's path drawn uniformly, within the constraints."""

    name = "spos"

    def __init__(self, supernet, allowed, seed: int):
        self.supernet, self.allowed, self.seed = supernet, allowed, seed

    def train_path(self, step: int):
        rng = _rng(self.seed, step)
        return draw_path(self.supernet, lambda: UniformTrial(rng), self.allowed)[0]

    def val_path(self, epoch: int):
        """One fixed path, so that the epochs' val/acc are comparable."""
        rng = _rng(self.seed, -1)
        return draw_path(self.supernet, lambda: UniformTrial(rng), self.allowed)[0]

    def after_epoch(self, module) -> dict:
        return {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class ControllerPaths(UniformPaths):
    """ENAS: the REINFORCE controller draws the paths and learns from their validation accuracy."""

    name = "enas"

    def __init__(self, supernet, allowed, seed: int, policy: Policy, steps: int,
                 target_macs: float | None = None, w: float = -0.07):
        super().__init__(supernet, allowed, seed)
        self.policy, self.steps = policy, steps
        self.target_macs, self.w = target_macs, w
        self.updates = 0
        self.rewards: list[float] = []

    def draw(self, *salt: int, greedy: bool = False):
        g = torch.Generator().manual_seed(hash((self.seed, *salt)) & 0x7FFFFFFF)
        with one_thread():
            return draw_path(self.supernet, lambda: ControllerTrial(self.policy, g, greedy),
                             self.allowed)

    def train_path(self, step: int):
        return self.draw(0, step)[0]

    def val_path(self, epoch: int):
        return self.draw(1, epoch, greedy=True)[0]

    def reward(self, acc: float, path) -> float:
        if self.target_macs is None:
            return acc
        return mnas_reward(acc, path.macs, self.target_macs, self.w)

    def after_epoch(self, module) -> dict:
        """``steps`` controller updates, one validation batch each."""
        batches = itertools.cycle(module.trainer.datamodule.val_dataloader())
        supernet = module.model
        last = {}
        for _ in range(self.steps):
            path, trial = self.draw(2, self.updates)
            x, y = next(batches)
            acc = path_accuracy(supernet, path, [(x, y)], module.device)
            r = self.reward(acc, path)
            with one_thread():
                last = self.policy.update(trial.steps, r)
            self.rewards.append(r)
            self.updates += 1
        return {"controller/reward": sum(self.rewards[-self.steps:]) / max(1, self.steps),
                "controller/entropy": last.get("entropy", 0.0)}

    def state_dict(self) -> dict:
        return {"policy": self.policy.state_dict(), "updates": self.updates,
                "rewards": list(self.rewards)}

    def load_state_dict(self, state: dict) -> None:
        self.policy.load_state_dict(state["policy"])
        self.updates = int(state["updates"])
        self.rewards = [float(r) for r in state["rewards"]]


# -- scoring a path on the shared weights ---------------------------------------------------------

@contextlib.contextmanager
def batch_statistics(module: nn.Module):
    """Eval mode, except that norms use the batch's statistics and leave the running ones alone."""
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    was = module.training
    saved = [m.momentum for m in norms]
    module.eval()
    for m in norms:
        m.train()
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, mom in zip(norms, saved):
            m.momentum = mom
        module.train(was)


@torch.no_grad()
def path_accuracy(supernet, path, batches, device, batch_stats: bool = True) -> float:
    """The accuracy of ``path`` on ``batches`` with the shared weights."""
    supernet.activate(path)
    correct = total = 0
    ctx = batch_statistics(path.module) if batch_stats else _eval(path.module)
    with ctx:
        for x, y in batches:
            x, y = x.to(device), y.to(device)
            correct += int((path.module(x).argmax(1) == y).sum())
            total += len(y)
    return correct / max(1, total)


@contextlib.contextmanager
def _eval(module: nn.Module):
    was = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was)


@torch.no_grad()
def recalibrate(path, batches, device) -> None:
    """SPOS's BN recalibration: the path's norms' running statistics recomputed (a plain
    average) on training batches, with the shared weights."""
    norms = [m for m in path.module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None                  # a cumulative average over the batches
    with _eval(path.module):
        for m in norms:
            m.train()
        for x, _ in batches:
            path.module(x.to(device))
    for m, mom in zip(norms, saved):
        m.momentum = mom


class SupernetClassifier(SpecClassifier):
    """netspec.train's LightningModule (loss, mixing, metrics, optimizer, schedule) around the
    supernet; ``paths`` picks each batch's path and learns after each epoch (ENAS)."""

    paths: UniformPaths

    def on_train_batch_start(self, batch, batch_idx):
        path = self.paths.train_path(self.global_step)
        self.model.activate(path)
        if self.trainer.world_size > 1:      # every rank must run the same path
            mine = torch.tensor([zlib.crc32(repr(decision_key(path.params)).encode())],
                                device=self.device)
            ranks = self.all_gather(mine).flatten()
            if not bool((ranks == ranks[0]).all()):
                raise RuntimeError(f"the DDP ranks drew different paths at step "
                                   f"{self.global_step}: {ranks.tolist()}; please report this")

    def on_validation_epoch_start(self):
        self.model.activate(self.paths.val_path(self.current_epoch))

    def validation_step(self, batch, batch_idx):
        # batch statistics, as the controller's reward: the shared running statistics belong to
        # no path (a path's are recalibrated only when it is scored as a candidate)
        with batch_statistics(self.model.active.module):
            return super().validation_step(batch, batch_idx)

    def on_train_epoch_end(self):
        for k, v in self.paths.after_epoch(self).items():
            self.log(k, float(v))

    def on_save_checkpoint(self, checkpoint):
        checkpoint[STATE_KEY] = {"strategy": self.paths.name, **self.paths.state_dict()}

    def on_load_checkpoint(self, checkpoint):
        state = checkpoint.get(STATE_KEY)
        if state is not None:
            self.paths.load_state_dict(state)


def supernet_module(supernet, paths, cfg, class_weights=None) -> SupernetClassifier:
    module = SupernetClassifier(
        plain(supernet.space.spec), OmegaConf.to_container(cfg.optim),
        OmegaConf.to_container(cfg.sched), OmegaConf.to_container(cfg.loss), class_weights,
        cfg.channels_last, False, OmegaConf.to_container(cfg.data),
        OmegaConf.to_container(cfg.aug), model=supernet)
    module.paths = paths
    supernet.activate(paths.val_path(0))        # a path is active from the start (summaries)
    return module
