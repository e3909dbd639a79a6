"""The LightningDataModule of one data source: its splits, what the loaders yield, the loaders."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from ...errors import DataError
from ...threads import one_thread
from ..augment import AugConfig, build_transforms, hw
from ..resume import train_loader
from .config import DataConfig, as_dataclass, check_config
from .datasets import convert_stats, mean_std, split_dataset
from .raw import Raw
from .registry import SOURCES
from .roots import resolve_root
from .splits import holdout_splits, stratified_split


class ImageDataModule(pl.LightningDataModule):
    """Train/val/test loaders of one data set; after :meth:`setup` it knows ``num_classes``,
    ``channels``, ``size`` (what the loaders yield), ``class_counts`` (train split), ``classes``,
    ``mean`` and ``std``."""

    def __init__(self, data: DataConfig | Mapping | None = None,
                 aug: AugConfig | Mapping | None = None, *,
                 size: int | Sequence[int] | None = None, channels: int | None = None):
        super().__init__()
        self.cfg = data if isinstance(data, DataConfig) else None
        self._data_in, self._aug_in = data, aug
        self._size_override, self._channels_override = size, channels
        self.aug: AugConfig | None = aug if isinstance(aug, AugConfig) else None
        self.num_classes: int | None = None
        self.channels: int | None = None
        self.size: tuple[int, int] | None = None
        self.class_counts: list[int] | None = None
        self.classes: list[str] | None = None
        self.mean: tuple[float, ...] | None = None
        self.std: tuple[float, ...] | None = None
        self.natural_channels: int | None = None
        self.natural_size: tuple[int, int] | None = None
        self.train_dataset = self.val_dataset = self.test_dataset = None
        # what the test loader holds: "test" (the data set's own), "held out" (of its train
        # split, by data.test_fraction) or "val" (the validation split: there is no other)
        self.test_split: str | None = None
        self._ready = False

    def _check(self) -> None:
        self.cfg = as_dataclass(self._data_in, DataConfig, "data")
        self.cfg, self.aug = check_config(self.cfg, self._aug_in, self._channels_override)

    # -- Lightning hooks ------------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Locate (unpack, download where allowed) the files; runs on one process per node."""
        self._check()
        prepare = SOURCES[self.cfg.name].prepare
        if prepare is not None:
            prepare(self.cfg, resolve_root(self.cfg.root))

    def setup(self, stage: str | None = None) -> None:
        if self._ready:
            return
        with one_thread():
            self._setup()

    def _setup(self) -> None:
        self._check()
        root = resolve_root(self.cfg.root)
        raw = SOURCES[self.cfg.name].load(self.cfg, root)
        train_idx, val, test = self._splits(raw)
        convert = self._output(raw, train_idx, root)
        norm = self._normalization(raw, train_idx, convert)

        def dataset(split, train: bool):
            return split_dataset(*split, self.aug, train, self.size, self.channels, convert, norm)

        self.train_dataset = dataset((raw.train, train_idx), True)
        self.val_dataset = dataset(val, False)
        self.test_dataset = self.val_dataset if test is val else dataset(test, False)
        self._ready = True

    def _splits(self, raw: Raw):
        """``(train_idx, val, test)``, val and test as ``(source, indices)``: the data set's own
        val split, else ``val_fraction`` of train, else its test split; its own test split, else
        ``test_fraction`` of train held out, else val. Sets ``test_split`` to say which."""
        cfg = self.cfg
        targets = raw.train.targets
        train_idx, test = torch.arange(len(targets)), None
        if raw.test is not None:
            test, self.test_split = (raw.test, torch.arange(len(raw.test.targets))), "test"
        elif cfg.test_fraction > 0:
            share = cfg.val_fraction if raw.val is None else 0.0
            train_idx, val_idx, test_idx = holdout_splits(targets, share, cfg.test_fraction,
                                                          cfg.seed)
            test, self.test_split = (raw.train, test_idx), "held out"
        if raw.val is not None:
            val = (raw.val, torch.arange(len(raw.val.targets)))
        elif cfg.val_fraction > 0:
            if test is None or test[0] is not raw.train:
                train_idx, val_idx = stratified_split(targets, cfg.val_fraction, cfg.seed)
            val = (raw.train, val_idx)
        elif raw.test is not None:
            val = test
        else:
            raise DataError(f"data.val_fraction=0, but {cfg.name} has no validation or test split "
                            f"to validate on; set data.val_fraction=0.2")
        if len(train_idx) == 0 or len(val[1]) == 0 or (test is not None and len(test[1]) == 0):
            raise DataError(f"{cfg.name}: {len(train_idx)} train, {len(val[1])} val and "
                            f"{len(test[1]) if test else 0} test samples; each split needs at "
                            f"least one: change data.val_fraction ({cfg.val_fraction}) and "
                            f"data.test_fraction ({cfg.test_fraction}) or add images")
        if test is None or test is val:
            test, self.test_split = val, "val"
        return train_idx, val, test

    def _output(self, raw: Raw, train_idx: torch.Tensor, root) -> int | None:
        """Set what the loaders yield (classes, channels, size, class counts); returns the channels
        to convert to, None where the images keep theirs."""
        self.classes = list(raw.classes)
        self.num_classes = len(raw.classes)
        self.natural_channels, self.natural_size = raw.channels, raw.size
        self.channels = int(self._channels_override or self.cfg.channels or raw.channels)
        self.size = hw(self._size_override) or hw(self.cfg.size) or raw.size
        if self.size is None:
            raise DataError(f"the images under data.root '{root}' differ in size; set "
                            f"data.size=<pixels> to resize them all to one size")
        counts = torch.bincount(raw.train.targets[train_idx], minlength=self.num_classes)
        self.class_counts = [int(c) for c in counts]
        return self.channels if self.channels != raw.channels else None

    def _normalization(self, raw: Raw, train_idx: torch.Tensor, convert: int | None):
        """Set ``mean`` and ``std`` (the data set's usual ones, else measured on the train split)
        and return them for the transforms, ``(None, None)`` without ``data.normalize``."""
        if not self.cfg.normalize:
            self.mean, self.std = (0.0,) * self.channels, (1.0,) * self.channels
            return (None, None)
        if raw.stats is not None:
            mean, std = convert_stats(*raw.stats, raw.channels, self.channels)
        else:
            # to 3 channels: the stats of the gray image, repeated
            chans = self.channels if convert == 1 else raw.channels
            plain = build_transforms(AugConfig(), self.size, 1 if convert == 1 else None,
                                     None, None, train=False)
            mean, std = convert_stats(*mean_std(raw.train, train_idx, plain, self.size,
                                                self.cfg.seed), chans, self.channels)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) if s > 1e-6 else 1.0 for s in std)
        return (self.mean, self.std)

    # -- loaders --------------------------------------------------------------------------------
    def _loader(self, ds, train: bool) -> DataLoader:
        if ds is None:
            raise RuntimeError("call setup() before asking for a data loader")
        cfg = self.cfg
        workers = cfg.num_workers > 0
        kwargs = dict(num_workers=cfg.num_workers, pin_memory=cfg.pin_memory,
                      persistent_workers=cfg.persistent_workers and workers)
        if not train:
            # a generator of their own: making their iterators must not draw from the global one,
            # which the training steps use (and a resumed run restores)
            return DataLoader(ds, batch_size=cfg.batch_size, generator=torch.Generator(),
                              **kwargs)
        distributed = self._distributed_kwargs()
        n = -(-len(ds) // distributed["num_replicas"]) if distributed else len(ds)  # this rank's
        # resumable (exact resume after a kill): see netspec/train/resume.py
        return train_loader(ds, cfg.batch_size, cfg.shuffle, cfg.seed, distributed,
                            drop_last=n > cfg.batch_size,   # no lone last batch for batch norm
                            **kwargs)

    def _distributed_kwargs(self) -> dict | None:
        """Under DDP, this rank's share of the train split (Lightning's num_replicas and rank),
        shuffled only when ``data.shuffle`` says so (with ``data.seed``): Lightning's own sampler
        would always shuffle it. With ``shuffle=false`` the ranks' batches together are the
        single-process batches."""
        kwargs = self.trainer.distributed_sampler_kwargs if self.trainer is not None else None
        if not kwargs or kwargs.get("num_replicas", 1) <= 1:
            return None
        return {"num_replicas": kwargs["num_replicas"], "rank": kwargs["rank"]}

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_dataset, True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_dataset, False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_dataset, False)

    def describe(self) -> str:
        """One line for the console: the data set, its splits and what the loaders yield."""
        if not self._ready:
            return f"{self.cfg.name if self.cfg else '?'} (not set up)"
        h, w = self.size
        test = "test = val" if self.test_split == "val" else f"{len(self.test_dataset)} test" + \
            (" (held out)" if self.test_split == "held out" else "")
        return (f"{self.cfg.name}: {len(self.train_dataset)} train / {len(self.val_dataset)} val / "
                f"{test}, {self.num_classes} classes, {self.channels}x{h}x{w}")

    def test_label(self) -> str:
        """Which split a test report is on, for the reader: ``test (held out, 180 images)``."""
        n = len(self.test_dataset)
        if self.test_split == "val":
            return (f"val ({n} images; {self.cfg.name} has no test split here, so this is the "
                    f"split that picked the best checkpoint)")
        return f"test ({'held out, ' if self.test_split == 'held out' else ''}{n} images)"


def make_datamodule(data: DataConfig | Mapping | None = None,
                    aug: AugConfig | Mapping | None = None, *,
                    size: int | Sequence[int] | None = None,
                    channels: int | None = None) -> ImageDataModule:
    """The data module for ``data`` and ``aug``; ``size``/``channels`` (fixed by the spec) win over
    the config's. Nothing is read until ``prepare_data()``/``setup()``."""
    return ImageDataModule(data, aug, size=size, channels=channels)
