"""The two phases of a one-shot search before retraining: the supernet's training (resumable from
its last.ckpt) and the scoring of candidates on it (each an Optuna trial, so resumable too)."""
from __future__ import annotations

import itertools
import json
import sys
import time
from pathlib import Path

import optuna
import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf
from optuna.trial import TrialState

from ...errors import SearchFailed
from ..chance import supernet_unlearned
from ..objective import logged_to
from ..quiet import Quiet
from ..sampling import FixedTrial
from ..trials import finished_trials
from .supernet import decision_key
from .training import (
    STATE_KEY,
    ControllerPaths,
    PathsEpochEnd,
    UniformPaths,
    Widening,
    path_accuracy,
    recalibrate,
    supernet_module,
)


def strategy_options(cfg) -> dict:
    return OmegaConf.to_container(cfg.strategy.options) or {}


def make_paths(search):
    """Who draws the paths: uniform (spos) or the controller (enas, its options from strategy=)."""
    o = search.oneshot
    widening = Widening(float(o.warmup), float(o.warmup_from)) if float(o.warmup) > 0 else None
    if search.cfg.strategy.name == "spos":
        return UniformPaths(search.supernet, search.allowed, search.seed, widening)
    from ..rl.policy import Policy
    opts = {**CONTROLLER, **strategy_options(search.cfg)}
    steps = int(opts.pop("controller_steps"))
    target, w = opts.pop("target_macs"), float(opts.pop("w"))
    unknown = set(opts) - set(POLICY)
    if unknown:
        from ...errors import StrategyError
        raise StrategyError(f"strategy=enas has no option '{sorted(unknown)[0]}'; its options: "
                            f"{', '.join([*POLICY, 'controller_steps', 'target_macs', 'w'])}")
    policy = Policy(search.seed, **opts)
    return ControllerPaths(search.supernet, search.allowed, search.seed, policy, steps,
                           None if target is None else float(target), w, widening)


# ENAS's controller (Pham et al. 2018: an LSTM, Adam, an EMA baseline, an entropy bonus, logits
# bounded by tanh); lr, entropy and the normalized advantage are rl's, sized for short runs
POLICY = ("hidden", "embed", "lr", "baseline_decay", "entropy_weight", "normalize", "temperature",
          "tanh_constant", "grad_clip", "imitation_weight")
CONTROLLER = {"hidden": 64, "embed": 32, "lr": 0.01, "baseline_decay": 0.95,
              "entropy_weight": 0.05, "normalize": True, "temperature": 1.0,
              "tanh_constant": 1.5, "grad_clip": 5.0, "imitation_weight": 0.0,
              "controller_steps": 20, "target_macs": None, "w": -0.07}


class EpochLine(pl.Callback):
    """One console line per supernet epoch (Lightning's own output goes to supernet/train.log),
    and each epoch's training loss kept in ``losses`` (a file: a spawned DDP rank writes it too,
    and a resumed run adds to it)."""

    def __init__(self, epochs: int, losses: Path):
        self.epochs, self.started, self.losses = epochs, time.time(), losses

    @staticmethod
    def say(line: str) -> None:
        # the console, also from a spawned DDP rank and under train.log's redirection
        print(line, file=sys.__stdout__, flush=True)

    def on_train_epoch_end(self, trainer, pl_module):
        if not trainer.is_global_zero:
            return
        m = trainer.callback_metrics
        if "train/loss_epoch" in m:
            kept = epoch_losses(self.losses)
            kept[trainer.current_epoch] = float(m["train/loss_epoch"])
            self.losses.write_text(json.dumps({str(k): v for k, v in kept.items()}) + "\n")
        parts = [f"supernet epoch {trainer.current_epoch + 1}/{self.epochs}"]
        for key, label in (("train/loss_epoch", "train loss"), ("val/acc", "val/acc (one path)"),
                           ("supernet/drawn", "drawn"),
                           ("controller/reward", "controller reward")):
            if key in m:
                parts.append(f"{label} {float(m[key]):.4f}")
        outside = pl_module.model.outside
        if outside:
            parts.append(f"{outside} paths outside the supernet drawn again")
        parts.append(f"{time.time() - self.started:.0f} s")
        self.say(", ".join(parts))


def epoch_losses(file: Path) -> dict[int, float]:
    """The supernet's training loss per epoch, as EpochLine kept it."""
    if not file.is_file():
        return {}
    return {int(k): float(v) for k, v in json.loads(file.read_text()).items()}


def train_supernet(search) -> None:
    """Train the supernet for oneshot.epochs (or load it: ``supernet/done``); resumes from
    supernet/checkpoints/last.ckpt."""
    from ...train.app import data_for, fit
    sdir = search.supernet_dir
    last = sdir / "checkpoints" / "last.ckpt"
    done = sdir / "done"
    search.paths = make_paths(search)
    tcfg = search.supernet_cfg()
    search.dm = data_for(tcfg, None, [])
    module = supernet_module(search.supernet, search.paths, tcfg)
    if done.is_file():
        _load(module, last)
        search.supernet_seconds = json.loads(done.read_text()).get("cpu_seconds")
        search.log(f"supernet: trained already ({done}); scoring candidates")
        _check_learned(search, module)
        return
    if tcfg.seed is not None:
        pl.seed_everything(tcfg.seed, workers=True, verbose=False)
    resume = str(last) if last.is_file() else None
    if resume:
        search.log(f"supernet: resuming from {last}")
    started, cpu = time.time(), time.process_time()
    with logged_to(sdir / "train.log"), Quiet():
        fit(tcfg, module, search.dm, sdir, module.hparams.spec, started,
            last=[PathsEpochEnd(),
                  EpochLine(int(search.oneshot.epochs), search.losses_file)], ckpt_path=resume)
    if not last.is_file():
        raise SearchFailed(f"the supernet's training wrote no {last}; see {sdir / 'train.log'}")
    _load(module, last)          # the weights and the controller of rank 0 (ddp_spawn too)
    search.supernet_seconds = time.process_time() - cpu
    done.write_text(json.dumps({"cpu_seconds": search.supernet_seconds,
                                "seconds": time.time() - started}) + "\n")
    _check_learned(search, module)


def _check_learned(search, module) -> None:
    search.supernet_losses = epoch_losses(search.losses_file)
    warning = supernet_unlearned(search.supernet_losses, module.num_classes)
    if warning:
        search.log(warning)


def _load(module, last) -> None:
    ckpt = torch.load(last, map_location="cpu", weights_only=True)
    module.load_state_dict(ckpt["state_dict"])
    if STATE_KEY in ckpt:
        module.paths.load_state_dict(ckpt[STATE_KEY])


RESCORED = "rescored"     # study user attribute: trial number -> all-validation estimate
FLUSH = 25      # scored candidates written to the study at a time (one transaction each)


def score_candidates(search) -> None:
    """Score oneshot.candidates paths on the trained supernet: ENAS's drawn from the controller,
    SPOS's proposed by the evolution (or TPE, random); each one's BN statistics recalibrated
    on oneshot.recalibrate training batches, then its accuracy on the validation data.

    The candidates are scored in an in-memory study and written to the run's study FLUSH at a
    time (a candidate costs milliseconds; a storage write per decision would cost more): a kill
    loses at most the last FLUSH scores, which the rerun scores again."""
    cfg, study = search.cfg, search.study
    estimate = make_estimator(search)
    kept = finished_trials(study.get_trials(deepcopy=False))
    with Quiet():
        memory = optuna.create_study(direction="maximize", sampler=study.sampler)
    memory.add_trials(kept)
    if cfg.strategy.name == "enas":
        scored = {decision_key(t.params) for t in kept}
        for params in controller_candidates(search):
            if decision_key(params) not in scored:
                memory.enqueue_trial(params)
    started = time.process_time()
    written = len(kept)
    while True:
        trials = memory.get_trials(deepcopy=False)
        done = finished_trials(trials)
        waiting = [t for t in trials if t.state == TrialState.WAITING]
        finished = len(done) >= search.target or (cfg.strategy.name == "enas" and not waiting)
        if finished or len(done) - written >= FLUSH:
            study.add_trials(done[written:])
            written = len(done)
            search.log(f"candidates {len(done)}/{search.target}: {_best(memory)}")
        if finished:
            break
        with Quiet():
            memory.optimize(lambda t: search.score(t, estimate), n_trials=1,
                            catch=(Exception,), gc_after_trial=False)
    search.score_seconds = time.process_time() - started
    failed = [t for t in memory.get_trials(deepcopy=False) if t.state == TrialState.FAIL]
    if failed:
        raise SearchFailed(f"{len(failed)} candidates failed to score, e.g. #{failed[0].number}: "
                           f"{failed[0].user_attrs.get('fail_reason', 'see the study')}")


def _best(study) -> str:
    try:
        return f"best estimate {study.best_value:.4f} (#{study.best_trial.number})"
    except ValueError:
        return "no estimate yet"


def make_estimator(search, all_batches: bool = False):
    """estimate(path): its accuracy on oneshot.eval_batches validation batches (all of them with
    all_batches or eval_batches null) with the shared weights, its BN statistics recalibrated
    first on oneshot.recalibrate training batches (the same batches for every candidate); a path
    scored once is not scored again."""
    cfg, supernet = search.cfg, search.supernet
    device = torch.device("cuda" if torch.cuda.is_available() and
                          str(cfg.trainer.get("accelerator") or "auto") in ("auto", "gpu", "cuda")
                          else "cpu")
    supernet.to(device)
    # the training batches' augmentation draws from the global RNG: seeded here, they are the
    # same whatever this process did before (trained the supernet, or loaded it on a rerun)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(search.seed)
        train = list(itertools.islice(search.dm.train_dataloader(),
                                      int(search.oneshot.recalibrate)))
    n_eval = None if all_batches else search.oneshot.eval_batches
    val = list(itertools.islice(search.dm.val_dataloader(),
                                None if n_eval is None else int(n_eval)))
    scores: dict = {}

    def estimate(path) -> float:
        key = decision_key(path.params)
        if key not in scores:
            if train:
                recalibrate(path, train, device)
            scores[key] = path_accuracy(supernet, path, val, device, batch_stats=False)
        return scores[key]

    return estimate


def distinct(trials: list) -> list:
    """The first trial of each architecture: an evolution proposes one again now and then, and a
    duplicate would take a rescoring or retraining slot with nothing new to learn."""
    first: dict = {}
    for t in trials:
        first.setdefault(decision_key(t.params), t)
    return list(first.values())


def rescore_best(search) -> None:
    """Score the oneshot.rescore best estimates again on all validation batches: screening a
    hundred candidates on a few batches crowns the luckiest as often as the best (the winner's
    curse); the all-validation estimates rank the final pick and the retrained ones. Resumable:
    each rescored estimate is kept in the study."""
    k = int(search.oneshot.rescore)
    if k == 0 or search.oneshot.eval_batches is None:
        return          # nothing to rescore, or already scored on all of the validation data
    todo = [t for t in distinct(sorted(search.study.get_trials(deepcopy=False,
                                                               states=(TrialState.COMPLETE,)),
                                       key=lambda t: (-t.value, t.number)))[:k]
            if t.number not in search.rescored]
    if not todo:
        return
    started = time.process_time()
    estimate = make_estimator(search, all_batches=True)
    for t in todo:
        path = search.supernet.path(FixedTrial(t.params))
        search.rescored[t.number] = estimate(path)
        search.study.set_user_attr(RESCORED, {str(n): a for n, a in search.rescored.items()})
    search.rescore_seconds = time.process_time() - started
    best = max(todo, key=lambda t: (search.rescored[t.number], -t.number))
    search.log(f"rescored the best {len(todo)} estimates on all validation batches: best "
               f"{search.rescored[best.number]:.4f} (#{best.number}, screened "
               f"{best.value:.4f})")


def controller_candidates(search) -> list[dict]:
    """The trained controller's oneshot.candidates draws, duplicates once (the same draws on a
    rerun: each is seeded)."""
    seen: dict = {}
    for i in range(int(search.oneshot.candidates)):
        path, _ = search.paths.draw(3, i)
        seen.setdefault(decision_key(path.params), path.params)
    search.target = len(seen)
    search.log(f"the controller drew {int(search.oneshot.candidates)} paths, {len(seen)} "
               f"distinct: scoring each on the supernet")
    return list(seen.values())


