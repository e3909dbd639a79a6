"""Optimizers (with weight decay off where it hurts) and learning-rate schedules, by name."""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.optim import lr_scheduler

from ..errors import ConfigError, did_you_mean


def param_groups(model: nn.Module, cfg, later: list | None = None,
                 later_lr_factor: float = 1.0) -> list[dict]:
    """Trainable parameters split into decayed and not decayed groups.

    Norm weights and biases (1-D tensors) take no weight decay; with ``no_decay_depthwise`` neither
    do depthwise conv weights (few parameters each, and decay hurts them, MobileNet paper §4).
    ``later``: frozen parameters that start training at some epoch (transfer.unfreeze_epoch): they
    get groups of their own now, at ``later_lr_factor`` times the rate, so that every schedule is
    built knowing them (a group added later breaks torch's LambdaLR and OneCycleLR).
    """
    no_decay = set()
    if cfg.no_decay_depthwise:
        for m in model.modules():
            if isinstance(m, nn.Conv2d) and m.groups > 1 and m.groups == m.in_channels:
                no_decay.add(id(m.weight))

    def split(params, lr: float | None) -> list[dict]:
        decay, plain = [], []
        for p in params:
            undecayed = (cfg.no_decay_norm_bias and p.ndim <= 1) or id(p) in no_decay
            (plain if undecayed else decay).append(p)
        rate = {} if lr is None else {"lr": lr}
        groups = [{"params": decay, "weight_decay": cfg.weight_decay, **rate}]
        if plain:
            groups.append({"params": plain, "weight_decay": 0.0, **rate})
        return groups

    groups = split([p for p in model.parameters() if p.requires_grad], None)
    if later:
        groups += split(later, cfg.lr * later_lr_factor)
    return groups


# name -> (torch class, its arguments beyond the parameter groups and the learning rate)
OPTIMIZERS = {
    # Nesterov needs momentum: without it, plain SGD
    "sgd": (torch.optim.SGD, lambda c: {"momentum": c.momentum,
                                        "nesterov": c.nesterov and c.momentum > 0}),
    "adam": (torch.optim.Adam, lambda c: {"betas": tuple(c.betas), "eps": c.eps}),
    "adamw": (torch.optim.AdamW, lambda c: {"betas": tuple(c.betas), "eps": c.eps}),
    "rmsprop": (torch.optim.RMSprop, lambda c: {"alpha": c.alpha, "eps": c.eps,
                                                "momentum": c.momentum}),
}


def _pick(table: dict, name: str, key: str, what: str):
    try:
        return table[name.lower()]
    except KeyError:
        raise ConfigError(f"{key}: unknown {what} '{name}'{did_you_mean(name.lower(), table)};"
                          f" use one of {', '.join(table)}") from None


def make_optimizer(model: nn.Module, cfg, later: list | None = None,
                   later_lr_factor: float = 1.0) -> torch.optim.Optimizer:
    kind, arguments = _pick(OPTIMIZERS, cfg.name, "optim.name", "optimizer")
    return kind(param_groups(model, cfg, later, later_lr_factor), lr=cfg.lr, **arguments(cfg))


# -- schedules: each takes (optimizer, cfg, steps per epoch, total steps) ------------------------

def _cosine(optimizer, cfg, steps_per_epoch: int, total: int):
    """Linear warm-up, then half a cosine down to ``min_lr``, then ``min_lr``.

    A LambdaLR, not SequentialLR(LinearLR, CosineAnnealingLR): that gives the same rate at every
    step of the run (tests/test_optim.py), but past its end (``max_steps`` cutting the last epoch,
    a resumed run given more epochs) torch's cosine climbs back up, where this holds the floor.
    """
    warmup = int(cfg.warmup_epochs * steps_per_epoch)
    floors = [cfg.min_lr / g["lr"] if g["lr"] else 0.0 for g in optimizer.param_groups]

    def factor(step, floor):
        if step < warmup:
            return (step + 1) / warmup
        t = min(1.0, (step - warmup) / max(1, total - warmup))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))

    return lr_scheduler.LambdaLR(optimizer, [lambda s, f=f: factor(s, f) for f in floors])


def _onecycle(optimizer, cfg, steps_per_epoch: int, total: int):
    if total < 4:       # too short for a warm-up and an annealing phase: keep the rate
        return None
    # each phase needs at least two steps, or torch's OneCycleLR divides by zero
    pct = min(max(cfg.pct_start, 2.0 / total), 1.0 - 2.0 / total)
    return lr_scheduler.OneCycleLR(
        optimizer, max_lr=[g["lr"] for g in optimizer.param_groups], total_steps=total,
        pct_start=pct, div_factor=cfg.div_factor, final_div_factor=cfg.final_div_factor)


def _plateau(optimizer, cfg, steps_per_epoch: int, total: int):
    return lr_scheduler.ReduceLROnPlateau(optimizer, mode="max" if "acc" in cfg.monitor else "min",
                                          factor=cfg.factor, patience=cfg.patience)


# name -> (the scheduler, how often Lightning steps it)
SCHEDULES = {
    "none": (lambda *_: None, None),
    "step": (lambda o, c, *_: lr_scheduler.StepLR(o, c.step_size, c.gamma), "epoch"),
    "multistep": (lambda o, c, *_: lr_scheduler.MultiStepLR(o, list(c.milestones), c.gamma), "epoch"),
    "cosine": (_cosine, "step"),
    "onecycle": (_onecycle, "step"),
    "plateau": (_plateau, "epoch"),
}


def make_scheduler(optimizer, cfg, *, steps_per_epoch: int, epochs: int):
    """A Lightning lr_scheduler config dict, or None for a constant learning rate."""
    make, interval = _pick(SCHEDULES, cfg.name, "sched.name", "schedule")
    sched = make(optimizer, cfg, steps_per_epoch, max(1, steps_per_epoch * epochs))
    if sched is None:
        return None
    out = {"scheduler": sched, "interval": interval}
    if isinstance(sched, lr_scheduler.ReduceLROnPlateau):
        out["monitor"] = cfg.monitor
    return out
