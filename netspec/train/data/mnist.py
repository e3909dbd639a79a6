"""MNIST and Fashion-MNIST: ``data.root/<MNIST|FashionMNIST>/raw/<idx files>``, gzipped or not."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from ...errors import DataError
from .raw import Arrays, Raw
from .registry import source
from .roots import decompress, download, missing_root

STATS = {"mnist": ((0.1307,), (0.3081,)), "fashion_mnist": ((0.2860,), (0.3530,))}


def torchvision_class(name: str):
    from torchvision.datasets import MNIST, FashionMNIST

    return MNIST if name == "mnist" else FashionMNIST


def idx_files(cls) -> list[str]:
    """The idx file names torchvision reads (its download URLs without ``.gz``)."""
    return [os.path.splitext(os.path.basename(url))[0] for url, _ in cls.resources]


def ensure_mnist(cfg, root: Path) -> Path:
    """The raw folder with every idx file, decompressing ``.gz`` files and downloading where
    allowed; a DataError says which files are missing and, when they are elsewhere, where."""
    cls = torchvision_class(cfg.name)
    raw = root / cls.__name__ / "raw"

    def missing() -> list[str]:
        out = []
        for f in idx_files(cls):
            if not (raw / f).is_file():
                if (raw / f"{f}.gz").is_file():
                    decompress(raw / f"{f}.gz", raw / f)
                else:
                    out.append(f)
        return out

    if not root.is_dir() and not cfg.download:
        raise missing_root(cfg, root, f"{cls.__name__}/raw/")
    lost = missing()
    if lost and cfg.download:
        download(cfg, root, lambda: cls(str(root), train=True, download=True))
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


@source("mnist", "fashion_mnist", torchvision=True, prepare=ensure_mnist)
def load_mnist(cfg, root: Path) -> Raw:
    cls = torchvision_class(cfg.name)
    raw = ensure_mnist(cfg, root)
    splits = []
    for train in (True, False):
        try:
            ds = cls(str(root), train=train, download=False)
            images, targets = ds.data, ds.targets.long()
            if images.dtype != torch.uint8 or images.ndim != 3 or len(images) != len(targets):
                raise ValueError(f"images {tuple(images.shape)} {images.dtype}, "
                                 f"{len(targets)} labels")
        except Exception as e:  # torchvision's idx reader raises anything on a bad file
            raise DataError(f"cannot read the {cfg.name} idx files in '{raw}' ({e}); replace "
                            f"them with good copies (or delete them and set data.download=true)"
                            ) from None
        splits.append(Arrays(images.unsqueeze(1).contiguous(), targets))
    h, w = splits[0].images.shape[-2:]
    return Raw(splits[0], None, splits[1], list(cls.classes), 1, (h, w), STATS[cfg.name])
