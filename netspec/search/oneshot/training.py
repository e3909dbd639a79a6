"""Training the supernet: netspec.train's LightningModule around it, and who picks each batch's path.

    UniformPaths      SPOS: a path drawn uniformly (within the constraints) for every batch
    ControllerPaths   ENAS: the controller draws each batch's path, and after every epoch takes
                      ``controller_steps`` REINFORCE steps, each rewarded with the accuracy of a
                      path it drew on one validation batch (the shared weights, batch statistics)

``oneshot.warmup`` (Widening) eases both in: during the first part of the training each decision
is drawn with a probability that rises from ``warmup_from`` to 1, and otherwise keeps the value of
one anchor path (a fixed uniform draw), so the shared weights first learn one network and its
near neighbours, then the whole space; the controller takes no steps until then. Why: a NASNet
cell supernet whose every decision changes each step stays near chance for hundreds of steps
(bench/probe_supernet_learning.py), one path learns in tens. Once-for-All's progressive shrinking
(the largest network first, then smaller options) and the weight warm-up of FBNet and
ProxylessNAS (no architecture updates until the weights are trained) are the same idea.

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

import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf
from torch import nn

from ...lang.source import plain
from ...threads import one_thread
from ...train.module import SpecClassifier
from ..rl.policy import Policy, mnas_reward
from .paths import AnchoredTrial, ControllerTrial, UniformTrial
from .supernet import decision_key, draw_path

STATE_KEY = "netspec_oneshot"


def _rng(seed: int, *salt: int) -> random.Random:
    return random.Random(hash((seed, *salt)) & 0xFFFFFFFF)


class Widening:
    """The drawn fraction of the supernet's warm-up at each step: ``start`` at step 0, rising
    geometrically to 1 at ``fraction`` of the training's steps (so most warm-up steps are
    spent near the anchor), 1 after that."""

    def __init__(self, fraction: float, start: float = 0.05):
        self.fraction, self.start = fraction, start

    def p(self, step: int, total: int) -> float:
        end = self.fraction * total
        if step >= end:
            return 1.0
        return self.start ** (1.0 - step / end)


class UniformPaths:
    """SPOS: each batch's path drawn uniformly, within the constraints."""

    name = "spos"

    def __init__(self, supernet, allowed, seed: int, widening: Widening | None = None):
        self.supernet, self.allowed, self.seed = supernet, allowed, seed
        self.widening = widening
        self._anchor: dict | None = None

    def drawn(self, step: int, total: int) -> float:
        """The probability that a decision is drawn at ``step`` (else it keeps the anchor's)."""
        return 1.0 if self.widening is None else self.widening.p(step, total)

    def drawn_at_epoch_end(self, module) -> float:
        """``drawn`` at the last step taken (the epoch's last, when an epoch ends)."""
        return self.drawn(module.global_step - 1, module.trainer.estimated_stepping_batches)

    def anchor(self) -> dict:
        """The warm-up's anchor path: a fixed uniform draw (for spos, the val path too)."""
        if self._anchor is None:
            self._anchor = UniformPaths.val_path(self, 0).params
        return self._anchor

    def anchored(self, make_trial, p: float, rng: random.Random):
        if p >= 1.0:
            return make_trial
        anchor = self.anchor()
        return lambda: AnchoredTrial(make_trial(), anchor, p, rng)

    def train_path(self, step: int, total: int = 1):
        rng = _rng(self.seed, step)
        make = self.anchored(lambda: UniformTrial(rng), self.drawn(step, total), rng)
        return draw_path(self.supernet, make, self.allowed)[0]

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
                 target_macs: float | None = None, w: float = -0.07,
                 widening: Widening | None = None):
        super().__init__(supernet, allowed, seed, widening)
        self.policy, self.steps = policy, steps
        self.target_macs, self.w = target_macs, w
        self.updates = 0
        self.rewards: list[float] = []

    def draw(self, *salt: int, greedy: bool = False, p: float = 1.0):
        g = torch.Generator().manual_seed(hash((self.seed, *salt)) & 0x7FFFFFFF)
        make = self.anchored(lambda: ControllerTrial(self.policy, g, greedy), p,
                             _rng(self.seed, *salt))
        with one_thread():
            return draw_path(self.supernet, make, self.allowed)

    def train_path(self, step: int, total: int = 1):
        return self.draw(0, step, p=self.drawn(step, total))[0]

    def val_path(self, epoch: int):
        return self.draw(1, epoch, greedy=True)[0]

    def reward(self, acc: float, path) -> float:
        if self.target_macs is None:
            return acc
        return mnas_reward(acc, path.macs, self.target_macs, self.w)

    def after_epoch(self, module) -> dict:
        """``steps`` controller updates, one validation batch each; none while the supernet
        warms up (its weights know the anchor's neighbours only: a reward would teach the
        controller the anchor)."""
        if self.drawn_at_epoch_end(module) < 1.0:
            return {}
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
        path = self.paths.train_path(self.global_step, self.trainer.estimated_stepping_batches)
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

    def on_save_checkpoint(self, checkpoint):
        checkpoint[STATE_KEY] = {"strategy": self.paths.name, **self.paths.state_dict()}

    def on_load_checkpoint(self, checkpoint):
        state = checkpoint.get(STATE_KEY)
        if state is not None:
            self.paths.load_state_dict(state)


class PathsEpochEnd(pl.Callback):
    """After each supernet epoch: the controller's steps (ENAS) and the drawn fraction, logged.
    A callback, listed before the console line's and the checkpoints' (a LightningModule's own
    epoch-end hook runs after every callback's), so both see this epoch's."""

    def on_train_epoch_end(self, trainer, pl_module):
        paths = pl_module.paths
        if paths.widening is not None:
            pl_module.log("supernet/drawn", paths.drawn_at_epoch_end(pl_module))
        for k, v in paths.after_epoch(pl_module).items():
            pl_module.log(k, float(v))


def supernet_module(supernet, paths, cfg, class_weights=None) -> SupernetClassifier:
    module = SupernetClassifier(
        plain(supernet.space.spec), OmegaConf.to_container(cfg.optim),
        OmegaConf.to_container(cfg.sched), OmegaConf.to_container(cfg.loss), class_weights,
        cfg.channels_last, False, OmegaConf.to_container(cfg.data),
        OmegaConf.to_container(cfg.aug), model=supernet)
    module.paths = paths
    supernet.activate(paths.val_path(0))        # a path is active from the start (summaries)
    return module
