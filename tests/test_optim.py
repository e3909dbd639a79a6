"""Optimizers and learning-rate schedules: the hyperparameters that reach torch, and each schedule's
learning rate at every step, against the formula it promises."""
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

import netspec
from netspec.errors import ConfigError
from netspec.train.optim import make_optimizer, make_scheduler

OPTIM = dict(name="adamw", lr=0.1, weight_decay=0.05, momentum=0.9, nesterov=True,
             betas=[0.8, 0.99], eps=1e-6, alpha=0.9, no_decay_norm_bias=True,
             no_decay_depthwise=False)
SCHED = dict(name="none", warmup_epochs=0.0, min_lr=0.0, step_size=2, milestones=[2, 5],
             gamma=0.5, pct_start=0.3, div_factor=25.0, final_div_factor=1e4, factor=0.1,
             patience=2, monitor="val/loss")


def optim_cfg(**kw):
    return SimpleNamespace(**{**OPTIM, **kw})


def sched_cfg(**kw):
    return SimpleNamespace(**{**SCHED, **kw})


def two_groups(lrs=(0.1, 0.03)):
    """An optimizer with two parameter groups at different learning rates."""
    params = [nn.Parameter(torch.zeros(1)) for _ in lrs]
    return torch.optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(params, lrs)], lr=lrs[0])


def drive(optimizer, out, n: int) -> np.ndarray:
    """The learning rate of each group used by each of n steps (or epochs), as Lightning steps it."""
    seen = []
    for _ in range(n):
        seen.append([g["lr"] for g in optimizer.param_groups])
        optimizer.step()
        out["scheduler"].step()
    return np.array(seen)


# -- optimizers -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mobilenet():
    return netspec.build("mobilenet_v2", ["input.size=32"])


def test_optimizers_get_their_hyperparameters(mobilenet):
    cases = {
        "sgd": (torch.optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True)),
        "adam": (torch.optim.Adam, dict(lr=0.1, betas=(0.8, 0.99), eps=1e-6)),
        "adamw": (torch.optim.AdamW, dict(lr=0.1, betas=(0.8, 0.99), eps=1e-6)),
        "rmsprop": (torch.optim.RMSprop, dict(lr=0.1, alpha=0.9, eps=1e-6, momentum=0.9)),
    }
    for name, (kind, expected) in cases.items():
        opt = make_optimizer(mobilenet, optim_cfg(name=name))
        assert type(opt) is kind, name
        for group in opt.param_groups:
            assert {k: group[k] for k in expected} == expected, name
    assert type(make_optimizer(mobilenet, optim_cfg(name="AdamW"))) is torch.optim.AdamW
    # Nesterov needs momentum: without it, plain SGD (torch refuses nesterov with momentum 0)
    plain = make_optimizer(mobilenet, optim_cfg(name="sgd", momentum=0.0))
    assert plain.param_groups[0]["nesterov"] is False and plain.param_groups[0]["momentum"] == 0


@pytest.mark.parametrize("depthwise", [False, True])
def test_weight_decay_skips_norms_biases_and_optionally_depthwise_convs(mobilenet, depthwise):
    opt = make_optimizer(mobilenet, optim_cfg(no_decay_depthwise=depthwise))
    decayed, plain = opt.param_groups
    assert decayed["weight_decay"] == 0.05 and plain["weight_decay"] == 0.0

    def is_depthwise(m):
        return isinstance(m, nn.Conv2d) and m.groups == m.in_channels > 1
    dw = {id(m.weight) for m in mobilenet.modules() if is_depthwise(m)}
    assert len(dw) == 17                                 # one per inverted residual block
    want_plain = {id(p) for p in mobilenet.parameters() if p.ndim <= 1 or (depthwise and id(p) in dw)}
    assert {id(p) for p in plain["params"]} == want_plain
    assert {id(p) for p in decayed["params"]} == {id(p) for p in mobilenet.parameters()} - want_plain


def test_weight_decay_on_everything_when_asked_and_frozen_parameters_left_out():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Linear(4, 2))
    model[2].weight.requires_grad_(False)
    opt = make_optimizer(model, optim_cfg(no_decay_norm_bias=False))
    assert len(opt.param_groups) == 1
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert [id(p) for p in opt.param_groups[0]["params"]] == [id(p) for p in trainable]


def test_unknown_optimizer_names_the_closest():
    with pytest.raises(ConfigError, match=r"optim.name: unknown optimizer 'adamx'.*did you mean "
                                          r"'adam'.*sgd, adam, adamw, rmsprop"):
        make_optimizer(nn.Linear(2, 2), optim_cfg(name="adamx"))


# -- schedules ------------------------------------------------------------------------------------

def test_none_keeps_the_rate():
    assert make_scheduler(two_groups(), sched_cfg(name="none"), steps_per_epoch=10, epochs=5) is None


def test_step_and_multistep_divide_per_epoch():
    opt = two_groups()
    out = make_scheduler(opt, sched_cfg(name="step"), steps_per_epoch=10, epochs=8)
    assert out["interval"] == "epoch"
    assert drive(opt, out, 8).tolist() == [[lr * 0.5 ** (e // 2) for lr in (0.1, 0.03)]
                                          for e in range(8)]
    opt = two_groups()
    out = make_scheduler(opt, sched_cfg(name="multistep"), steps_per_epoch=10, epochs=8)
    assert out["interval"] == "epoch"
    factors = [1, 1, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25]          # milestones 2 and 5
    assert drive(opt, out, 8) == pytest.approx(np.array([[lr * f for lr in (0.1, 0.03)]
                                                          for f in factors]))


def cosine(step: int, base: float, warmup: int, total: int, floor: float) -> float:
    """Linear warm-up to the base rate, then half a cosine down to the floor, then the floor."""
    if step < warmup:
        return base * (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (base - floor) * 0.5 * (1 + math.cos(math.pi * t))


@pytest.mark.parametrize("steps, epochs, warmup_epochs, min_lr", [
    (10, 5, 1.0, 0.0),      # one epoch of warm-up
    (10, 5, 0.0, 0.0),      # none
    (10, 5, 0.5, 1e-3),     # half an epoch, and a floor
    (7, 3, 2.0, 1e-4),      # warm-up of 14 steps in 21
    (4, 1, 2.0, 0.0),       # warm-up longer than the run: it never reaches the cosine
    (1, 1, 0.0, 0.0),       # a single step
])
def test_cosine_with_warmup_per_step(steps, epochs, warmup_epochs, min_lr):
    opt = two_groups()
    out = make_scheduler(opt, sched_cfg(name="cosine", warmup_epochs=warmup_epochs, min_lr=min_lr),
                         steps_per_epoch=steps, epochs=epochs)
    assert out["interval"] == "step"
    total, warmup = steps * epochs, int(warmup_epochs * steps)
    seen = drive(opt, out, total + 3)               # and a few steps past the planned end
    expected = np.array([[cosine(s, base, warmup, total, min_lr) for base in (0.1, 0.03)]
                         for s in range(total + 3)])
    assert seen == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_cosine_values_at_the_landmarks():
    # written out, not computed: 10 steps per epoch, 1 warm-up epoch, 5 epochs, floor 0
    opt = two_groups((0.1,))
    out = make_scheduler(opt, sched_cfg(name="cosine", warmup_epochs=1.0), steps_per_epoch=10,
                         epochs=5)
    lrs = drive(opt, out, 53)[:, 0].tolist()
    assert lrs[0] == pytest.approx(0.01)            # the first warm-up step: 1/10 of the rate
    assert lrs[9] == lrs[10] == pytest.approx(0.1)  # the warm-up's end is the cosine's start
    assert lrs[30] == pytest.approx(0.05)           # half-way through the cosine: half the rate
    assert lrs[49] == pytest.approx(0.1 * 0.5 * (1 + math.cos(math.pi * 39 / 40)))
    assert lrs[50:] == [0.0, 0.0, 0.0]              # then the floor


def one_cycle(step: int, base: float, total: int, pct: float, div: float, final_div: float):
    """torch's OneCycleLR (cosine annealing, two phases) written out."""
    initial, final = base / div, base / div / final_div
    peak = pct * total - 1
    def anneal(a, b, t):
        return b + (a - b) / 2 * (1 + math.cos(math.pi * t))
    if step <= peak:
        return anneal(initial, base, step / peak)
    return anneal(base, final, (step - peak) / (total - 1 - peak))


# each phase is given at least two steps: pct_start is clamped to [2/total, 1 - 2/total]
@pytest.mark.parametrize("total, pct_start, pct", [
    (50, 0.3, 0.3), (5, 0.01, 0.4), (4, 0.01, 0.5), (8, 0.25, 0.25), (100, 0.01, 0.02),
    (10, 0.99, 0.8)])
def test_onecycle_per_step(total, pct_start, pct):
    opt = two_groups()
    out = make_scheduler(opt, sched_cfg(name="onecycle", pct_start=pct_start),
                         steps_per_epoch=total, epochs=1)
    assert out["interval"] == "step"
    expected = np.array([[one_cycle(s, base, total, pct, 25.0, 1e4) for base in (0.1, 0.03)]
                         for s in range(total)])
    assert drive(opt, out, total) == pytest.approx(expected, rel=1e-9)


def test_onecycle_too_short_for_two_phases_keeps_the_rate():
    for total in (1, 2, 3):
        assert make_scheduler(two_groups(), sched_cfg(name="onecycle"), steps_per_epoch=total,
                              epochs=1) is None


def test_plateau_cuts_the_rate_when_the_monitored_metric_stalls():
    opt = two_groups()
    out = make_scheduler(opt, sched_cfg(name="plateau"), steps_per_epoch=10, epochs=10)
    assert out["interval"] == "epoch" and out["monitor"] == "val/loss"
    # val/loss falls for 3 epochs, then stays: after `patience` (2) epochs without improvement
    # the rate is cut by `factor` (0.1), and again after 3 more (patience + the cut's epoch)
    losses = [3.0, 2.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    seen = []
    for loss in losses:
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        out["scheduler"].step(loss)
    assert seen == pytest.approx([0.1] * 6 + [0.01] * 3 + [0.001])


def test_plateau_on_a_rising_accuracy_keeps_the_rate():
    # an accuracy is maximised: a rising val/acc is progress (a minimised one would be cut)
    opt = two_groups()
    out = make_scheduler(opt, sched_cfg(name="plateau", monitor="val/acc"), steps_per_epoch=10,
                         epochs=10)
    assert out["monitor"] == "val/acc"
    for epoch in range(8):
        assert opt.param_groups[0]["lr"] == 0.1, epoch
        opt.step()
        out["scheduler"].step(0.1 * epoch)


def test_schedule_names_ignore_case():
    out = make_scheduler(two_groups(), sched_cfg(name="OneCycle"), steps_per_epoch=10, epochs=1)
    assert isinstance(out["scheduler"], torch.optim.lr_scheduler.OneCycleLR)


def test_unknown_schedule_names_the_closest():
    with pytest.raises(ConfigError, match=r"sched.name: unknown schedule 'cosin'.*did you mean "
                                          r"'cosine'.*none, step, multistep, cosine, onecycle"):
        make_scheduler(two_groups(), sched_cfg(name="cosin"), steps_per_epoch=1, epochs=1)
