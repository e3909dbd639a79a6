"""The search runner (`python -m netspec.search`): opens the study, then runs trials until the
study holds ``n_trials`` finished ones, and writes the results (results.py) as it goes.

A trial is objective.py's (sample -> static checks -> latency -> train -> values); the study's
storage is storage.py's, its sampler and pruner strategies.py's. Several workers may share one
storage: each runs trials until the study's total is reached, and a worker that died has its
trial failed by the heartbeat and retried. Sampling happens once, in this process; what a trial
trains is its spec file, so a trial that trains with DDP (``trainer.strategy=ddp_spawn``) trains
the same network on every rank. ``trainer.strategy=ddp`` is refused: Lightning would relaunch
this whole command on every rank.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import optuna
from omegaconf import DictConfig, OmegaConf
from optuna.trial import TrialState

from ..errors import ConfigError, SearchFailed
from .config import study_name_of
from .constraints import TRIAL_CONSTRAINTS, constraint_values
from .jobs import job_count, run_jobs
from .objective import run_trial
from .quiet import Quiet
from .results import Progress, write_results
from .sampling import FixedTrial, Sampler
from .seeding import seed_per_trial
from .space import load_space
from .storage import has_heartbeat, make_storage
from .strategies import directions, make_pruner, make_sampler
from .trial_config import check_train_keys
from .trials import finished_trials

# Optuna marks heartbeats, retries and stale-trial handling experimental; they are what we use
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning,
                        module=r"netspec\.search")
# Samplers that ignore the constraints say so on every trial; over-budget samples are PRUNED
# before training here (constraints.py) whichever sampler drew them, so it means nothing
warnings.filterwarnings("ignore", message=r"Constraints have been set, but \w+ will not use them")


clock = time.monotonic        # the timeout's clock (a test's fake one replaces it)


@dataclass
class SearchResult:
    """What a search leaves: its run dir, its study, best.yaml and the results files."""

    run_dir: Path
    study: optuna.Study
    best_spec: Path | None
    best_trials: list
    files: dict
    shortfall: str | None = None      # why the study ended short of n_trials (None: it did not)

    @property
    def complete(self) -> bool:
        return self.shortfall is None


def run_dir_of(cfg, study_name: str) -> Path:
    """run_dir, else Hydra's run dir (conf/search.yaml: outputs/search/STUDY)."""
    if cfg.run_dir:
        return Path(cfg.run_dir)
    try:
        from hydra.core.hydra_config import HydraConfig
        return Path(HydraConfig.get().runtime.output_dir)
    except ValueError:
        return Path("outputs") / "search" / study_name


def check_counts(cfg) -> None:
    """The counts a search can't run with, refused before anything is written."""
    if cfg.n_trials is not None and int(cfg.n_trials) < 1:
        raise ConfigError(f"n_trials={cfg.n_trials}: a search needs at least 1 trial "
                          f"(or n_trials=null with strategy=grid: the whole grid)")
    if int(cfg.budget.epochs) < 1:
        raise ConfigError(f"budget.epochs={cfg.budget.epochs}: each trial trains at least 1 epoch")
    if not 0 < float(cfg.budget.fraction) <= 1:
        raise ConfigError(f"budget.fraction={cfg.budget.fraction}: the fraction of the training "
                          f"batches per epoch is in (0, 1]")
    for key in ("heartbeat", "max_retry", "keep_checkpoints"):
        if cfg[key] is not None and float(cfg[key]) < 0:
            raise ConfigError(f"{key}={cfg[key]} must be >= 0")
    if cfg.timeout is not None and float(cfg.timeout) <= 0:
        raise ConfigError(f"timeout={cfg.timeout}: seconds of wall clock, > 0 (null: none)")


class Search:
    """One search command: the space, the study and the objective its trials run."""

    def __init__(self, cfg: DictConfig, log=print, results: bool = True):
        self.cfg = cfg
        self.log = log
        self.results = results          # False in a jobs= worker: the command that started it
        check_counts(cfg)
        self.jobs = job_count(cfg.jobs)
        self.objectives = list(cfg.objectives)
        self.directions = directions(self.objectives)
        strategy = str(cfg.trainer.get("strategy") or "")
        if strategy.startswith("ddp") and strategy != "ddp_spawn":
            raise ConfigError("trainer.strategy=ddp relaunches this whole command on every rank, "
                              "which would run a search on each: use trainer.strategy=ddp_spawn "
                              "(the architecture is sampled once, here, and every rank trains "
                              "the trial's spec file)")
        self.space = load_space(cfg.space)
        self.study_name = study_name_of(cfg.space, cfg.strategy.name, cfg.study_name)
        self.out = run_dir_of(cfg, self.study_name).resolve()
        self.pruner = make_pruner(cfg.pruner.name, OmegaConf.to_container(cfg.pruner.options),
                                  n_objectives=len(self.objectives),
                                  max_epochs=cfg.budget.epochs)
        self._data_info()
        self.sampler_space = Sampler(self.space, self.base, self.space.name)
        check_train_keys(self.space, cfg)
        self.constraints = {**self.space.constraints,
                            **{k: v for k, v in OmegaConf.to_container(cfg.constraints).items()
                               if v is not None}}
        self.measures_latency = "latency" in self.objectives or \
            self.constraints.get("max_latency_ms") is not None

    # -- setup ------------------------------------------------------------------------------
    def _data_info(self):
        """The data's channels, size and classes: the space's spec follows them, as in training."""
        from ..train.app import data_for, spec_source
        cfg = self.cfg
        spec_file, spec_over, cfg_spec = None, [], None
        if cfg.spec is not None:
            cfg_spec = OmegaConf.to_container(cfg.spec, resolve=True)
            spec_file, spec_over = spec_source(cfg_spec)
        dm = data_for(cfg, cfg_spec, spec_over)
        self.data = (dm.channels, dm.size, dm.num_classes)
        self.val_count = len(dm.val_dataset)        # chance.py's noise level
        data_over = [f"num_classes={dm.num_classes}", f"input.channels={dm.channels}",
                     f"input.size=[{dm.size[0]}, {dm.size[1]}]"]
        self.base = self.space.base_spec(spec_file, spec_over, data_over)

    def open_study(self) -> optuna.Study:
        cfg = self.cfg
        url = cfg.storage or f"sqlite:///{self.out / 'study.db'}"
        self.storage = make_storage(url, cfg.heartbeat, cfg.max_retry)
        self.url = url
        try:
            old = optuna.load_study(study_name=self.study_name, storage=self.storage)
        except KeyError:
            old = None
        if old is not None and list(old.directions) != [
                optuna.study.StudyDirection.MAXIMIZE if d == "maximize"
                else optuna.study.StudyDirection.MINIMIZE for d in self.directions]:
            was = old.user_attrs.get("objectives", "other objectives")
            raise ConfigError(f"study '{self.study_name}' in {url} was run with objectives "
                              f"{was}, not {self.objectives}: give another study_name= or run_dir=")
        # the sampler first: a strategy that can't serve these objectives writes no study
        seed = None if cfg.seed is None else int(cfg.seed)
        options = OmegaConf.to_container(cfg.strategy.options)
        if cfg.strategy.name == "grid":
            self.grid = self.sampler_space.grid()
            options = {**options, "points": self.grid, "study_name": self.study_name}
        sampler = make_sampler(cfg.strategy.name, options,
                               seed=seed, n_objectives=len(self.objectives),
                               categorical=self.sampler_space.categorical(),
                               constraints_func=None if TRIAL_CONSTRAINTS else constraint_values)
        if seed is not None:
            sampler = seed_per_trial(sampler, seed, self.study_name)
        study = optuna.create_study(storage=self.storage, study_name=self.study_name,
                                    directions=self.directions, load_if_exists=True,
                                    sampler=sampler, pruner=self.pruner)
        if old is None:
            study.set_user_attr("objectives", self.objectives)
            study.set_user_attr("space", self.space.name)
            study.set_user_attr("strategy", cfg.strategy.name)
        self.study = study
        if cfg.storage and not has_heartbeat(self.storage):     # one shared by workers
            self.log("note: heartbeat=0, so a trial whose worker dies stays RUNNING (with "
                     "heartbeat=SECONDS it is detected and retried)")
        self.target = self._target(study)
        return study

    def _target(self, study) -> int:
        """The study's total of finished trials (for a grid, at most its points)."""
        cfg = self.cfg
        if cfg.strategy.name != "grid":
            if cfg.n_trials is None:
                raise ConfigError("n_trials=null means the whole grid; it needs strategy=grid")
            return cfg.n_trials
        n = len(self.grid)
        target = n if cfg.n_trials is None else min(cfg.n_trials, n)
        order = "in a random order" if cfg.strategy.options.get("shuffle") else "in its order"
        self.log(f"grid: {n:,} points satisfy the space"
                 f"{' (where: ' + self.space.where + ')' if self.space.where else ''}; "
                 f"{'all' if target == n else f'{target:,}'} of them are run, {order}")
        return target

    # -- the loop ---------------------------------------------------------------------------
    def run(self) -> SearchResult:
        self.out.mkdir(parents=True, exist_ok=True)
        with Quiet():
            study = self.open_study()
        done = finished_trials(study.get_trials(deepcopy=False))
        self.log(f"netspec.search: space {self.space.name}, strategy {self.cfg.strategy.name}, "
                 f"{len(self.sampler_space.choices)} choices; study '{self.study_name}' in "
                 f"{self.url} ({len(done)} of {self.target} trials done)")
        progress = self.progress = Progress(self, log=self.log)
        quiet = Quiet()
        stopped, shortfall = None, None
        started = clock()
        try:
            if self.jobs > 1:
                shortfall = run_jobs(self, self.jobs)
            while self.jobs == 1:
                if has_heartbeat(self.storage):
                    optuna.storages.fail_stale_trials(study)
                trials = study.get_trials(deepcopy=False)
                done = finished_trials(trials)
                if len(done) >= self.target:
                    break
                if self.cfg.timeout is not None and \
                        clock() - started >= float(self.cfg.timeout):
                    shortfall = f"timeout={self.cfg.timeout:g} s reached"
                    break
                running = [t for t in trials if t.state == TrialState.RUNNING]
                waiting = [t for t in trials if t.state == TrialState.WAITING]
                if len(done) + len(running) >= self.target and not waiting:
                    if not has_heartbeat(self.storage):
                        shortfall = (f"{len(running)} trial(s) still RUNNING, elsewhere or "
                                     f"with a dead worker (heartbeat=0 cannot tell)")
                        break
                    time.sleep(min(5.0, self.cfg.heartbeat))   # other workers finish the study
                    continue
                self._check_fail_rate(done)
                with quiet:
                    study.optimize(self.objective, n_trials=1, catch=(Exception,),
                                   callbacks=[progress], gc_after_trial=False)
        except SearchFailed as e:
            stopped = e
        finally:
            files = write_results(self, final=True) if self.results else {}
        if stopped is not None:
            raise stopped
        signal = files.get("signal")
        if signal and signal["at_chance"]:
            self.log(f"warning: {signal['advice']}")
        done = finished_trials(study.get_trials(deepcopy=False))
        if shortfall is None and len(done) < self.target:     # the jobs' loops ended early
            shortfall = "the workers stopped"
        if shortfall is not None:
            shortfall = f"the study holds {len(done)} of {self.target} trials: {shortfall}"
            self.log(f"incomplete: {shortfall}; the same command goes on")
        best = files.get("best")
        return SearchResult(self.out, study, best, files.get("best_trials", []), files,
                            shortfall)

    def _check_fail_rate(self, done):
        fails = [t for t in done if t.state == TrialState.FAIL]
        if len(done) >= max(1, self.cfg.fail_rate_after) and \
                len(fails) > self.cfg.max_fail_rate * len(done):
            reasons = [f"  #{t.number}: {t.user_attrs.get('fail_reason', 'worker died')}"
                       for t in fails[-3:]]
            raise SearchFailed(
                f"stopping: {len(fails)} of {len(done)} trials failed (max_fail_rate="
                f"{self.cfg.max_fail_rate}); the last reasons:\n" + "\n".join(reasons) +
                f"\nsee {self.out / 'trials'}/NNNN/error.txt")

    # -- one trial --------------------------------------------------------------------------
    def trial_dir(self, number: int) -> Path:
        return self.out / "trials" / f"{number:04d}"

    def objective(self, trial: optuna.Trial):
        return run_trial(self, trial)

    # -- after the search -------------------------------------------------------------------
    def unbaked(self, params: dict) -> dict:
        """A trial's concrete spec as sampled (compound scaling's phi kept, not folded in)."""
        sample = self.sampler_space.sample(FixedTrial(params), self.space.name, bake=False)
        return sample.spec


def run_search(cfg: DictConfig, log=print, results: bool = True) -> SearchResult:
    """Run (or resume) the configured trial search (netspec.search.run_search also dispatches
    the one-shot strategies)."""
    return Search(cfg, log=log, results=results).run()
