"""Search strategies: Optuna samplers (and pruners) by name.

==========  ====================================================================================
random      optuna's RandomSampler
tpe         TPE (multivariate, grouped: conditional spaces are sampled jointly per branch)
cmaes       CMA-ES, for numeric spaces only ({int:} and {float:} ranges): a {choice: [...]} is
            refused, since CMA-ES would hand it to an independent random sampler
nsga2       NSGA-II, multi-objective: accuracy against MACs, params or measured latency
grid        every point of a finite, unconditional space that satisfies the space's `where:`
            (compound scaling's step 1), each run once; a trial takes the next point no trial
            holds (grid.py), so workers share them; options.shuffle: true for a random order
rl          the REINFORCE controller of Zoph & Le (netspec.search.rl.ReinforceSampler)
enas, spos  one-shot: a weight-sharing supernet of the space (netspec.search.oneshot), not trials
==========  ====================================================================================
"""
from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import optuna

from ..errors import StrategyError, did_you_mean
from .grid import GridPointSampler

OBJECTIVES = {"acc": "maximize", "macs": "minimize", "params": "minimize",
              "latency": "minimize"}


def directions(objectives: list[str]) -> list[str]:
    if not objectives:
        raise StrategyError("objectives must name at least one of: "
                            f"{', '.join(OBJECTIVES)}")
    for o in objectives:
        if o not in OBJECTIVES:
            raise StrategyError(f"unknown objective '{o}'{did_you_mean(o, OBJECTIVES)}; use "
                                f"{', '.join(OBJECTIVES)}")
    if objectives[0] != "acc":
        raise StrategyError(f"the first objective is the validation accuracy: objectives=[acc, "
                            f"{', '.join(o for o in objectives if o != 'acc') or 'macs'}]")
    if len(set(objectives)) != len(objectives):
        raise StrategyError(f"objectives name one twice: {objectives}")
    return [OBJECTIVES[o] for o in objectives]


def _kwargs(cls, options: dict, what: str) -> dict:
    params = inspect.signature(cls.__init__).parameters
    if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
        for k in options:
            if k not in params:
                known = [p for p in params if p != "self"]
                raise StrategyError(f"{what} has no option '{k}'{did_you_mean(k, known)}; "
                                    f"its options: {', '.join(known)}")
    return dict(options)


# -- samplers --------------------------------------------------------------------------------------

def _single_objective_numeric(n_objectives: int, categorical: list[str]) -> None:
    """CMA-ES: one objective, numeric choices only, and the cmaes package."""
    if n_objectives > 1:
        raise StrategyError("strategy=cmaes optimizes one objective; for accuracy against "
                            "MACs, params or latency use strategy=nsga2")
    if categorical:
        raise StrategyError(
            f"strategy=cmaes works on numeric spaces only ({{int: [lo, hi]}}, {{float: "
            f"[lo, hi]}}); this space has categorical choices ({', '.join(categorical[:3])}"
            f"{', ...' if len(categorical) > 3 else ''}): use tpe, random or rl")
    try:
        import cmaes  # noqa: F401
    except ImportError:
        raise StrategyError("strategy=cmaes needs the cmaes package: pip install cmaes") from None


def _single_objective(n_objectives: int, categorical: list[str]) -> None:
    """The REINFORCE controller: refused before the study opens, not from inside a trial."""
    from .rl import MULTI_OBJECTIVE  # imported already (_reinforce)
    if n_objectives > 1:
        raise StrategyError(MULTI_OBJECTIVE.format(n=n_objectives))


def _reinforce():
    # the controller lives in its own package, imported only when asked for
    try:
        from .rl import ReinforceSampler
    except ImportError as e:
        raise StrategyError(f"strategy=rl: the REINFORCE controller "
                            f"(netspec.search.rl.ReinforceSampler) cannot be imported: {e}") \
            from None
    return ReinforceSampler


@dataclass(frozen=True)
class Strategy:
    """A strategy's sampler: its class (a function that returns it, so rl is imported lazily), our
    defaults for its options, whether it takes the constraints_func of Optuna < 5, and what it
    refuses (a check of the number of objectives and the space's categorical choices)."""

    cls: Callable[[], type]
    defaults: dict = field(default_factory=dict)
    constraints: bool = False
    check: Callable[[int, list[str]], None] | None = None


SAMPLERS = {
    "random": Strategy(lambda: optuna.samplers.RandomSampler),
    "tpe": Strategy(lambda: optuna.samplers.TPESampler, {"multivariate": True, "group": True},
                    constraints=True),
    "cmaes": Strategy(lambda: optuna.samplers.CmaEsSampler, {"warn_independent_sampling": False},
                      check=_single_objective_numeric),
    "nsga2": Strategy(lambda: optuna.samplers.NSGAIISampler, constraints=True),
    # points: the space's grid (runner.Search), given by the runner
    "grid": Strategy(lambda: GridPointSampler),
    "rl": Strategy(_reinforce, check=_single_objective),
}
ONESHOT = ("enas", "spos")         # netspec.search.oneshot: no sampler of their own
STRATEGIES = (*SAMPLERS, *ONESHOT)


def make_sampler(name: str, options: dict, *, seed: int | None, n_objectives: int,
                 categorical: list[str], constraints_func: Callable | None = None):
    """The Optuna sampler of a strategy; ``categorical`` names the space's {choice:} params."""
    if name not in SAMPLERS:
        raise StrategyError(f"unknown strategy '{name}'{did_you_mean(name, STRATEGIES)}; use "
                            f"{', '.join(STRATEGIES)}")
    entry = SAMPLERS[name]
    cls = entry.cls()
    if entry.check is not None:
        entry.check(n_objectives, categorical)
    kw = {**entry.defaults, **(options or {})}
    if entry.constraints and constraints_func is not None:
        kw["constraints_func"] = constraints_func
    kw = _kwargs(cls, kw, f"strategy={name}")
    with warnings.catch_warnings():     # TPE's multivariate and group are experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            return cls(seed=seed, **kw)
        except ValueError as e:     # a bad option value (the sampler says which)
            if isinstance(e, StrategyError):
                raise
            raise StrategyError(f"strategy={name}: {e}") from None


# -- pruners ---------------------------------------------------------------------------------------

def _asha_defaults(max_epochs: int, options: dict) -> dict:
    """One halving, after a third of the budget (min_resource: null asks for it too)."""
    kw = {"min_resource": None, "reduction_factor": 3, **options}
    if kw["min_resource"] is None:
        kw["min_resource"] = max(1, max_epochs // max(1, int(kw["reduction_factor"])))
    return kw


# a pruner's class and its options: ours under the user's, from the budget's epochs; a step is
# an epoch trained (OptunaPruning reports after epoch 1 as step 1)
PRUNER_TABLE = {
    "none": (optuna.pruners.NopPruner, lambda epochs, o: {}),      # prunes nothing: no options
    "median": (optuna.pruners.MedianPruner,
               lambda epochs, o: {"n_startup_trials": 3, "n_warmup_steps": 0, **o}),
    "asha": (optuna.pruners.SuccessiveHalvingPruner, _asha_defaults),
    "hyperband": (optuna.pruners.HyperbandPruner,
                  lambda epochs, o: {"min_resource": 1, "max_resource": max(1, epochs),
                                     "reduction_factor": 3, **o}),
}
PRUNERS = tuple(PRUNER_TABLE)


def make_pruner(name: str, options: dict, *, n_objectives: int, max_epochs: int):
    """Optuna's median, successive-halving (ASHA) or Hyperband pruner (single objective only)."""
    if name not in PRUNER_TABLE:
        raise StrategyError(f"unknown pruner '{name}'{did_you_mean(name, PRUNERS)}; use "
                            f"{', '.join(PRUNERS)}")
    if name != "none" and n_objectives > 1:
        raise StrategyError(f"pruner={name} needs a single objective: Optuna prunes on one "
                            f"intermediate value, and a multi-objective study has none to compare; "
                            f"drop the pruner (pruner=none) or search accuracy alone "
                            f"(objectives=[acc])")
    cls, options_of = PRUNER_TABLE[name]
    return cls(**_kwargs(cls, options_of(max_epochs, dict(options or {})), f"pruner={name}"))
