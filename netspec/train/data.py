"""Data sets for training: the ``data`` config group and its LightningDataModule.

``digits`` (scikit-learn's bundled 8x8 digits, the offline default), ``fake`` (torchvision
FakeData), ``mnist``, ``fashion_mnist``, ``cifar10``, ``cifar100`` (torchvision's on-disk formats
under ``data.root``) and ``imagefolder`` (``root/<class>/<image>``, or ``root/train/<class>/...``
with ``val/`` and ``test/`` beside it). Every problem with a path or the files in it is one
:class:`DataError` that says what is wrong, where, and how to fix it.

Images of the array data sets (all but imagefolder) stay in memory as they are stored (uint8, or
float for digits). A split whose samples are deterministic (validation, test, and train without
augmentation) is transformed once, in batches, when it fits in :data:`MATERIALIZE_BYTES`, so its
loader only indexes tensors; otherwise the loader transforms a whole batch at once (v2 on the batch
for resizing, :class:`~netspec.train.augment.BatchAugment` for per-sample random augmentation).
Image folders go through the per-sample v2 pipeline of
:func:`~netspec.train.augment.build_transforms`.
"""
from __future__ import annotations

import gzip
import os
import pickle
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision import tv_tensors

from ..errors import DataError, did_you_mean
from ..threads import one_thread
from .augment import AugConfig, BatchAugment, build_transforms, check_aug, is_identity

NAMES = ("digits", "fake", "mnist", "fashion_mnist", "cifar10", "cifar100", "imagefolder")
MATERIALIZE_BYTES = 256 * 2**20    # a deterministic split up to this size is transformed once
STATS_PIXELS = 2**24               # mean/std from a sample of about this many pixels per channel
STATS_FILES = 1024                 # imagefolder: and at most this many train images
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

# the datasets' usual per-channel statistics (of their train splits, pixel values in [0, 1])
STANDARD_STATS = {
    "mnist": ((0.1307,), (0.3081,)),
    "fashion_mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}



@dataclass
class DataConfig:
    name: str = "digits"          # one of NAMES
    root: str = "data"            # where the torchvision data sets / the image folder live
    download: bool = False        # torchvision data sets: download into root when missing
    batch_size: int = 64
    num_workers: int = 0
    val_fraction: float = 0.2     # held out of the train split when the data set has no val split
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


# -- raw data: arrays in memory or image files ----------------------------------------------------
@dataclass
class _Arrays:
    images: torch.Tensor          # [N, C, H, W], uint8 0..255 or float 0..1
    targets: torch.Tensor         # [N] int64


@dataclass
class _Files:
    samples: list[tuple[str, int]]
    mode: str                     # "L" or "RGB": what the loader converts to

    @property
    def targets(self) -> torch.Tensor:
        return torch.tensor([t for _, t in self.samples], dtype=torch.long)


@dataclass
class _Raw:
    train: _Arrays | _Files
    val: _Arrays | _Files | None
    test: _Arrays | _Files | None
    classes: list[str]
    channels: int                 # natural channels and size
    size: tuple[int, int] | None  # None: the images differ in size


class _ArrayDataset(Dataset):
    """Samples ``indices`` of in-memory images; ``batch_transform`` maps ``[B, C, H, W]`` stored
    images to the loader's normalized float batch. The DataLoader fetches a whole batch at once
    through ``__getitems__``, so a batch costs a few tensor operations, not B pipelines."""

    def __init__(self, arrays: _Arrays, indices: torch.Tensor, batch_transform):
        self.images, self.targets = arrays.images, arrays.targets
        self.indices, self.batch_transform = indices, batch_transform

    def __len__(self) -> int:
        return len(self.indices)

    def __getitems__(self, idx: list[int]) -> list[tuple[torch.Tensor, int]]:
        j = self.indices[torch.as_tensor(idx, dtype=torch.long)]
        with one_thread():
            x = self.batch_transform(tv_tensors.Image(self.images[j]))
        return list(zip(x.unbind(0), self.targets[j].tolist(), strict=True))

    def __getitem__(self, i: int):
        return self.__getitems__([i])[0]


class _TrainBatch:
    """Train batches of in-memory images: to the size and channels (v2, on the whole batch), then
    :class:`BatchAugment` (per-sample random parameters) and normalization."""

    def __init__(self, size, channels, augment: BatchAugment):
        self.base = build_transforms(AugConfig(), size, channels, None, None, train=False)
        self.augment = augment

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.augment(self.base(x))


class _TensorDataset(Dataset):
    """Samples already transformed: indexing only."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        return self.x[i], self.y[i]

    def __getitems__(self, idx: list[int]) -> list[tuple[torch.Tensor, int]]:
        j = torch.as_tensor(idx, dtype=torch.long)
        return list(zip(self.x[j].unbind(0), self.y[j].tolist(), strict=True))


def _read_image(path: str, mode: str) -> Any:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.convert(mode)
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError, DecompressionBombError...
        raise DataError(f"cannot read image '{path}': {e}; remove or replace the file") from None


class _FileDataset(Dataset):
    def __init__(self, files: _Files, indices: torch.Tensor, transform):
        self.samples, self.mode = files.samples, files.mode
        self.indices, self.transform = indices, transform

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        path, target = self.samples[int(self.indices[i])]
        image = _read_image(path, self.mode)
        with one_thread():
            return self.transform(image), target


# -- helpers --------------------------------------------------------------------------------------
def _as_dataclass(value, cls, group: str):
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


def _resolve_root(root: str) -> Path:
    path = Path(os.path.expanduser(str(root)))
    if not path.is_absolute():
        try:
            from hydra.core.hydra_config import HydraConfig
            from hydra.utils import to_absolute_path

            if HydraConfig.initialized():
                path = Path(to_absolute_path(str(path)))
        except Exception:  # pragma: no cover - hydra absent or not running
            pass
    return path


def _hw(size) -> tuple[int, int] | None:
    if size is None:
        return None
    if isinstance(size, (int, np.integer)):
        return (int(size), int(size))
    h, w = size
    return (int(h), int(w))


def stratified_split(targets: torch.Tensor, fraction: float, seed: int):
    """``(train_idx, val_idx)``: ``fraction`` of every class (rounded, at least one sample of a
    class with two or more) goes to val; the same seed gives the same split."""
    rng = np.random.default_rng(seed)
    y = targets.numpy()
    train, val = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        k = int(round(len(idx) * fraction))
        k = min(max(k, 1), len(idx) - 1) if len(idx) >= 2 and fraction > 0 else 0
        val.append(idx[:k])
        train.append(idx[k:])
    return (torch.from_numpy(np.sort(np.concatenate(train))).long(),
            torch.from_numpy(np.sort(np.concatenate(val))).long())


def _convert_stats(mean, std, natural: int, channels: int):
    if natural == channels:
        return tuple(mean), tuple(std)
    if channels == 3:                                  # gray -> rgb: the same in every channel
        return tuple(mean) * 3, tuple(std) * 3
    w = (0.2989, 0.587, 0.114)                         # rgb -> gray: the luminance weights
    gray = lambda v: sum(a * b for a, b in zip(w, v, strict=True))
    return (gray(mean),), (gray(std),)


# -- the data sets --------------------------------------------------------------------------------
def _load_digits(cfg: DataConfig, root: Path) -> _Raw:
    from sklearn.datasets import load_digits

    d = load_digits()
    images = torch.from_numpy(d.images).float().div_(16.0).unsqueeze(1).contiguous()
    targets = torch.from_numpy(d.target).long()
    return _Raw(_Arrays(images, targets), None, None, [str(i) for i in range(10)], 1, (8, 8))


def _load_fake(cfg: DataConfig, root: Path) -> _Raw:
    from torchvision.datasets import FakeData
    from torchvision.transforms.v2.functional import pil_to_tensor

    n, s, c = cfg.num_samples, cfg.image_size, cfg.image_channels
    fake = FakeData(size=n, image_size=(c, s, s), num_classes=cfg.num_classes,
                    random_offset=cfg.seed * 1_000_003)
    images = torch.empty(n, c, s, s, dtype=torch.uint8)
    targets = torch.empty(n, dtype=torch.long)
    for i in range(n):
        img, t = fake[i]
        images[i] = pil_to_tensor(img)
        targets[i] = int(t)
    classes = [str(i) for i in range(cfg.num_classes)]
    return _Raw(_Arrays(images, targets), None, None, classes, c, (s, s))


def _missing_root(cfg: DataConfig, root: Path, what: str) -> DataError:
    hint = " (and data.download=true to fetch it)" if cfg.name in _TORCHVISION else ""
    return DataError(
        f"data.root '{root}' does not exist (data.name={cfg.name}, working directory "
        f"{os.getcwd()}); set data.root=<the folder that holds {what}>{hint}")


def _download(cfg: DataConfig, root: Path, fetch) -> None:
    try:
        root.mkdir(parents=True, exist_ok=True)
        fetch()
    except DataError:
        raise
    except Exception as e:
        raise DataError(
            f"downloading {cfg.name} into data.root '{root}' failed ({type(e).__name__}: "
            f"{str(e).strip().splitlines()[0] if str(e).strip() else e!r}); without internet, "
            f"copy the data set's files there yourself and set data.download=false") from None


# MNIST and Fashion-MNIST: ROOT/<MNIST|FashionMNIST>/raw/<idx files>, gzipped or not
def _mnist_class(name: str):
    from torchvision.datasets import MNIST, FashionMNIST

    return MNIST if name == "mnist" else FashionMNIST


def _idx_files(cls) -> list[str]:
    return [os.path.splitext(os.path.basename(url))[0] for url, _ in cls.resources]


def _gunzip(src: Path, dst: Path) -> None:
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    try:
        with gzip.open(src, "rb") as fin, open(tmp, "wb") as fout:
            shutil.copyfileobj(fin, fout)
        os.replace(tmp, dst)
    except (OSError, EOFError) as e:
        tmp.unlink(missing_ok=True)
        raise DataError(f"cannot decompress '{src}' into '{dst}': {e}; gunzip it yourself, or "
                        f"replace it with a good copy") from None


def _ensure_mnist(cfg: DataConfig, root: Path) -> Path:
    cls = _mnist_class(cfg.name)
    raw = root / cls.__name__ / "raw"

    def missing() -> list[str]:
        out = []
        for f in _idx_files(cls):
            if not (raw / f).is_file():
                if (raw / f"{f}.gz").is_file():
                    _gunzip(raw / f"{f}.gz", raw / f)
                else:
                    out.append(f)
        return out

    if not root.is_dir() and not cfg.download:
        raise _missing_root(cfg, root, f"{cls.__name__}/raw/")
    lost = missing()
    if lost and cfg.download:
        _download(cfg, root, lambda: cls(str(root), train=True, download=True))
        lost = missing()
    if lost:
        elsewhere = [d for d in (root, root / "raw", root / cls.__name__)
                     if any((d / f).is_file() or (d / f"{f}.gz").is_file() for f in lost)]
        hint = (f"; the files are in '{elsewhere[0]}' but torchvision reads them from '{raw}': "
                f"move them there" if elsewhere else
                "; set data.download=true to fetch them, or copy them there")
        raise DataError(f"{cfg.name} is not in data.root '{root}': expected "
                        + ", ".join(f"{raw / f}[.gz]" for f in lost) + hint)
    return raw


def _load_mnist(cfg: DataConfig, root: Path) -> _Raw:
    cls = _mnist_class(cfg.name)
    raw = _ensure_mnist(cfg, root)
    splits = []
    for train in (True, False):
        try:
            ds = cls(str(root), train=train, download=False)
            images, targets = ds.data, ds.targets.long()
            if images.dtype != torch.uint8 or images.ndim != 3 or len(images) != len(targets):
                raise ValueError(f"images {tuple(images.shape)} {images.dtype}, "
                                 f"{len(targets)} labels")
        except Exception as e:
            raise DataError(f"cannot read the {cfg.name} idx files in '{raw}' ({e}); replace "
                            f"them with good copies (or delete them and set data.download=true)"
                            ) from None
        splits.append(_Arrays(images.unsqueeze(1).contiguous(), targets))
    h, w = splits[0].images.shape[-2:]
    return _Raw(splits[0], None, splits[1], list(cls.classes), 1, (h, w))


# CIFAR-10/100: ROOT/<cifar-10-batches-py|cifar-100-python>/<pickled batches>
def _cifar_class(name: str):
    from torchvision.datasets import CIFAR10, CIFAR100

    return CIFAR10 if name == "cifar10" else CIFAR100


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles the CIFAR batches (dicts of numpy arrays and lists) and nothing else."""

    _ALLOWED = {(m, n) for m in ("numpy.core.multiarray", "numpy._core.multiarray")
                for n in ("_reconstruct", "scalar")} | {
        ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"unexpected object {module}.{name} in the pickle")


def _unpickle(path: Path) -> dict:
    with open(path, "rb") as f:
        out = _ArrayUnpickler(f, encoding="latin1").load()
    if not isinstance(out, dict):
        raise ValueError(f"expected a dict, got {type(out).__name__}")
    return out


def _ensure_cifar(cfg: DataConfig, root: Path) -> Path:
    from torchvision.datasets.utils import extract_archive

    cls = _cifar_class(cfg.name)
    folder = root / cls.base_folder
    names = [f for f, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
    missing = lambda: [f for f in names if not (folder / f).is_file()]

    if not root.is_dir() and not cfg.download:
        raise _missing_root(cfg, root, f"{cls.base_folder}/")
    lost = missing()
    if lost and (root / cls.filename).is_file():
        try:
            extract_archive(str(root / cls.filename), str(root))
        except Exception as e:
            raise DataError(f"cannot extract '{root / cls.filename}': {e}; replace it with a good "
                            f"copy") from None
        lost = missing()
    if lost and cfg.download:
        _download(cfg, root, lambda: cls(str(root), train=True, download=True))
        lost = missing()
    if lost:
        hint = ("; the files are directly in data.root: set data.root to its parent folder"
                if all((root / f).is_file() for f in lost) else
                "; set data.download=true to fetch them, or copy them (or "
                f"{cls.filename}) there")
        raise DataError(f"{cfg.name} is not in data.root '{root}': expected "
                        + ", ".join(str(folder / f) for f in lost) + hint)
    return folder


def _load_cifar(cfg: DataConfig, root: Path) -> _Raw:
    cls = _cifar_class(cfg.name)
    folder = _ensure_cifar(cfg, root)
    label_key = "labels" if cfg.name == "cifar10" else "fine_labels"

    def read(name: str):
        try:
            return _unpickle(folder / name)
        except Exception as e:
            raise DataError(f"cannot read the {cfg.name} file '{folder / name}' ({e}); replace it "
                            f"with a good copy (or delete it and set data.download=true)") from None

    splits = []
    for files in (cls.train_list, cls.test_list):
        data, labels = [], []
        for name, _ in files:
            entry = read(name)
            try:
                x = np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
                y = np.asarray(entry[label_key], dtype=np.int64)
                if len(x) != len(y):
                    raise ValueError(f"{len(x)} images but {len(y)} labels")
            except (KeyError, ValueError) as e:
                raise DataError(f"'{folder / name}' is not a {cfg.name} batch ({e!s}); replace it "
                                f"with a good copy") from None
            data.append(x)
            labels.append(y)
        splits.append(_Arrays(torch.from_numpy(np.concatenate(data)).contiguous(),
                              torch.from_numpy(np.concatenate(labels))))
    meta = read(cls.meta["filename"])
    try:
        classes = [str(c) for c in meta[cls.meta["key"]]]
    except KeyError:
        raise DataError(f"'{folder / cls.meta['filename']}' has no '{cls.meta['key']}'; replace it "
                        f"with a good copy") from None
    return _Raw(splits[0], None, splits[1], classes, 3, (32, 32))


# imagefolder: ROOT/<class>/<image> or ROOT/{train,val,test}/<class>/<image>
_SPLIT_DIRS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
_LAYOUT = ("imagefolder expects data.root/<class>/<image>.png (or data.root/train/<class>/..., "
           "with val/ and test/ beside it)")


def _subdirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def _scan_classes(folder: Path, classes: list[str] | None = None):
    """``(classes, samples)`` of one class tree; images are found recursively under each class."""
    dirs = _subdirs(folder)
    if not dirs:
        raise DataError(f"'{folder}' has no class sub-folders; {_LAYOUT}")
    names = [d.name for d in dirs]
    if classes is None:
        classes = names
    else:
        for n in names:
            if n not in classes:
                raise DataError(f"'{folder / n}' is a class the train split doesn't have"
                                f"{did_you_mean(n, classes)}; the train classes are: "
                                f"{', '.join(classes)}")
    index = {c: i for i, c in enumerate(classes)}
    samples, empty = [], []
    for d in dirs:
        found = []
        for dirpath, dirnames, filenames in os.walk(d, followlinks=True):
            dirnames[:] = sorted(n for n in dirnames if not n.startswith("."))
            found += [os.path.join(dirpath, f) for f in sorted(filenames)
                      if f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith(".")]
        if not found:
            empty.append(d.name)
        samples += [(f, index[d.name]) for f in found]
    if not samples:
        raise DataError(f"no images under the class folders of '{folder}' (looked for "
                        f"{' '.join(IMAGE_EXTENSIONS)}); {_LAYOUT}")
    if empty and classes is names:
        raise DataError(f"class folder(s) {', '.join(repr(str(folder / e)) for e in empty)} hold "
                        f"no images ({' '.join(IMAGE_EXTENSIONS)}); add images or remove them")
    return classes, samples


def _load_imagefolder(cfg: DataConfig, root: Path) -> _Raw:
    from PIL import Image

    if not root.is_dir():
        if root.exists():
            raise DataError(f"data.root '{root}' is a file, not a folder; {_LAYOUT}")
        raise _missing_root(cfg, root, "the class sub-folders")
    top = _subdirs(root)
    split_dirs = {}
    if any(d.name == "train" for d in top) and all(d.name in _SPLIT_DIRS for d in top):
        split_dirs = {_SPLIT_DIRS[d.name]: d for d in top}
    if split_dirs:
        classes, train = _scan_classes(split_dirs["train"])
        val = _scan_classes(split_dirs["val"], classes)[1] if "val" in split_dirs else None
        test = _scan_classes(split_dirs["test"], classes)[1] if "test" in split_dirs else None
    else:
        classes, train = _scan_classes(root)
        val = test = None

    sizes, gray = set(), True
    for path, _ in train + (val or []) + (test or []):
        try:
            with Image.open(path) as im:          # reads the header only
                sizes.add((im.size[1], im.size[0]))
                gray = gray and im.mode in _GRAY_MODES
        except Exception as e:
            raise DataError(f"cannot read image '{path}': {e}; remove or replace the file"
                            ) from None
    mode = "L" if gray else "RGB"
    files = lambda s: _Files(s, mode) if s is not None else None
    size = next(iter(sizes)) if len(sizes) == 1 else None
    return _Raw(files(train), files(val), files(test), classes, 1 if gray else 3, size)


_LOADERS = {"digits": _load_digits, "fake": _load_fake, "mnist": _load_mnist,
            "fashion_mnist": _load_mnist, "cifar10": _load_cifar, "cifar100": _load_cifar,
            "imagefolder": _load_imagefolder}
_TORCHVISION = {"mnist", "fashion_mnist", "cifar10", "cifar100"}


# -- the data module ------------------------------------------------------------------------------
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
        self._ready = False

    # -- checks ---------------------------------------------------------------------------------
    def _check(self) -> None:
        cfg = self.cfg = _as_dataclass(self._data_in, DataConfig, "data")
        self.aug = _as_dataclass(self._aug_in, AugConfig, "aug")
        if cfg.name not in NAMES:
            raise DataError(f"data.name '{cfg.name}' is not a data set"
                            f"{did_you_mean(cfg.name, NAMES)}; choose one of: "
                            f"{', '.join(NAMES)} (e.g. data={NAMES[0]})")

        def need(ok: bool, key: str, what: str) -> None:
            if not ok:
                raise DataError(f"data.{key}={getattr(cfg, key)!r}: {what}")

        if cfg.name in _TORCHVISION | {"imagefolder"} and str(cfg.root).strip() in ("", "???"):
            raise DataError(f"data.root is not set; set data.root=<the folder of the {cfg.name} "
                            f"files>")
        need(cfg.batch_size >= 1, "batch_size", "must be at least 1")
        need(cfg.num_workers >= 0, "num_workers", "must not be negative")
        need(0.0 <= cfg.val_fraction < 1.0, "val_fraction", "must lie in [0, 1)")
        need(cfg.size is None or cfg.size >= 1, "size", "must be at least 1 (or null)")
        need(cfg.channels in (None, 1, 3), "channels", "must be 1, 3 or null")
        if cfg.name == "fake":
            need(cfg.num_samples >= 2, "num_samples", "must be at least 2")
            need(cfg.num_classes >= 1, "num_classes", "must be at least 1")
            need(cfg.image_size >= 1, "image_size", "must be at least 1")
            need(cfg.image_channels in (1, 3), "image_channels", "must be 1 or 3")
        if self._channels_override not in (None, 1, 3):
            raise DataError(f"the model takes {self._channels_override}-channel input, but "
                            f"{cfg.name} images can only be converted to 1 or 3 channels")
        try:
            check_aug(self.aug)
        except ValueError as e:
            raise DataError(str(e)) from None

    # -- Lightning hooks ------------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Locate (unpack, download where allowed) the files; runs on one process per node."""
        self._check()
        root = _resolve_root(self.cfg.root)
        if self.cfg.name in ("mnist", "fashion_mnist"):
            _ensure_mnist(self.cfg, root)
        elif self.cfg.name in ("cifar10", "cifar100"):
            _ensure_cifar(self.cfg, root)

    def setup(self, stage: str | None = None) -> None:
        if self._ready:
            return
        with one_thread():
            self._setup()

    def _setup(self) -> None:
        self._check()
        cfg, aug = self.cfg, self.aug
        root = _resolve_root(cfg.root)
        raw = _LOADERS[cfg.name](cfg, root)

        # splits: (source, indices)
        train_idx = torch.arange(len(raw.train.targets))
        if raw.val is not None:
            val = (raw.val, torch.arange(len(raw.val.targets)))
        elif cfg.val_fraction > 0:
            train_idx, val_idx = stratified_split(raw.train.targets, cfg.val_fraction, cfg.seed)
            val = (raw.train, val_idx)
        elif raw.test is not None:
            val = (raw.test, torch.arange(len(raw.test.targets)))
        else:
            raise DataError(f"data.val_fraction=0, but {cfg.name} has no validation or test split "
                            f"to validate on; set data.val_fraction=0.2")
        if len(train_idx) == 0 or len(val[1]) == 0:
            raise DataError(f"{cfg.name}: {len(train_idx)} train and {len(val[1])} val samples; "
                            f"each split needs at least one: change data.val_fraction "
                            f"({cfg.val_fraction}) or add images")
        test = (raw.test, torch.arange(len(raw.test.targets))) if raw.test is not None else val

        # what the loaders yield
        self.classes = list(raw.classes)
        self.num_classes = len(raw.classes)
        self.natural_channels, self.natural_size = raw.channels, raw.size
        self.channels = int(self._channels_override or cfg.channels or raw.channels)
        self.size = _hw(self._size_override) or _hw(cfg.size) or raw.size
        if self.size is None:
            raise DataError(f"the images under data.root '{root}' differ in size; set "
                            f"data.size=<pixels> to resize them all to one size")
        convert = self.channels if self.channels != raw.channels else None
        counts = torch.bincount(raw.train.targets[train_idx], minlength=self.num_classes)
        self.class_counts = [int(c) for c in counts]

        if not cfg.normalize:
            self.mean, self.std = (0.0,) * self.channels, (1.0,) * self.channels
            norm = (None, None)
        else:
            if cfg.name in STANDARD_STATS:
                mean, std = _convert_stats(*STANDARD_STATS[cfg.name], raw.channels, self.channels)
            else:
                # to 3 channels: the stats of the gray image, repeated
                chans = self.channels if convert == 1 else raw.channels
                plain = build_transforms(AugConfig(), self.size, 1 if convert == 1 else None,
                                         None, None, train=False)
                mean, std = _convert_stats(*_mean_std(raw.train, train_idx, plain, self.size,
                                                      cfg.seed), chans, self.channels)
            self.mean = tuple(float(m) for m in mean)
            self.std = tuple(float(s) if s > 1e-6 else 1.0 for s in std)
            norm = (self.mean, self.std)

        def dataset(split, train: bool):
            source, indices = split
            tf = build_transforms(aug, self.size, convert, *norm, train=train)
            deterministic = not train or is_identity(aug)
            if isinstance(source, _Arrays):
                nbytes = len(indices) * self.channels * self.size[0] * self.size[1] * 4
                if deterministic and nbytes <= MATERIALIZE_BYTES:
                    return _TensorDataset(*_materialize(source, indices, tf))
                if not deterministic:
                    tf = _TrainBatch(self.size, convert, BatchAugment(aug, *norm))
                return _ArrayDataset(source, indices, tf)
            return _FileDataset(source, indices, tf)

        self.train_dataset = dataset((raw.train, train_idx), True)
        self.val_dataset = dataset(val, False)
        self.test_dataset = self.val_dataset if test is val else dataset(test, False)
        self._ready = True

    # -- loaders --------------------------------------------------------------------------------
    def _loader(self, ds, train: bool) -> DataLoader:
        if ds is None:
            raise RuntimeError("call setup() before asking for a data loader")
        cfg = self.cfg
        workers = cfg.num_workers > 0
        sampler = self._distributed_sampler(ds) if train else None
        n = len(sampler) if sampler is not None else len(ds)   # this process's samples
        return DataLoader(
            ds, batch_size=cfg.batch_size, shuffle=train and cfg.shuffle and sampler is None,
            sampler=sampler,
            drop_last=train and n > cfg.batch_size,   # no lone last batch for batch norm
            num_workers=cfg.num_workers, pin_memory=cfg.pin_memory,
            persistent_workers=cfg.persistent_workers and workers,
            generator=torch.Generator().manual_seed(cfg.seed) if train else None)

    def _distributed_sampler(self, ds):
        """Under DDP, this rank's share of the train split, shuffled only when ``data.shuffle``
        says so (with ``data.seed``): Lightning's own sampler would always shuffle it. With
        ``shuffle=false`` the ranks' batches together are the single-process batches."""
        kwargs = self.trainer.distributed_sampler_kwargs if self.trainer is not None else None
        if not kwargs or kwargs.get("num_replicas", 1) <= 1:
            return None
        from torch.utils.data.distributed import DistributedSampler
        return DistributedSampler(ds, shuffle=self.cfg.shuffle, seed=self.cfg.seed, **kwargs)

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
        return (f"{self.cfg.name}: {len(self.train_dataset)} train / {len(self.val_dataset)} val / "
                f"{len(self.test_dataset)} test, {self.num_classes} classes, "
                f"{self.channels}x{h}x{w}")


def _materialize(arrays: _Arrays, indices: torch.Tensor, transform, chunk: int = 1024):
    """Apply a deterministic transform to a whole split, a chunk of images at a time."""
    out = [transform(tv_tensors.Image(arrays.images[indices[i:i + chunk]]))
           for i in range(0, len(indices), chunk)]
    return torch.cat(out).contiguous(), arrays.targets[indices].clone()


def _mean_std(source, indices: torch.Tensor, transform, size: tuple[int, int], seed: int):
    """Per-channel mean and std of the transformed train images: all of them, or a seeded sample
    of about :data:`STATS_PIXELS` pixels (at most :data:`STATS_FILES` files)."""
    limit = max(64, STATS_PIXELS // (size[0] * size[1]))
    if isinstance(source, _Files):
        limit = min(limit, STATS_FILES)
    if len(indices) > limit:
        g = torch.Generator().manual_seed(seed)
        indices = indices[torch.randperm(len(indices), generator=g)[:limit]]
    total = sq = 0.0
    count = 0
    if isinstance(source, _Arrays):
        batches = (transform(tv_tensors.Image(source.images[indices[i:i + 512]]))
                   for i in range(0, len(indices), 512))
    else:
        batches = (transform(_read_image(source.samples[j][0], source.mode)).unsqueeze(0)
                   for j in indices.tolist())
    for x in batches:
        total = total + x.sum(dim=(0, 2, 3), dtype=torch.float64)
        sq = sq + x.square().sum(dim=(0, 2, 3), dtype=torch.float64)
        count += x.shape[0] * x.shape[2] * x.shape[3]
    mean = total / count
    std = (sq / count - mean * mean).clamp_min(0).sqrt()
    return mean.tolist(), std.tolist()


def make_datamodule(data: DataConfig | Mapping | None = None,
                    aug: AugConfig | Mapping | None = None, *,
                    size: int | Sequence[int] | None = None,
                    channels: int | None = None) -> ImageDataModule:
    """The data module for ``data`` and ``aug``; ``size``/``channels`` (fixed by the spec) win over
    the config's. Nothing is read until ``prepare_data()``/``setup()``."""
    return ImageDataModule(data, aug, size=size, channels=channels)
