"""The training config of a trial: the search's config with the trial's spec file, its budget and
the space's sampled training keys; and the check, before any trial, that every key a space's
``train:`` may set is a training-config key that takes its values."""
from __future__ import annotations

import copy
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from ..errors import ConfigError
from ..lang.choices import is_choice
from ..lang.source import load_file, plain
from ..train.config import SPEC_SOURCES, register_spec_paths

_ABSENT = object()


def train_keys(raw, prefix: str = "") -> dict[str, list]:
    """Every config key a train: section may set, with the plain values it may take."""
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
                for k, vals in train_keys(option, full).items():
                    out.setdefault(k, []).extend(vals)
            elif is_choice(option):
                out.setdefault(full, []).extend(values_of(option))
            else:
                out.setdefault(full, []).append(plain(option))
    return out


def check_train_keys(space, cfg: DictConfig) -> None:
    """Every training-config key the space may set exists in the config (typos fail now)."""
    probe = copy.deepcopy(cfg)
    for key, values in train_keys(space.train).items():
        if OmegaConf.select(probe, key, default=_ABSENT) is _ABSENT:
            raise ConfigError(f"search space '{space.name}': train key '{key}' is not a "
                              f"training config key (e.g. optim.lr, aug.rotation)")
        for v in values:
            try:
                OmegaConf.update(probe, key, v, merge=False)
            except Exception as e:   # a wrong type for the key
                raise ConfigError(f"search space '{space.name}': train key '{key}' "
                                  f"cannot take {v!r}: {str(e).splitlines()[0]}") from None


def trial_cfg(cfg: DictConfig, spec_file: Path, sample, tdir: Path) -> DictConfig:
    """The config that trains ``spec_file`` as `netspec.train spec=<file>` would, for the budget."""
    tcfg = copy.deepcopy(cfg)
    register_spec_paths([f"spec={spec_file}"])      # SPEC_SOURCES: name -> this file
    content = plain(load_file(spec_file))
    assert SPEC_SOURCES[content["name"]] == spec_file
    with open_dict(tcfg):
        tcfg.spec = content
        tcfg.run_dir = str(tdir)
        tcfg.trainer.max_epochs = int(cfg.budget.epochs)
        if cfg.budget.fraction != 1.0:
            tcfg.trainer.limit_train_batches = float(cfg.budget.fraction)
        if sample.data_size is not None:
            tcfg.data.size = int(sample.data_size)   # compound scaling's resolution
        tcfg.test = False
        if tcfg.trainer.get("enable_model_summary") is None:
            tcfg.trainer.enable_model_summary = False     # one progress line per trial
        for key, value in sample.train.items():
            OmegaConf.update(tcfg, key, value, merge=False)
    return tcfg


def spawned(cfg) -> bool:
    """Whether the trial trains in spawned DDP ranks (the pruner's decision is then read back)."""
    return str(cfg.trainer.get("strategy") or "") == "ddp_spawn"
