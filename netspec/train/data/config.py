"""The ``data`` config group (:class:`DataConfig`) and its checks, before any file is read."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields

from ...errors import DataError, did_you_mean
from ..augment import AugConfig, check_aug
from .registry import NAMES, SOURCES


@dataclass
class DataConfig:
    name: str = "digits"          # a registered data source (NAMES)
    root: str = "data"            # where the torchvision data sets / the image folder live
    download: bool = False        # torchvision data sets: download into root when missing
    batch_size: int = 64
    num_workers: int = 0
    val_fraction: float = 0.2     # held out of the train split when the data set has no val split
    test_fraction: float = 0.0    # held out of train as the test set where there is none
    size: int | None = None       # resize to size x size (None: the data set's own size)
    channels: int | None = None  # convert to 1 or 3 channels (None: the data set's own)
    normalize: bool = True        # per-channel mean/std
    num_samples: int = 256        # fake only
    num_classes: int = 10         # fake only
    image_size: int = 32          # fake only
    image_channels: int = 3       # fake only
    seed: int = 0                 # splits, fake data and the train loader's shuffling
    shuffle: bool = True          # shuffle the train split each epoch
    pin_memory: bool = False
    persistent_workers: bool = False


def as_dataclass(value, cls, group: str):
    """``value`` (None, a mapping, a DictConfig or a dataclass) as a ``cls``; a key that is not a
    setting of ``group`` is a DataError with the closest one."""
    if isinstance(value, cls):
        return value
    if value is None:
        return cls()
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(value, DictConfig):
            value = OmegaConf.to_container(value, resolve=True)
    except ImportError:  # pragma: no cover - omegaconf comes with hydra
        pass
    if isinstance(value, Mapping):
        known = {f.name for f in fields(cls)}
        for key in value:
            if key not in known:
                raise DataError(f"{group}.{key} is not a {group} setting"
                                f"{did_you_mean(key, known)}; the settings are: "
                                f"{', '.join(sorted(known))}")
        return cls(**dict(value))
    if hasattr(value, "__dataclass_fields__"):
        return cls(**{k: v for k, v in asdict(value).items() if k in {f.name for f in fields(cls)}})
    raise DataError(f"{group} config must be a mapping, got {type(value).__name__}")


def need(cfg: DataConfig, ok: bool, key: str, what: str) -> None:
    """A DataError naming ``data.<key>`` and its value unless ``ok``."""
    if not ok:
        raise DataError(f"data.{key}={getattr(cfg, key)!r}: {what}")


def check_config(data, aug, channels: int | None = None) -> tuple[DataConfig, AugConfig]:
    """The checked ``data`` and ``aug`` configs; ``channels`` is what the model takes, if fixed."""
    cfg = as_dataclass(data, DataConfig, "data")
    aug = as_dataclass(aug, AugConfig, "aug")
    if cfg.name not in NAMES:
        raise DataError(f"data.name '{cfg.name}' is not a data set"
                        f"{did_you_mean(cfg.name, NAMES)}; choose one of: "
                        f"{', '.join(NAMES)} (e.g. data={DataConfig.name})")
    src = SOURCES[cfg.name]
    if src.root and str(cfg.root).strip() in ("", "???"):
        raise DataError(f"data.root is not set; set data.root=<the folder of the {cfg.name} "
                        f"files>")
    need(cfg, cfg.batch_size >= 1, "batch_size", "must be at least 1")
    need(cfg, cfg.num_workers >= 0, "num_workers", "must not be negative")
    need(cfg, 0.0 <= cfg.val_fraction < 1.0, "val_fraction", "must lie in [0, 1)")
    need(cfg, 0.0 <= cfg.test_fraction < 1.0, "test_fraction", "must lie in [0, 1)")
    need(cfg, cfg.val_fraction + cfg.test_fraction < 1.0, "test_fraction",
         f"and data.val_fraction={cfg.val_fraction} leave no train samples; their sum must be "
         f"below 1")
    need(cfg, cfg.size is None or cfg.size >= 1, "size", "must be at least 1 (or null)")
    need(cfg, cfg.channels in (None, 1, 3), "channels", "must be 1, 3 or null")
    if src.check is not None:
        src.check(cfg)
    if channels not in (None, 1, 3):
        raise DataError(f"the model takes {channels}-channel input, but "
                        f"{cfg.name} images can only be converted to 1 or 3 channels")
    try:
        check_aug(aug)
    except ValueError as e:
        raise DataError(str(e)) from None
    return cfg, aug
