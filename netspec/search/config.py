"""The search's configuration: the typed schema of conf/search.yaml (the training config plus the
search keys) and where a search keeps its run directory."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

from ..train.config import TrainConfig, register_configs


@dataclass
class StrategyConfig:
    name: str = "tpe"                  # random, tpe, cmaes, nsga2, grid, rl; enas, spos (one-shot)
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
class OneShotConfig:
    """strategy=enas and strategy=spos (netspec/search/oneshot)."""
    epochs: int = 4                    # supernet training epochs
    retrain_top: int = 0               # retrain the K best candidates standalone for `budget`
    candidates: int = 100              # paths scored on the trained supernet
    search: str = "evolution"          # spos: evolution (NSGA-II's genetic search), tpe, random
    population: int = 20               # spos: the evolution's population
    recalibrate: int = 2               # training batches recomputing each candidate's BN stats
    eval_batches: int | None = 2       # validation batches scoring each candidate (null: all)
    rescore: int = 10                  # the best K estimates scored again on all validation
    #                                    batches: they rank the final pick (0: none)
    share: str = "slice"               # slice: largest tensors, sliced per path (Once-for-All);
    #                                    module: by place and shape; block: a row's combination
    patience: int = 100                # the supernet's coverage: paths in a row that add nothing
    warmup: float = 0.0                # the supernet's first steps (this fraction) draw each
    #                                    decision with a probability rising to 1, else keep one
    #                                    anchor path's (training.py's Widening); 0: none
    warmup_from: float = 0.05          # ... that probability at the first step


@dataclass
class SearchConfig(TrainConfig):
    space: str = "mobile_stages"       # a shipped space (search/) or a path to a YAML file
    n_trials: int | None = 20          # the study's total of finished trials (null: the grid)
    objectives: list[str] = field(default_factory=lambda: ["acc"])  # acc [, macs|params|latency]
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    oneshot: OneShotConfig = field(default_factory=OneShotConfig)
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
    timeout: float | None = None       # seconds of wall clock; no trial starts after it
    keep_checkpoints: int = 3          # trials whose checkpoints are kept: the best K
    jobs: str = "1"                    # trials at once on this host (processes); auto: per GPU


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
