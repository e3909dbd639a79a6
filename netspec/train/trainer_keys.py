"""``trainer.*``: each key checked against Lightning's ``Trainer`` before anything is built.

The config keeps the Trainer's flags untyped (``Any``: OmegaConf has no unions such as
``devices: list[int] | str | int``), so this module does what Lightning would do later, deep
inside ``fit`` and with a traceback: it refuses a key the Trainer lacks, a value whose type its
annotation excludes, and the values Lightning itself refuses (an unknown precision, accelerator,
strategy or profiler, a negative epoch count, a batch fraction over 1, ...). One ConfigError
naming the key; the command lines turn it into one line and exit status 2.
"""
from __future__ import annotations

import datetime
import functools
import inspect
import re
import typing
from collections.abc import Callable

import pytorch_lightning as pl
import yaml
from omegaconf import DictConfig, OmegaConf

from ..errors import ConfigError, did_you_mean, one_of

# Trainer arguments netspec.train sets itself, and the keys that set them instead
SET_BY_NETSPEC = {"logger": "logger=csv, tensorboard or none",
                  "callbacks": "the callbacks.* keys",
                  "plugins": "the other trainer.* keys",
                  "default_root_dir": "run_dir=PATH",
                  "model_registry": "nothing: netspec.train uploads no models"}


@functools.cache
def flags() -> dict[str, inspect.Parameter]:
    """The Trainer's keyword arguments a config may set, by name."""
    params = inspect.signature(pl.Trainer.__init__).parameters
    return {n: p for n, p in params.items() if n != "self" and n not in SET_BY_NETSPEC}


@functools.cache
def _hints() -> dict[str, object]:
    return typing.get_type_hints(pl.Trainer.__init__)


# -- types: does a YAML value fit the annotation? ------------------------------------------------

def fits(value, hint) -> bool:
    """Whether ``value`` (a plain YAML value) is one of the values ``hint`` admits."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is typing.Any:
        return True
    if hint is type(None):
        return value is None
    if origin is typing.Union:
        return any(fits(value, a) for a in args)
    if origin is typing.Literal:
        return any(type(value) is type(a) and value == a for a in args)
    if origin is list:
        return isinstance(value, list) and all(fits(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict) and all(fits(k, args[0]) and fits(v, args[1])
                                               for k, v in value.items())
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(hint, type) and isinstance(value, hint)


def describe(hint) -> str:
    """What ``hint`` admits, in words; Python objects no YAML value can be are left out."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union:
        literals = [a for a in args if typing.get_origin(a) is typing.Literal]
        words = [describe(a) for a in args if a is not type(None) and a not in literals]
        if literals:               # precision: one list of its names, not one per Literal
            words.insert(0, describe(typing.Literal[sum((typing.get_args(a) for a in literals),
                                                        ())]))
        return " or ".join(dict.fromkeys(w for w in words if w))
    if origin is typing.Literal:
        return "one of " + ", ".join(dict.fromkeys(str(a) for a in args))  # 16 and '16': once
    if origin is list:
        return f"a list of {describe(args[0]).removeprefix('an ').removeprefix('a ')}s"
    if origin is dict:
        return "a mapping such as {hours: 1}"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string",
            typing.Any: "anything"}.get(hint, "")


def _literals(hint) -> list[str]:
    """The strings a Literal inside ``hint`` lists (precision's names)."""
    if typing.get_origin(hint) is typing.Literal:
        return [a for a in typing.get_args(hint) if isinstance(a, str)]
    return [s for a in typing.get_args(hint) for s in _literals(a)]


# -- values: what Lightning refuses once it runs --------------------------------------------------

def _at_least(low: int) -> Callable:
    return lambda v: None if v >= low else f"must be >= {low}"


def _fraction_or_count(v) -> str | None:
    if isinstance(v, float) and not 0.0 <= v <= 1.0:
        return "a fraction must lie in [0.0, 1.0] (an integer counts batches)"
    return None if v >= 0 else "must be >= 0"


def _duration(v) -> str | None:
    if isinstance(v, str) and not re.fullmatch(r"\d+:\d+:\d+:\d+", v.strip()):
        return "a duration is written DD:HH:MM:SS, e.g. 00:12:00:00"
    if isinstance(v, dict):
        try:
            datetime.timedelta(**v)
        except TypeError:
            return (f"a duration's keys are {one_of(['days', 'hours', 'minutes', 'seconds'])}; "
                    f"got {', '.join(map(str, v))}")
    return None


def _val_check_interval(v) -> str | None:
    if isinstance(v, float) and not 0.0 < v <= 1.0:
        return "a fraction of the epoch must lie in (0.0, 1.0]"
    if isinstance(v, int) and v < 1:
        return "a number of batches must be >= 1"
    return _duration(v)


def _devices(v) -> str | None:
    if isinstance(v, int):
        return None if v == -1 or v >= 1 else "a count must be >= 1 (-1: all devices)"
    if isinstance(v, str):
        ok = v.strip() in ("auto", "-1") or re.fullmatch(r"\s*\d+\s*(,\s*\d*\s*)*", v)
        return None if ok else "a string is auto, a count or device ids such as '0,1'"
    if not v or min(v) < 0 or len(set(v)) != len(v):
        return "a list holds distinct device ids >= 0, e.g. [0, 1]"
    return None


def _first(names: list[str], n: int = 8) -> str:
    """The names in Lightning's order (its common ones first), cut after ``n``."""
    return ", ".join(names[:n]) + (f", ... ({len(names)} in all)" if len(names) > n else "")


def _name_in(kind: str, names: Callable[[], list[str]], lower: bool = False) -> Callable:
    def check(v):
        known = names()
        if isinstance(v, str) and (v.lower() if lower else v) not in known:
            return f"no such {kind}{did_you_mean(v, known)}; use one of: {_first(known)}"
        return None
    return check


def _accelerators() -> list[str]:
    from pytorch_lightning.accelerators import AcceleratorRegistry
    return ["auto", "gpu", *sorted(AcceleratorRegistry.available_accelerators())]


def _strategies() -> list[str]:
    from pytorch_lightning.strategies import StrategyRegistry
    return ["auto", *StrategyRegistry.available_strategies()]


VALUE_RULES: dict[str, Callable] = {
    "accelerator": _name_in("accelerator", _accelerators),
    "strategy": _name_in("strategy", _strategies, lower=True),
    "devices": _devices,
    "num_nodes": _at_least(1),
    "fast_dev_run": _at_least(0),
    "max_epochs": _at_least(-1),
    "min_epochs": _at_least(0),
    "max_steps": _at_least(-1),
    "min_steps": _at_least(0),
    "max_time": _duration,
    **{f"limit_{s}_batches": _fraction_or_count for s in ("train", "val", "test", "predict")},
    "overfit_batches": _fraction_or_count,
    "val_check_interval": _val_check_interval,
    "check_val_every_n_epoch": _at_least(1),
    "num_sanity_val_steps": _at_least(-1),
    "log_every_n_steps": _at_least(0),
    "accumulate_grad_batches": _at_least(1),
    "gradient_clip_val": _at_least(0),
    "gradient_clip_algorithm": _name_in("algorithm", lambda: ["norm", "value"], lower=True),
    "profiler": _name_in("profiler", lambda: ["simple", "advanced", "pytorch", "xla"],
                         lower=True),
    "reload_dataloaders_every_n_epochs": _at_least(0),
}


# -- the check --------------------------------------------------------------------------------------

def _shown(value) -> str:
    """The value as the command line writes it."""
    if isinstance(value, (list, dict, bool)):
        return yaml.safe_dump(value, default_flow_style=True, width=10**6).strip().removesuffix(
            "...").strip()
    return str(value)


def problem(key: str, value) -> str | None:
    """What is wrong with ``trainer.<key>=<value>``, or None."""
    if key in SET_BY_NETSPEC:
        return f"trainer.{key}: netspec.train sets this itself; use {SET_BY_NETSPEC[key]}"
    if key not in flags():
        close = did_you_mean(key, flags())
        return f"trainer.{key}: no such Trainer flag" + (close or " (the flags: python -m "
                                                         "netspec.train --help, under trainer:)")
    if value is None:                  # unset: Lightning's default
        return None
    hint = _hints().get(key, typing.Any)
    if not fits(value, hint):
        close = did_you_mean(value, _literals(hint)) if isinstance(value, str) else ""
        return f"trainer.{key}={_shown(value)}{close}: must be {describe(hint)}"
    rule = VALUE_RULES.get(key)
    wrong = rule(value) if rule else None
    return f"trainer.{key}={_shown(value)}: {wrong}" if wrong else None


def check_trainer(trainer_cfg) -> None:
    """Raise a ConfigError for the first ``trainer.*`` key Lightning would refuse."""
    values = (OmegaConf.to_container(trainer_cfg, resolve=True)
              if isinstance(trainer_cfg, DictConfig) else dict(trainer_cfg or {}))
    for key, value in values.items():
        wrong = problem(str(key), value)
        if wrong:
            raise ConfigError(wrong)
