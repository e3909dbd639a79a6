"""CIFAR-10 and CIFAR-100: ``data.root/<cifar-10-batches-py|cifar-100-python>/<pickled batches>``
(or torchvision's ``.tar.gz`` of them in data.root), read without running any code in the pickles."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from ...errors import DataError
from .raw import Arrays, Raw
from .registry import source
from .roots import download, missing_root

STATS = {"cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
         "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))}


def torchvision_class(name: str):
    from torchvision.datasets import CIFAR10, CIFAR100

    return CIFAR10 if name == "cifar10" else CIFAR100


class ArrayUnpickler(pickle.Unpickler):
    """Unpickles the CIFAR batches (dicts of numpy arrays and lists) and nothing else: torchvision's
    reader is plain ``pickle.load``, which runs whatever a doctored file asks for."""

    ALLOWED = {(m, n) for m in ("numpy.core.multiarray", "numpy._core.multiarray")
               for n in ("_reconstruct", "scalar")} | {
        ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"unexpected object {module}.{name} in the pickle")


def unpickle(path: Path) -> dict:
    with open(path, "rb") as f:
        out = ArrayUnpickler(f, encoding="latin1").load()
    if not isinstance(out, dict):
        raise ValueError(f"expected a dict, got {type(out).__name__}")
    return out


def ensure_cifar(cfg, root: Path) -> Path:
    """The folder of the batches, extracting torchvision's archive and downloading where allowed."""
    from torchvision.datasets.utils import extract_archive

    cls = torchvision_class(cfg.name)
    folder = root / cls.base_folder
    names = [f for f, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
    missing = lambda: [f for f in names if not (folder / f).is_file()]

    if not root.is_dir() and not cfg.download:
        raise missing_root(cfg, root, f"{cls.base_folder}/")
    lost = missing()
    if lost and (root / cls.filename).is_file():
        try:
            extract_archive(str(root / cls.filename), str(root))
        except Exception as e:  # tarfile, gzip and zlib each raise their own
            raise DataError(f"cannot extract '{root / cls.filename}': {e}; replace it with a good "
                            f"copy") from None
        lost = missing()
    if lost and cfg.download:
        download(cfg, root, lambda: cls(str(root), train=True, download=True))
        lost = missing()
    if lost:
        hint = ("; the files are directly in data.root: set data.root to its parent folder"
                if all((root / f).is_file() for f in lost) else
                "; set data.download=true to fetch them, or copy them (or "
                f"{cls.filename}) there")
        raise DataError(f"{cfg.name} is not in data.root '{root}': expected "
                        + ", ".join(str(folder / f) for f in lost) + hint)
    return folder


def read_batches(cfg, folder: Path, files) -> Arrays:
    """The images and labels of the pickled batches ``files``, concatenated."""
    label_key = "labels" if cfg.name == "cifar10" else "fine_labels"
    data, labels = [], []
    for name, _ in files:
        entry = read_pickle(cfg, folder / name)
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
    return Arrays(torch.from_numpy(np.concatenate(data)).contiguous(),
                  torch.from_numpy(np.concatenate(labels)))


def read_pickle(cfg, path: Path) -> dict:
    try:
        return unpickle(path)
    except Exception as e:  # a bad pickle raises anything from EOFError to UnicodeDecodeError
        raise DataError(f"cannot read the {cfg.name} file '{path}' ({e}); replace it "
                        f"with a good copy (or delete it and set data.download=true)") from None


@source("cifar10", "cifar100", torchvision=True, prepare=ensure_cifar)
def load_cifar(cfg, root: Path) -> Raw:
    cls = torchvision_class(cfg.name)
    folder = ensure_cifar(cfg, root)
    train, test = read_batches(cfg, folder, cls.train_list), read_batches(cfg, folder, cls.test_list)
    meta = read_pickle(cfg, folder / cls.meta["filename"])
    try:
        classes = [str(c) for c in meta[cls.meta["key"]]]
    except KeyError:
        raise DataError(f"'{folder / cls.meta['filename']}' has no '{cls.meta['key']}'; replace it "
                        f"with a good copy") from None
    return Raw(train, None, test, classes, 3, (32, 32), STATS[cfg.name])
