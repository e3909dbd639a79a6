"""Search strategies: Optuna samplers (and pruners) by name.

==========  ====================================================================================
random      optuna's RandomSampler
tpe         TPE (multivariate, grouped: conditional spaces are sampled jointly per branch)
cmaes       CMA-ES, for numeric spaces only ({int:} and {float:} ranges): a {choice: [...]} is
            refused, since CMA-ES would hand it to an independent random sampler
nsga2       NSGA-II, multi-objective: accuracy against MACs, params or measured latency
grid        every point of a finite, unconditional space that satisfies the space's `where:`
            (compound scaling's step 1), each run once (enqueued, so workers share them)
rl          the REINFORCE controller of Zoph & Le (netspec.search.rl.ReinforceSampler)
==========  ====================================================================================
"""
from __future__ import annotations

import inspect
from collections.abc import Callable

import optuna

from ..errors import StrategyError, did_you_mean

STRATEGIES = ("random", "tpe", "cmaes", "nsga2", "grid", "rl")
PRUNERS = ("none", "median", "asha", "hyperband")
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


def make_sampler(name: str, options: dict, *, seed: int | None, n_objectives: int,
                 categorical: list[str], constraints_func: Callable | None = None):
    """The Optuna sampler of a strategy; ``categorical`` names the space's {choice:} params."""
    options = dict(options or {})
    if name not in STRATEGIES:
        raise StrategyError(f"unknown strategy '{name}'{did_you_mean(name, STRATEGIES)}; use "
                            f"{', '.join(STRATEGIES)}")
    if name in ("random", "grid"):        # grid: every point is enqueued; this draws nothing
        cls = optuna.samplers.RandomSampler
        return cls(seed=seed, **_kwargs(cls, options, f"strategy={name}"))
    if name == "tpe":
        cls = optuna.samplers.TPESampler
        kw = {"multivariate": True, "group": True, **options}
        if constraints_func is not None:
            kw["constraints_func"] = constraints_func
        return _quiet(lambda: cls(seed=seed, **_kwargs(cls, kw, "strategy=tpe")))
    if name == "cmaes":
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
            raise StrategyError("strategy=cmaes needs the cmaes package: pip install cmaes") \
                from None
        cls = optuna.samplers.CmaEsSampler
        kw = {"warn_independent_sampling": False, **options}
        return cls(seed=seed, **_kwargs(cls, kw, "strategy=cmaes"))
    if name == "nsga2":
        cls = optuna.samplers.NSGAIISampler
        kw = dict(options)
        if constraints_func is not None:
            kw["constraints_func"] = constraints_func
        return cls(seed=seed, **_kwargs(cls, kw, "strategy=nsga2"))
    # rl: the REINFORCE controller lives in its own module, imported only when asked for
    try:
        from .rl import MULTI_OBJECTIVE, ReinforceSampler
    except ImportError as e:
        raise StrategyError(f"strategy=rl: the REINFORCE controller "
                            f"(netspec.search.rl.ReinforceSampler) cannot be imported: {e}") \
            from None
    if n_objectives > 1:      # refused before the study opens, not from inside the first trial
        raise StrategyError(MULTI_OBJECTIVE.format(n=n_objectives))
    try:
        return ReinforceSampler(seed=seed, **_kwargs(ReinforceSampler, options, "strategy=rl"))
    except ValueError as e:   # a bad option value (the controller says which)
        raise StrategyError(str(e)) from None


def _quiet(make):
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return make()


def make_pruner(name: str, options: dict, *, n_objectives: int, max_epochs: int):
    """Optuna's median, successive-halving (ASHA) or Hyperband pruner (single objective only);
    a step is an epoch trained (OptunaPruning reports after epoch 1 as step 1)."""
    options = dict(options or {})
    if name not in PRUNERS:
        raise StrategyError(f"unknown pruner '{name}'{did_you_mean(name, PRUNERS)}; use "
                            f"{', '.join(PRUNERS)}")
    if name == "none":
        return optuna.pruners.NopPruner()
    if n_objectives > 1:
        raise StrategyError(f"pruner={name} needs a single objective: Optuna prunes on one "
                            f"intermediate value, and a multi-objective study has none to compare; "
                            f"drop the pruner (pruner=none) or search accuracy alone "
                            f"(objectives=[acc])")
    if name == "median":
        cls = optuna.pruners.MedianPruner
        kw = {"n_startup_trials": 3, "n_warmup_steps": 0, **options}
        return cls(**_kwargs(cls, kw, "pruner=median"))
    if name == "asha":
        cls = optuna.pruners.SuccessiveHalvingPruner
        kw = {"min_resource": None, "reduction_factor": 3, **options}
        if kw["min_resource"] is None:    # one halving, after a third of the budget
            kw["min_resource"] = max(1, max_epochs // max(1, int(kw["reduction_factor"])))
        return cls(**_kwargs(cls, kw, "pruner=asha"))
    cls = optuna.pruners.HyperbandPruner
    kw = {"min_resource": 1, "max_resource": max(1, max_epochs), "reduction_factor": 3,
          **options}
    return cls(**_kwargs(cls, kw, "pruner=hyperband"))
