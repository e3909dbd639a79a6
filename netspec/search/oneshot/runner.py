"""A one-shot search (``strategy=enas`` or ``strategy=spos``): train the supernet, score candidates
on it, retrain the best few standalone where asked, write the results.

The run directory holds what a trial search leaves (study.db, trials.csv, best.yaml, best.json,
history.png; estimates.png when anything was retrained) and ``supernet/`` (its checkpoints:
last.ckpt carries the weights, the optimizer and the controller; ``done`` once trained) and
``retrain/NNNN/`` (the retrained candidates). Each phase resumes where it stopped: the supernet
from last.ckpt, the scoring from the study (every candidate is a trial), the retraining from the
standalone accuracies kept in the study's user attributes.
"""
from __future__ import annotations

import copy
import time
from pathlib import Path

import optuna
from omegaconf import open_dict
from optuna.trial import TrialState

from ...errors import ConfigError, StrategyError
from ..constraints import reject_if_violated, static_violations
from ..objective import train_trial
from ..quiet import Quiet
from ..runner import Search, SearchResult
from ..sampling import FixedTrial
from ..trial_config import trial_cfg
from ..writing import write_spec
from .phases import RESCORED, distinct, rescore_best, score_candidates, strategy_options, train_supernet
from .results import write_oneshot_results
from .supernet import SHARES, Allowed, OutsideSupernet, Supernet

EVOLUTION = {"evolution": "nsga2", "tpe": "tpe", "random": "random"}
STANDALONE = "standalone"          # study user attribute: trial number -> retrained accuracy


class OneShotSearch(Search):
    """One weight-sharing search command (see the module docstring)."""

    def __init__(self, cfg, log=print):
        super().__init__(cfg, log)
        self.oneshot = cfg.oneshot
        self._refuse(cfg)
        self.seed = int(cfg.seed) if cfg.seed is not None else 0
        started = time.process_time()
        # the supernet is the space's, not the run's: its coverage draws are seeded alike for
        # every seed=, so that a checkpoint always fits it
        self.supernet = Supernet(self.sampler_space, seed=0,
                                 patience=int(self.oneshot.patience),
                                 share=str(self.oneshot.share))
        self.cover_seconds = time.process_time() - started
        self.standalone: dict[int, float] = {}
        self.rescored: dict[int, float] = {}
        self.supernet_losses: dict[int, float] = {}   # per epoch (phases.train_supernet)

    def _refuse(self, cfg):
        if self.objectives != ["acc"]:
            raise StrategyError(f"strategy={cfg.strategy.name} optimizes accuracy alone "
                                f"(objectives=[acc]); for accuracy against MACs give "
                                f"strategy.options.target_macs=<T> (MnasNet's reward) to enas, or "
                                f"constraints.max_macs=<M>; for a Pareto front use strategy=nsga2")
        if cfg.pruner.name != "none":
            raise ConfigError(f"pruner={cfg.pruner.name}: a one-shot search trains one supernet "
                              f"and prunes nothing; drop the pruner")
        if self.constraints.get("max_latency_ms") is not None:
            raise ConfigError("constraints.max_latency_ms: a one-shot search checks MACs and "
                              "params for every path it samples, not a measured latency; use "
                              "constraints.max_macs, or a trial search (strategy=tpe, rl)")
        if cfg.strategy.name == "spos" and strategy_options(cfg):
            raise ConfigError(f"strategy=spos takes no strategy.options (got "
                              f"{', '.join(strategy_options(cfg))}); its keys are oneshot.*")
        if cfg.oneshot.share not in SHARES:
            raise ConfigError(f"oneshot.share={cfg.oneshot.share}: use slice (one tensor of the "
                              f"largest size, sliced per path), module (weights by place and "
                              f"shape) or block (a row's every combination its own)")
        if cfg.oneshot.search not in EVOLUTION:
            raise ConfigError(f"oneshot.search={cfg.oneshot.search}: use "
                              f"{', '.join(EVOLUTION)} (how SPOS searches the trained supernet)")
        for key in ("epochs", "candidates"):
            if int(cfg.oneshot[key]) < 1:
                raise ConfigError(f"oneshot.{key} must be at least 1, got {cfg.oneshot[key]}")
        for key in ("retrain_top", "rescore"):
            if int(cfg.oneshot[key]) < 0:
                raise ConfigError(f"oneshot.{key} must be >= 0, got {cfg.oneshot[key]}")
        if not 0.0 <= float(cfg.oneshot.warmup) <= 1.0:
            raise ConfigError(f"oneshot.warmup={cfg.oneshot.warmup}: the fraction of the "
                              f"supernet's steps that widen the drawn decisions, from 0 (none) "
                              f"to 1")
        if not 0.0 < float(cfg.oneshot.warmup_from) <= 1.0:
            raise ConfigError(f"oneshot.warmup_from={cfg.oneshot.warmup_from}: the probability "
                              f"that a decision is drawn at the warm-up's first step, in (0, 1]")

    # -- the constraints on a path -------------------------------------------------------------
    @property
    def allowed(self) -> Allowed:
        return Allowed(self.sampler_space, self.constraints)

    # -- the study of candidates ---------------------------------------------------------------
    def open_study(self) -> optuna.Study:
        cfg = self.cfg
        url = cfg.storage or f"sqlite:///{self.out / 'study.db'}"
        from ..storage import make_storage
        from ..strategies import make_sampler
        self.storage = make_storage(url, cfg.heartbeat, cfg.max_retry)
        self.url = url
        name = "random" if cfg.strategy.name == "enas" else EVOLUTION[cfg.oneshot.search]
        options = {"population_size": int(cfg.oneshot.population)} if name == "nsga2" else {}
        sampler = make_sampler(name, options, seed=self.seed, n_objectives=1,
                               categorical=self.sampler_space.categorical())
        study = optuna.create_study(storage=self.storage, study_name=self.study_name,
                                    direction="maximize", load_if_exists=True, sampler=sampler)
        study.set_user_attr("objectives", self.objectives)
        study.set_user_attr("space", self.space.name)
        study.set_user_attr("strategy", cfg.strategy.name)
        self.study = study
        self.standalone, self.rescored = (
            {int(k): float(v) for k, v in (study.user_attrs.get(key) or {}).items()}
            for key in (STANDALONE, RESCORED))
        self.target = int(cfg.oneshot.candidates)
        return study

    # -- the run -------------------------------------------------------------------------------
    def run(self) -> SearchResult:
        self.out.mkdir(parents=True, exist_ok=True)
        with Quiet():
            study = self.open_study()
        self.log(f"netspec.search: space {self.space.name}, strategy {self.cfg.strategy.name} "
                 f"(one-shot), {len(self.sampler_space.choices)} choices; study "
                 f"'{self.study_name}' in {self.url}")
        self.log(self.supernet.describe())
        try:
            train_supernet(self)
            score_candidates(self)
            rescore_best(self)
            self.retrain()
        finally:
            files = write_oneshot_results(self, final=True)
        return SearchResult(self.out, study, files.get("best"), files.get("best_trials", []),
                            files)

    # -- scoring one candidate ------------------------------------------------------------------
    def score(self, trial: optuna.Trial, estimate) -> float:
        """The study's objective: a candidate's accuracy estimated on the supernet (the trial
        draws the path's decisions; best.yaml is written from them afterwards)."""
        start = time.time()
        try:
            path = self.supernet.path(trial)
        except OutsideSupernet as e:
            trial.set_user_attr("rejected", f"outside the supernet: {e}")
            raise optuna.TrialPruned("outside the supernet") from None
        trial.set_user_attr("macs", int(path.macs))
        trial.set_user_attr("params", int(path.n_params))
        reject_if_violated(trial, static_violations(self.sampler_space, self.constraints,
                                                    path.params, path.macs, path.n_params))
        acc = estimate(path)
        trial.set_user_attr("acc", acc)
        trial.set_user_attr("seconds", round(time.time() - start, 3))
        return acc

    # -- retraining the best ------------------------------------------------------------------
    def estimate_of(self, t) -> float:
        """A candidate's best estimate: on all validation batches where it was rescored."""
        return self.rescored.get(t.number, t.value)

    def ranked(self) -> list:
        """Candidates best first, each architecture once: the rescored ones (their
        all-validation estimates) ahead of the rest (their screening estimates)."""
        done = [t for t in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
        return distinct(sorted(done, key=lambda t: (t.number not in self.rescored,
                                                    -self.estimate_of(t), t.number)))

    def retrain(self) -> None:
        k = int(self.oneshot.retrain_top)
        for t in self.ranked()[:k]:
            if t.number in self.standalone:
                continue
            tdir = self.out / "retrain" / f"{t.number:04d}"
            sample = self.sampler_space.sample(FixedTrial(t.params),
                                               f"{self.space.name}_{t.number}")
            spec_file = write_spec(sample.spec, tdir / "spec.yaml",
                                   header=f"candidate {t.number} of study '{self.study_name}': "
                                          f"estimated acc {self.estimate_of(t):.4f} on the "
                                          f"supernet")
            self.log(f"retraining candidate {t.number} (estimated {self.estimate_of(t):.4f}) "
                     f"standalone for {self.cfg.budget.epochs} epochs")
            started = time.process_time()
            result = train_trial(trial_cfg(self.cfg, spec_file, sample, tdir), [],
                                 tdir / "train.log")
            acc = float(result.best_val_acc)
            self.standalone[t.number] = acc
            self.retrain_seconds = getattr(self, "retrain_seconds", 0.0) + \
                time.process_time() - started
            self.study.set_user_attr(STANDALONE, {str(n): a for n, a in self.standalone.items()})
            self.log(f"  standalone val/acc {acc:.4f}")

    # -- the supernet's training config ----------------------------------------------------------
    def supernet_cfg(self):
        """netspec.train's config for the supernet: oneshot.epochs, last.ckpt every epoch."""
        tcfg = copy.deepcopy(self.cfg)
        with open_dict(tcfg):
            tcfg.run_dir = str(self.supernet_dir)
            tcfg.trainer.max_epochs = int(self.oneshot.epochs)
            if self.cfg.budget.fraction != 1.0:
                tcfg.trainer.limit_train_batches = float(self.cfg.budget.fraction)
            strategy = str(tcfg.trainer.get("strategy") or "")
            if strategy == "ddp_spawn":     # each rank runs its own path's subset of weights
                tcfg.trainer.strategy = "ddp_spawn_find_unused_parameters_true"
            tcfg.callbacks.checkpoint = True
            tcfg.callbacks.save_last = True
            tcfg.test = False
            if tcfg.trainer.get("enable_model_summary") is None:
                tcfg.trainer.enable_model_summary = False
        return tcfg

    def cpu_seconds(self) -> dict:
        """This process's CPU seconds per phase (what the benchmark compares)."""
        return {k: v for k, v in (("supernet_cover", self.cover_seconds),
                                  ("supernet_training", getattr(self, "supernet_seconds", None)),
                                  ("scoring", getattr(self, "score_seconds", None)),
                                  ("rescoring", getattr(self, "rescore_seconds", None)),
                                  ("retraining", getattr(self, "retrain_seconds", None)))
                if v is not None}

    @property
    def supernet_dir(self) -> Path:
        return self.out / "supernet"

    @property
    def losses_file(self) -> Path:
        return self.supernet_dir / "losses.json"
