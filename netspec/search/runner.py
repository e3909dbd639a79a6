"""The search runner: an Optuna study whose trials sample a space, check it, train it and report.

Each trial: sample the space (the strategy's sampler answers every choice the resolve pass meets)
-> write the concrete spec (``trials/NNNN/spec.yaml``) -> static checks on the resolved tree
(``where:``, ``max_macs``, ``max_params``; a rejected sample is PRUNED in milliseconds with its
reason) -> measured latency where asked -> train it with netspec.train's machinery for the budget
-> report the best validation accuracy (and MACs, params or latency for multi-objective runs).

Sampling happens once, in this process; what a trial trains is its spec file. So a trial that
trains with DDP (``trainer.strategy=ddp_spawn``) trains the same network on every rank.
``trainer.strategy=ddp`` is refused: Lightning would relaunch this whole command on every rank.
"""
from __future__ import annotations

import contextlib
import copy
import logging
import math
import os
import socket
import time
import traceback
import warnings
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import optuna
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf
from optuna.trial import TrialState

from ..errors import ConfigError, SearchFailed, StorageError
from ..lang.source import load_file, plain
from ..train.config import SPEC_SOURCES, TrainConfig, register_configs, register_spec_paths
from .pruning import OptunaPruning
from .space import FixedTrial, Sample, Sampler, load_space, write_spec
from .strategies import directions, make_pruner, make_sampler

# Optuna marks heartbeats, retries and stale-trial handling experimental; they are what we use
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning,
                        module=r"netspec\.search")
# Optuna >= 4.9 renamed the retry callback; >= 5 sets constraints on the trial (set_constraint)
RetryCallback = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None) or \
    optuna.storages.RetryFailedTrialCallback
TRIAL_CONSTRAINTS = hasattr(optuna.trial.Trial, "set_constraint")


# -- configuration ---------------------------------------------------------------------------------

@dataclass
class StrategyConfig:
    name: str = "tpe"                  # random, tpe, cmaes, nsga2, grid, rl
    options: dict[str, Any] = field(default_factory=dict)   # keyword arguments of the sampler


@dataclass
class PrunerConfig:
    name: str = "none"                 # none, median, asha, hyperband
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class BudgetConfig:
    epochs: int = 3                    # each trial's trainer.max_epochs
    fraction: float = 1.0              # of the training batches per epoch (the proxy task)


@dataclass
class ConstraintsConfig:
    max_macs: float | None = None      # checked on the resolved tree before any training
    max_params: float | None = None
    max_latency_ms: float | None = None  # measured (see latency), before training


@dataclass
class LatencyConfig:
    batch: int = 1
    runs: int = 20                     # timed forwards (median), after `warmup` untimed ones
    warmup: int = 3
    threads: int = 1                   # torch threads while timing (CPU)
    device: str = "cpu"


@dataclass
class SearchConfig(TrainConfig):
    space: str = "mobile_stages"       # a shipped space (search/) or a path to a YAML file
    n_trials: int | None = 20          # the study's total of finished trials (null: the grid)
    objectives: list[str] = field(default_factory=lambda: ["acc"])  # acc [, macs|params|latency]
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    pruner: PrunerConfig = field(default_factory=PrunerConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    constraints: ConstraintsConfig = field(default_factory=ConstraintsConfig)
    latency: LatencyConfig = field(default_factory=LatencyConfig)
    storage: str | None = None         # Optuna storage URL (default sqlite:///RUN_DIR/study.db);
    #                                    journal:PATH for a journal file
    study_name: str | None = None      # default: SPACE-STRATEGY
    heartbeat: int = 30                # seconds; a RUNNING trial silent for 2x is failed, retried
    max_retry: int = 2                 # retries of a trial whose worker died
    max_fail_rate: float = 0.5         # stop when more trials than this fraction failed ...
    fail_rate_after: int = 5           # ... once this many have finished


def register_search_configs() -> None:
    """The training configs and the search schema (idempotent).

    conf/search.yaml includes conf/train.yaml's defaults list as it is (every training group);
    this schema is merged after it with the training fields MISSING, so it adds the search keys
    and types without resetting what the groups chose.
    """
    register_configs()
    node = OmegaConf.structured(SearchConfig)
    for f in fields(TrainConfig):
        node[f.name] = MISSING
    ConfigStore.instance().store(name="search_schema", node=node)
    OmegaConf.register_new_resolver("netspec_search_dir", search_dir_of, replace=True)


def study_name_of(space: str, strategy: str, name: str | None = None) -> str:
    return name or f"{Path(str(space)).stem}-{strategy}"


def search_dir_of(run_dir, space, strategy, name) -> str:
    """Hydra's run dir for a search: run_dir, else outputs/search/STUDY (fixed, so that the
    same command finds its study again)."""
    return str(run_dir) if run_dir else f"outputs/search/{study_name_of(space, strategy, name)}"




# -- storage ---------------------------------------------------------------------------------------

# the pip package of each database driver SQLAlchemy may ask for, for the message when it is missing
_DRIVERS = {"psycopg": "'psycopg[binary]'", "psycopg2": "psycopg2-binary",
            "MySQLdb": "mysqlclient", "pymysql": "PyMySQL"}


def make_storage(url: str, heartbeat: int, max_retry: int):
    """An Optuna storage: an RDB URL (sqlite:///..., postgresql://...) with heartbeats and
    retries of trials whose worker died, or ``journal:PATH`` (a journal file, no heartbeat)."""
    if url.startswith("journal:"):
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend
        path = url[len("journal:"):].removeprefix("//")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(path))
    kwargs = {}
    if url.startswith("sqlite"):
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
        file = url.split(":///", 1)[-1]
        if file and file != ":memory:":
            Path(file).parent.mkdir(parents=True, exist_ok=True)
    hb = {}
    if heartbeat and heartbeat > 0:
        import inspect
        key = "heartbeat_stale_trial_callback" if "heartbeat_stale_trial_callback" in \
            inspect.signature(optuna.storages.RDBStorage).parameters else "failed_trial_callback"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            hb = {"heartbeat_interval": heartbeat, "grace_period": 2 * heartbeat,
                  key: RetryCallback(max_retry=max_retry)}
    for attempt in range(5):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(url, **kwargs, **hb)
        except ImportError as e:
            missing = getattr(e.__cause__, "name", None) or getattr(e, "name", None)
            hint = f"pip install {_DRIVERS[missing]}" if missing in _DRIVERS else \
                f"the module {missing} is missing" if missing else \
                "install the database driver SQLAlchemy names for it"
            raise StorageError(f"storage={url}: no database driver for it ({hint})") from e
        except ValueError as e:   # raised by SQLAlchemy's URL parser: a port that is no number
            raise StorageError(f"storage={url}: not a valid storage URL: {e}") from e
        except Exception as e:   # two workers creating a new database's tables at once
            if not type(e).__module__.startswith("sqlalchemy"):
                raise
            if attempt == 4 or type(e).__name__ == "ArgumentError":
                reason = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
                raise StorageError(f"storage={url}: cannot open it: {reason} (an Optuna "
                                   "storage URL: sqlite:///PATH, postgresql://USER@HOST/DB, "
                                   "journal:PATH)") from e
            time.sleep(0.5 + attempt)


def _has_heartbeat(storage) -> bool:
    return isinstance(storage, optuna.storages.RDBStorage) and \
        storage.get_heartbeat_interval() is not None


# -- bookkeeping over the study's trials -------------------------------------------------------------

def replaced_trials(trials) -> set[int]:
    """Numbers of failed trials that a retry stands for (their worker died or was interrupted)."""
    out = set()
    for t in trials:
        n = t.system_attrs.get("failed_trial")          # set by Optuna's retry callback
        if n is not None:
            out.add(n)
        if t.user_attrs.get("retry_of") is not None:
            out.add(t.user_attrs["retry_of"])
    return out


def finished_trials(trials) -> list:
    """The trials that count towards n_trials: COMPLETE, PRUNED and FAIL, a retried one once."""
    gone = replaced_trials(trials)
    return [t for t in trials if t.state.is_finished() and t.number not in gone]


# -- the run ---------------------------------------------------------------------------------------

@dataclass
class SearchResult:
    run_dir: Path
    study: optuna.Study
    best_spec: Path | None
    best_trials: list
    files: dict


def run_dir_of(cfg, study_name: str) -> Path:
    if cfg.run_dir:
        return Path(cfg.run_dir)
    try:
        from hydra.core.hydra_config import HydraConfig
        return Path(HydraConfig.get().runtime.output_dir)
    except ValueError:
        return Path("outputs") / "search" / study_name


class Search:
    """One search command: the space, the study and the objective its trials run."""

    def __init__(self, cfg: DictConfig, log=print):
        self.cfg = cfg
        self.log = log
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
        self._check_train_keys()
        self.constraints = {**self.space.constraints,
                            **{k: v for k, v in OmegaConf.to_container(cfg.constraints).items()
                               if v is not None}}
        self.measure_latency = "latency" in self.objectives or \
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
        data_over = [f"num_classes={dm.num_classes}", f"input.channels={dm.channels}",
                     f"input.size=[{dm.size[0]}, {dm.size[1]}]"]
        self.base = self.space.base_spec(spec_file, spec_over, data_over)

    def _check_train_keys(self):
        """Every training-config key a space may set exists in the config (typos fail now)."""
        probe = copy.deepcopy(self.cfg)
        for key, values in _train_keys(self.space.train).items():
            if OmegaConf.select(probe, key, default=_ABSENT) is _ABSENT:
                raise ConfigError(f"search space '{self.space.name}': train key '{key}' is not a "
                                  f"training config key (e.g. optim.lr, aug.rotation)")
            for v in values:
                try:
                    OmegaConf.update(probe, key, v, merge=False)
                except Exception as e:   # a wrong type for the key
                    raise ConfigError(f"search space '{self.space.name}': train key '{key}' "
                                      f"cannot take {v!r}: {str(e).splitlines()[0]}") from None

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
        n_before = len(old.trials) if old is not None else 0
        seed = None if cfg.seed is None else int(cfg.seed) + n_before
        sampler = make_sampler(cfg.strategy.name, OmegaConf.to_container(cfg.strategy.options),
                               seed=seed, n_objectives=len(self.objectives),
                               categorical=self.sampler_space.categorical(),
                               constraints_func=None if TRIAL_CONSTRAINTS else constraint_values)
        study = optuna.create_study(storage=self.storage, study_name=self.study_name,
                                    directions=self.directions, load_if_exists=True,
                                    sampler=sampler, pruner=self.pruner)
        if old is None:
            study.set_user_attr("objectives", self.objectives)
            study.set_user_attr("space", self.space.name)
            study.set_user_attr("strategy", cfg.strategy.name)
        self.study = study
        if cfg.heartbeat and not _has_heartbeat(self.storage):
            self.log("note: this storage keeps no heartbeat, so a trial whose worker dies stays "
                     "RUNNING (use an SQLite or PostgreSQL URL to have it detected and retried)")
        self.target = cfg.n_trials
        if cfg.strategy.name == "grid":
            points = self.sampler_space.grid()
            have = [t.params for t in study.trials]   # a failed point is not run again
            for p in points:
                if p not in have:
                    study.enqueue_trial(p, skip_if_exists=True)
            self.target = len(points) if cfg.n_trials is None else min(cfg.n_trials, len(points))
            self.log(f"grid: {len(points)} points satisfy the space"
                     f"{' (where: ' + self.space.where + ')' if self.space.where else ''}")
        elif self.target is None:
            raise ConfigError("n_trials=null means the whole grid; it needs strategy=grid")
        return study

    # -- the loop ---------------------------------------------------------------------------
    def run(self) -> SearchResult:
        from .results import Progress, write_results
        self.out.mkdir(parents=True, exist_ok=True)
        with _Quiet():
            study = self.open_study()
        done = finished_trials(study.get_trials(deepcopy=False))
        self.log(f"netspec.search: space {self.space.name}, strategy {self.cfg.strategy.name}, "
                 f"{len(self.sampler_space.choices)} choices; study '{self.study_name}' in "
                 f"{self.url} ({len(done)} of {self.target} trials done)")
        progress = Progress(self, log=self.log)
        quiet = _Quiet()
        stopped = None
        try:
            while True:
                if _has_heartbeat(self.storage):
                    optuna.storages.fail_stale_trials(study)
                trials = study.get_trials(deepcopy=False)
                done = finished_trials(trials)
                if len(done) >= self.target:
                    break
                running = [t for t in trials if t.state == TrialState.RUNNING]
                waiting = [t for t in trials if t.state == TrialState.WAITING]
                if len(done) + len(running) >= self.target and not waiting:
                    if not _has_heartbeat(self.storage):
                        self.log(f"{len(running)} trials are still running elsewhere")
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
            files = write_results(self, final=True)
        if stopped is not None:
            raise stopped
        best = files.get("best")
        return SearchResult(self.out, study, best, files.get("best_trials", []), files)

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
        start = time.time()
        tdir = self.trial_dir(trial.number)
        tdir.mkdir(parents=True, exist_ok=True)
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        try:
            sample = self.sampler_space.sample(trial, f"{self.space.name}_{trial.number}")
            values = self._run(trial, sample, tdir)
            trial.set_user_attr("seconds", round(time.time() - start, 3))
            return values
        except optuna.TrialPruned:
            trial.set_user_attr("seconds", round(time.time() - start, 3))
            raise
        except (KeyboardInterrupt, SystemExit) as e:   # Ctrl-C (Lightning turns it into exit 1)
            trial.set_user_attr("fail_reason", "interrupted")
            trial.set_user_attr("seconds", round(time.time() - start, 3))
            if trial.params:                  # the rerun trains this sample again
                self.study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
            if isinstance(e, SystemExit):     # recorded FAIL by Optuna, then re-raised
                raise KeyboardInterrupt from e
            raise
        except Exception as e:
            reason = _reason(e)
            trial.set_user_attr("fail_reason", reason)
            trial.set_user_attr("seconds", round(time.time() - start, 3))
            (tdir / "error.txt").write_text(traceback.format_exc())
            _free_memory(e)
            raise

    def _run(self, trial, sample: Sample, tdir: Path):
        cfg = self.cfg
        spec_file = write_spec(sample.spec, tdir / "spec.yaml", header=_header(self, trial, sample))
        rep = sample.report
        trial.set_user_attr("spec", str(spec_file.relative_to(self.out)))
        trial.set_user_attr("macs", int(rep.macs))
        trial.set_user_attr("params", int(rep.params))
        if sample.train:
            trial.set_user_attr("train", sample.train)
        if sample.data_size is not None:
            trial.set_user_attr("data_size", sample.data_size)
        # static checks: milliseconds, before anything is built or trained
        violations = []
        ok, why = self.sampler_space.where(sample.params)
        if not ok:
            violations.append((1.0, why))
        for key, value, what in (("max_macs", rep.macs, "MACs"), ("max_params", rep.params,
                                                                    "params")):
            limit = self.constraints.get(key)
            if limit is not None and value > float(limit):
                violations.append((value / float(limit) - 1.0,
                                   f"{what} {_si(value)} > {key} {_si(float(limit))}"))
        latency = None
        if not violations and self.measure_latency:
            latency = measure_latency(sample.spec, cfg.latency)
            trial.set_user_attr("latency_ms", round(latency, 4))
            limit = self.constraints.get("max_latency_ms")
            if limit is not None and latency > float(limit):
                violations.append((latency / float(limit) - 1.0,
                                   f"latency {latency:.2f} ms > max_latency_ms {limit}"))
        violation = sum(v for v, _ in violations)
        trial.set_user_attr("violation", violation)
        if TRIAL_CONSTRAINTS:          # TPE and NSGA-II learn where the feasible samples are
            trial.set_constraint("static", violation)
        if violations:
            reason = "; ".join(w for _, w in violations)
            trial.set_user_attr("rejected", reason)
            raise optuna.TrialPruned(reason)

        # train the spec file, as `netspec.train spec=<file>` would
        tcfg = self._trial_cfg(spec_file, sample, tdir)
        callbacks = []
        pruning = None
        if cfg.pruner.name != "none":
            pruning = OptunaPruning(trial)
            callbacks.append(pruning)
        result = _train(tcfg, callbacks, tdir / "train.log")
        if pruning is not None:
            pruned = pruning.pruned_at is not None
            if not pruned and _spawned(tcfg) and trial.should_prune():
                pruned = True                   # decided in the spawned rank 0
            if pruned:
                trial.set_user_attr("pruned", pruning.reason())
                acc = result.best_val_acc
                if acc is not None:
                    trial.set_user_attr("acc", float(acc))
                raise optuna.TrialPruned(pruning.reason())
        acc = result.best_val_acc
        if acc is None or not math.isfinite(acc):
            raise RuntimeError(f"training reported no validation accuracy (val/acc): {acc}")
        trial.set_user_attr("acc", float(acc))
        if result.best_checkpoint:
            trial.set_user_attr("checkpoint", str(result.best_checkpoint))
        values = []
        for o in self.objectives:
            values.append({"acc": float(acc), "macs": float(rep.macs),
                           "params": float(rep.params), "latency": latency}[o])
        return values[0] if len(values) == 1 else values

    def _trial_cfg(self, spec_file: Path, sample: Sample, tdir: Path) -> DictConfig:
        tcfg = copy.deepcopy(self.cfg)
        register_spec_paths([f"spec={spec_file}"])      # SPEC_SOURCES: name -> this file
        content = plain(load_file(spec_file))
        assert SPEC_SOURCES[content["name"]] == spec_file
        with _open(tcfg):
            tcfg.spec = content
            tcfg.run_dir = str(tdir)
            tcfg.trainer.max_epochs = int(self.cfg.budget.epochs)
            if self.cfg.budget.fraction != 1.0:
                tcfg.trainer.limit_train_batches = float(self.cfg.budget.fraction)
            if sample.data_size is not None:
                tcfg.data.size = int(sample.data_size)   # compound scaling's resolution
            tcfg.test = False
            if tcfg.trainer.get("enable_model_summary") is None:
                tcfg.trainer.enable_model_summary = False     # one progress line per trial
            for key, value in sample.train.items():
                OmegaConf.update(tcfg, key, value, merge=False)
        return tcfg

    # -- after the search -------------------------------------------------------------------
    def unbaked(self, params: dict) -> dict:
        """A trial's concrete spec as sampled (compound scaling's phi kept, not folded in)."""
        sample = self.sampler_space.sample(FixedTrial(params), self.space.name, bake=False)
        return sample.spec


_ABSENT = object()


def _train_keys(raw, prefix: str = "") -> dict[str, list]:
    """Every config key a train: section may set, with the plain values it may take."""
    from ..lang.choices import is_choice
    out: dict[str, list] = {}

    def values_of(v):
        if is_choice(v):
            kind = next(iter(v))
            return list(v["choice"]) if kind == "choice" else list(v[kind])
        return [v]

    for key, v in raw.items():
        full = f"{prefix}.{key}" if prefix else str(key)
        for option in values_of(v):
            if isinstance(option, dict) and not is_choice(option):
                for k, vals in _train_keys(option, full).items():
                    out.setdefault(k, []).extend(vals)
            elif is_choice(option):
                out.setdefault(full, []).extend(values_of(option))
            else:
                out.setdefault(full, []).append(plain(option))
    return out


def constraint_values(trial) -> list[float]:
    """The constraints_func of Optuna < 5 (TPE, NSGA-II): > 0 where a sample broke a static
    constraint (Optuna >= 5: trial.set_constraint)."""
    return [float(trial.user_attrs.get("violation", 0.0))]


def _open(cfg):
    from omegaconf import open_dict
    return open_dict(cfg)


def _spawned(cfg) -> bool:
    return str(cfg.trainer.get("strategy") or "") == "ddp_spawn"


def _reason(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    first = text[0] if text else ""
    name = type(e).__name__
    if "out of memory" in first.lower() and "OutOfMemory" not in name:
        name = f"{name} (out of memory)"
    msg = f"{name}: {first}" if first else name
    return msg if len(msg) <= 500 else msg[:497] + "..."


def _free_memory(e: BaseException) -> None:
    import gc
    gc.collect()
    try:
        import torch
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:   # pragma: no cover
        pass


def _si(v: float) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(v) >= div:
            return f"{v / div:.3g}{unit}"
    return f"{v:.3g}"


def _header(search: Search, trial, sample: Sample) -> str:
    lines = [f"sampled by netspec.search: space {search.space.name}, study "
             f"'{search.study_name}', trial {trial.number}",
             f"params {sample.report.params:,}, MACs {sample.report.macs:,} at input "
             f"{'x'.join(map(str, sample.report.input_shape))}"]
    for k, v in sample.params.items():
        lines.append(f"  {k}: {v}")
    if sample.train:
        lines.append("training: " + " ".join(f"{k}={v}" for k, v in sample.train.items()))
    if sample.data_size is not None:
        lines.append(f"trained at data.size={sample.data_size} (the scaled resolution)")
    return "\n".join(lines)


def measure_latency(spec: dict, lat) -> float:
    """Median milliseconds of a forward pass of the built network (eval mode, no grad)."""
    import torch

    from ..compile import build
    model = build(spec).eval().to(lat.device)
    x = torch.randn(int(lat.batch), *model.input_shape, device=lat.device)
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, int(lat.threads)))
    try:
        with torch.inference_mode():
            for _ in range(int(lat.warmup)):
                model(x)
            times = []
            for _ in range(max(1, int(lat.runs))):
                if lat.device.startswith("cuda"):
                    torch.cuda.synchronize()
                t = time.perf_counter()
                model(x)
                if lat.device.startswith("cuda"):
                    torch.cuda.synchronize()
                times.append((time.perf_counter() - t) * 1000)
    finally:
        torch.set_num_threads(threads)
    times.sort()
    return times[len(times) // 2]


class _Quiet:
    """Optuna's and Lightning's per-trial chatter off while trials run (the progress line and
    each trial's train.log say it)."""

    NAMES = ("pytorch_lightning", "lightning.pytorch", "lightning.fabric", "lightning")

    def __enter__(self):
        self.optuna_level = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        self.levels = {n: logging.getLogger(n).level for n in self.NAMES}
        for n in self.NAMES:
            logging.getLogger(n).setLevel(logging.WARNING)
        return self

    def __exit__(self, *exc):
        optuna.logging.set_verbosity(self.optuna_level)
        for n, level in self.levels.items():
            logging.getLogger(n).setLevel(level)
        return False


def _train(tcfg, callbacks, log_file: Path):
    """netspec.train's train(), its printing and warnings sent to the trial's train.log."""
    from ..train.app import train
    with open(log_file, "a") as f, contextlib.redirect_stdout(f), \
            warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            return train(tcfg, callbacks)
        finally:
            for w in caught:
                f.write(f"warning: {w.category.__name__}: {w.message}\n")


def run_search(cfg: DictConfig, log=print) -> SearchResult:
    """Run (or resume) the configured search; returns the run dir, the study and best.yaml."""
    return Search(cfg, log=log).run()
