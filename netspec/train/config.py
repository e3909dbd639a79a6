"""Typed training configs (Hydra structured configs) and the `spec` config group.

Every config group of ``conf/`` is checked against these dataclasses, so a misspelt key or a wrong
type is rejected by Hydra with its own clear message. The ``spec`` group holds every zoo spec and,
registered on the fly, a user's own YAML given by path (``spec=path/to/net.yaml``).
"""
from __future__ import annotations

import base64
from dataclasses import dataclass, field, make_dataclass
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore

from ..errors import ConfigError, SpecError
from ..lang.loader import data_dir, spec_path, zoo
from ..lang.source import load_file, plain
from .augment import AugConfig
from .data import DataConfig
from .trainer_keys import flags as trainer_flags

# -- Lightning's Trainer: every flag of its signature is an overridable key ---------------------
# (typed Any here: OmegaConf has no unions; trainer_keys checks each against the annotation)

def _trainer_fields():
    out = []
    for name, p in trainer_flags().items():
        default = p.default if isinstance(p.default, (bool, int, float, str, type(None))) else None
        out.append((name, Any, field(default=default)))
    return out


TrainerConfig = make_dataclass("TrainerConfig", _trainer_fields())
TrainerConfig.__module__ = __name__    # picklable by name: ddp_spawn pickles what holds the config


@dataclass
class OptimConfig:
    name: str = "adamw"               # sgd, adam, adamw, rmsprop
    lr: float = 1e-3
    weight_decay: float = 0.05
    momentum: float = 0.9             # sgd, rmsprop
    nesterov: bool = False            # sgd
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    alpha: float = 0.99               # rmsprop smoothing
    no_decay_norm_bias: bool = True   # no weight decay on norm weights and biases
    no_decay_depthwise: bool = False  # nor on depthwise conv weights (the MobileNet tip)


@dataclass
class SchedConfig:
    name: str = "cosine"              # none, step, multistep, cosine, onecycle, plateau
    warmup_epochs: float = 0.0        # cosine: linear warm-up
    min_lr: float = 0.0               # cosine: the floor
    step_size: int = 30               # step
    milestones: list[int] = field(default_factory=lambda: [30, 60, 90])  # multistep
    gamma: float = 0.1                # step, multistep
    pct_start: float = 0.3            # onecycle
    div_factor: float = 25.0          # onecycle
    final_div_factor: float = 1e4     # onecycle
    factor: float = 0.1               # plateau
    patience: int = 5                 # plateau
    monitor: str = "val/loss"         # plateau


@dataclass
class LossConfig:
    label_smoothing: float = 0.0
    class_weights: bool = False       # inverse class frequency of the train split
    mixup: float = 0.0                # MixUp alpha (0: off)
    cutmix: float = 0.0               # CutMix alpha (0: off); with both, one is drawn per batch


@dataclass
class CallbacksConfig:
    checkpoint: bool = True
    monitor: str = "val/acc"
    mode: str = "max"
    save_top_k: int = 1               # the K best checkpoints (-1: all, 0: none)
    save_last: bool = True
    early_stopping_patience: int | None = None
    lr_monitor: bool = True
    progress_bar: str = "rich"        # rich, tqdm, none
    curves: bool = True               # training curves PNG at the end
    recovery_every: int | None = None  # checkpoints/recovery.ckpt every N training steps (null: off)


def check_callbacks(c) -> None:
    """What Lightning's ModelCheckpoint would refuse with a traceback, as one message."""
    from .resume import recovery_every
    recovery_every(c.recovery_every)              # N >= 1, or 0/null
    if c.save_top_k < -1:
        raise ConfigError(f"callbacks.save_top_k={c.save_top_k}: keep the K best checkpoints "
                          f"(K >= 1), -1 for all of them or 0 for none")


@dataclass
class LoggerConfig:
    name: str = "csv"                 # csv, tensorboard, mlflow, wandb, none
    project: str = "netspec"          # mlflow: the experiment; wandb: the project


@dataclass
class TransferConfig:
    checkpoint: str | None = None     # start from this checkpoint's weights
    pretrained: str | None = None     # "reference" (the spec's reference model) or e.g. torchvision.resnet50
    weights: str | None = "DEFAULT"   # torchvision weights enum name (timm: pretrained=True); null: none
    train_last: int | None = None     # freeze all but the head and the last k stage rows
    unfreeze_epoch: int | None = None  # then unfreeze everything at this epoch
    unfreeze_lr_factor: float = 0.1   # at this fraction of the learning rate


@dataclass
class TrainConfig:
    spec: Any = None
    data: DataConfig = field(default_factory=DataConfig)
    aug: AugConfig = field(default_factory=AugConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    sched: SchedConfig = field(default_factory=SchedConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    trainer: Any = field(default_factory=TrainerConfig)
    callbacks: CallbacksConfig = field(default_factory=CallbacksConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    transfer: TransferConfig = field(default_factory=TransferConfig)
    seed: int | None = 0
    ckpt_path: str | None = None      # resume training from this checkpoint
    channels_last: bool = False
    compile: bool = False
    ema: float | None = None          # decay of a moving average of the weights (0.9998; null: off)
    test: bool = False                # evaluate the test split after training
    run_dir: str | None = None        # default: Hydra's output dir
    verbose: bool = False             # every warning and tip Lightning prints (default: the useful)


# -- the spec group -------------------------------------------------------------------------------
_FILE_PREFIX = "file_"
SPEC_SOURCES: dict[str, Path] = {}    # option name -> the YAML file it came from


def encode_spec_path(path: str) -> str:
    """A Hydra option name for a spec file (Hydra option names can't hold '/')."""
    raw = base64.urlsafe_b64encode(str(Path(path).resolve()).encode()).decode().rstrip("=")
    return _FILE_PREFIX + raw


def decode_spec_name(name: str) -> Path | None:
    if not name.startswith(_FILE_PREFIX):
        return None
    raw = name[len(_FILE_PREFIX):]
    try:
        return Path(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode())
    except (ValueError, UnicodeDecodeError):
        return None


def _store_spec(name: str, path: Path) -> None:
    content = plain(load_file(path))
    content.setdefault("name", path.stem)
    # nested under `spec` in the global package: a spec's own `defaults:` key must not be read
    # as Hydra's defaults list, which it would be at the top of a group's node
    ConfigStore.instance().store(group="spec", name=name, node={"spec": content},
                                 package="_global_")
    # the composed config knows the spec by its `name`; of two files with one name, the later wins
    SPEC_SOURCES[name] = SPEC_SOURCES[str(content["name"])] = path


def _store_zoo_spec(name: str) -> None:
    if name not in SPEC_SOURCES:
        _store_spec(name, data_dir("specs") / f"{name}.yaml")


def _preset_specs() -> set[str]:
    """The zoo specs the config files select: train.yaml's default and every experiment's."""
    names = set()
    conf = Path(config_dir())
    for path in [conf / "train.yaml", *sorted((conf / "experiment").glob("*.yaml"))]:
        for entry in (plain(load_file(path)).get("defaults") or []):
            if isinstance(entry, dict):
                for key, value in entry.items():
                    if key.split()[-1].lstrip("/") == "spec" and isinstance(value, str):
                        names.add(value)
    return names


def register_configs() -> None:
    """Register the schema and the specs the config files name in Hydra's ConfigStore (idempotent).

    Only those: Hydra deep-copies the whole store about 110 times while it composes a config, so
    with all ~70 zoo specs in it every command (even --help) spent 15-20 s in copying.
    ``register_spec_paths`` registers the specs a command line names.
    """
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    for name in sorted(_preset_specs()):
        _store_zoo_spec(name)


def _spec_option(item: str) -> str:
    """The registered option name of one ``spec=`` value: a zoo name, an encoded or a real path."""
    decoded = decode_spec_name(item)
    if decoded is not None:
        _store_spec(item, decoded)
        return item
    if item.endswith((".yaml", ".yml")) or "/" in item:
        path = Path(item)
        if not path.is_file():
            raise SpecError(f"spec file '{item}' does not exist", file=item)
        name = encode_spec_path(item)
        _store_spec(name, path)
        return name
    if item not in ("null", "None") and item not in SPEC_SOURCES:
        spec_path(item)                       # a SpecError naming the zoo if it is none of its specs
        _store_zoo_spec(item)
    return item


def register_spec_paths(args: list[str]) -> list[str]:
    """Rewrite ``spec=path/x.yaml`` (also in sweeps ``spec=a.yaml,b``) to registered options.

    Encoded names are decoded again, so a process Lightning relaunches for DDP with the
    rewritten arguments registers the same files.
    """
    out = []
    for arg in args:
        key, eq, value = arg.partition("=")
        if eq and key.lstrip("+") == "spec":
            if "(" in value:           # a sweep function (choice, glob, ...): offer the whole zoo
                for name in zoo():
                    _store_zoo_spec(name)
            else:
                arg = f"{key}={','.join(_spec_option(item) for item in value.split(','))}"
        out.append(arg)
    return out


def config_dir() -> str:
    return str(data_dir("conf"))
