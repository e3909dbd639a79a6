"""Optimizers (with weight decay off where it hurts) and learning-rate schedules."""
from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import ConfigError, did_you_mean

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
SCHEDULES = ("none", "step", "multistep", "cosine", "onecycle", "plateau")



def param_groups(model: nn.Module, cfg) -> list[dict]:
    """Trainable parameters split into decayed and not decayed groups.

    Norm weights and biases (1-D tensors) take no weight decay; with ``no_decay_depthwise`` neither
    do depthwise conv weights (few parameters each, and decay hurts them, MobileNet paper §4).
    """
    no_decay = set()
    if cfg.no_decay_depthwise:
        for m in model.modules():
            if isinstance(m, nn.Conv2d) and m.groups > 1 and m.groups == m.in_channels:
                no_decay.add(id(m.weight))
    decay, plain = [], []
    for p in model.parameters():
        if not p.requires_grad:
            continue
        if (cfg.no_decay_norm_bias and p.ndim <= 1) or id(p) in no_decay:
            plain.append(p)
        else:
            decay.append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}]
    if plain:
        groups.append({"params": plain, "weight_decay": 0.0})
    return groups


def make_optimizer(model: nn.Module, cfg) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg)
    name = cfg.name.lower()
    if name == "sgd":  # Nesterov needs momentum: without it, plain SGD
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum,
                               nesterov=cfg.nesterov and cfg.momentum > 0)
    if name == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps)
    if name == "rmsprop":
        return torch.optim.RMSprop(groups, lr=cfg.lr, alpha=cfg.alpha, eps=cfg.eps,
                                   momentum=cfg.momentum)
    raise ConfigError(f"optim.name: unknown optimizer '{cfg.name}'{did_you_mean(name, OPTIMIZERS)};"
                      f" use one of {', '.join(OPTIMIZERS)}")


def make_scheduler(optimizer, cfg, *, steps_per_epoch: int, epochs: int):
    """A Lightning lr_scheduler config dict, or None for a constant learning rate."""
    name = cfg.name.lower()
    total = max(1, steps_per_epoch * epochs)
    if name == "none":
        return None
    if name == "step":
        sched = torch.optim.lr_scheduler.StepLR(optimizer, cfg.step_size, cfg.gamma)
        return {"scheduler": sched, "interval": "epoch"}
    if name == "multistep":
        sched = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(cfg.milestones), cfg.gamma)
        return {"scheduler": sched, "interval": "epoch"}
    if name == "cosine":
        warmup = int(cfg.warmup_epochs * steps_per_epoch)
        base = [g["lr"] for g in optimizer.param_groups]
        floor = [cfg.min_lr / lr if lr else 0.0 for lr in base]

        def factor(step, floor_i):
            if step < warmup:
                return (step + 1) / warmup
            t = min(1.0, (step - warmup) / max(1, total - warmup))
            return floor_i + (1 - floor_i) * 0.5 * (1 + math.cos(math.pi * t))

        lambdas = [lambda s, f=f: factor(s, f) for f in floor]
        sched = torch.optim.lr_scheduler.LambdaLR(optimizer, lambdas)
        return {"scheduler": sched, "interval": "step"}
    if name == "onecycle":
        if total < 4:       # too short for a warm-up and an annealing phase: keep the rate
            return None
        # each phase needs at least two steps, or torch's OneCycleLR divides by zero
        pct = min(max(cfg.pct_start, 2.0 / total), 1.0 - 2.0 / total)
        sched = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=[g["lr"] for g in optimizer.param_groups], total_steps=total,
            pct_start=pct, div_factor=cfg.div_factor,
            final_div_factor=cfg.final_div_factor)
        return {"scheduler": sched, "interval": "step"}
    if name == "plateau":
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max" if "acc" in cfg.monitor else "min", factor=cfg.factor,
            patience=cfg.patience)
        return {"scheduler": sched, "interval": "epoch", "monitor": cfg.monitor}
    raise ConfigError(f"sched.name: unknown schedule '{cfg.name}'{did_you_mean(name, SCHEDULES)};"
                      f" use one of {', '.join(SCHEDULES)}")
