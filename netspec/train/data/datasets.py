"""The torch Datasets of a split, and the helpers that transform a split once or measure it.

Images of the array data sets stay in memory as they are stored (uint8, or float for digits). A
split whose samples are deterministic (validation, test, and train without augmentation) is
transformed once, in batches, when it fits in :data:`MATERIALIZE_BYTES`, so its loader only indexes
tensors; otherwise the loader transforms a whole batch at once (v2 on the batch for resizing,
:class:`~netspec.train.augment.BatchAugment` for per-sample random augmentation). Image files go
through the per-sample v2 pipeline of :func:`~netspec.train.augment.build_transforms`.
"""
from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors

from ...errors import DataError
from ...threads import one_thread
from ..augment import AugConfig, BatchAugment, build_transforms, is_identity
from .raw import Arrays, Files

MATERIALIZE_BYTES = 256 * 2**20    # a deterministic split up to this size is transformed once
STATS_PIXELS = 2**24               # mean/std from a sample of about this many pixels per channel
STATS_FILES = 1024                 # image files: and at most this many train images


class ArrayDataset(Dataset):
    """Samples ``indices`` of in-memory images; ``batch_transform`` maps ``[B, C, H, W]`` stored
    images to the loader's normalized float batch. The DataLoader fetches a whole batch at once
    through ``__getitems__``, so a batch costs a few tensor operations, not B pipelines."""

    def __init__(self, arrays: Arrays, indices: torch.Tensor, batch_transform):
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


class TrainBatch:
    """Train batches of in-memory images: to the size and channels (v2, on the whole batch), then
    :class:`BatchAugment` (per-sample random parameters) and normalization."""

    def __init__(self, size, channels, augment: BatchAugment):
        self.base = build_transforms(AugConfig(), size, channels, None, None, train=False)
        self.augment = augment

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.augment(self.base(x))


class TensorDataset(Dataset):
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


def read_image(path: str, mode: str) -> Any:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.convert(mode)
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError, DecompressionBombError...
        raise DataError(f"cannot read image '{path}': {e}; remove or replace the file") from None


class FileDataset(Dataset):
    def __init__(self, files: Files, indices: torch.Tensor, transform):
        self.samples, self.mode = files.samples, files.mode
        self.indices, self.transform = indices, transform

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        path, target = self.samples[int(self.indices[i])]
        image = read_image(path, self.mode)
        with one_thread():
            return self.transform(image), target


def split_dataset(source: Arrays | Files, indices: torch.Tensor, aug: AugConfig, train: bool,
                  size: tuple[int, int], channels: int, convert: int | None, norm) -> Dataset:
    """The Dataset of one split: transformed once, per batch or per file (see the module's doc);
    ``convert`` is the channels to convert to (None: as stored), ``norm`` ``(mean, std)``."""
    tf = build_transforms(aug, size, convert, *norm, train=train)
    deterministic = not train or is_identity(aug)
    if isinstance(source, Files):
        return FileDataset(source, indices, tf)
    nbytes = len(indices) * channels * size[0] * size[1] * 4
    if deterministic and nbytes <= MATERIALIZE_BYTES:
        return TensorDataset(*materialize(source, indices, tf))
    if not deterministic:
        tf = TrainBatch(size, convert, BatchAugment(aug, *norm))
    return ArrayDataset(source, indices, tf)


def materialize(arrays: Arrays, indices: torch.Tensor, transform, chunk: int = 1024):
    """Apply a deterministic transform to a whole split, a chunk of images at a time."""
    out = [transform(tv_tensors.Image(arrays.images[indices[i:i + chunk]]))
           for i in range(0, len(indices), chunk)]
    return torch.cat(out).contiguous(), arrays.targets[indices].clone()


def mean_std(source: Arrays | Files, indices: torch.Tensor, transform, size: tuple[int, int],
             seed: int):
    """Per-channel mean and std of the transformed train images: all of them, or a seeded sample
    of about :data:`STATS_PIXELS` pixels (at most :data:`STATS_FILES` files)."""
    limit = max(64, STATS_PIXELS // (size[0] * size[1]))
    if isinstance(source, Files):
        limit = min(limit, STATS_FILES)
    if len(indices) > limit:
        g = torch.Generator().manual_seed(seed)
        indices = indices[torch.randperm(len(indices), generator=g)[:limit]]
    total = sq = 0.0
    count = 0
    if isinstance(source, Arrays):
        batches = (transform(tv_tensors.Image(source.images[indices[i:i + 512]]))
                   for i in range(0, len(indices), 512))
    else:
        batches = (transform(read_image(source.samples[j][0], source.mode)).unsqueeze(0)
                   for j in indices.tolist())
    for x in batches:
        total = total + x.sum(dim=(0, 2, 3), dtype=torch.float64)
        sq = sq + x.square().sum(dim=(0, 2, 3), dtype=torch.float64)
        count += x.shape[0] * x.shape[2] * x.shape[3]
    mean = total / count
    std = (sq / count - mean * mean).clamp_min(0).sqrt()
    return mean.tolist(), std.tolist()


def convert_stats(mean, std, natural: int, channels: int):
    """``(mean, std)`` of ``natural``-channel images as the stats of the ``channels``-channel ones."""
    if natural == channels:
        return tuple(mean), tuple(std)
    if channels == 3:                                  # gray -> rgb: the same in every channel
        return tuple(mean) * 3, tuple(std) * 3
    w = (0.2989, 0.587, 0.114)                         # rgb -> gray: the luminance weights
    gray = lambda v: sum(a * b for a, b in zip(w, v, strict=True))
    return (gray(mean),), (gray(std),)
