"""What a data source's loader returns: its splits as arrays in memory or as image files."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Arrays:
    images: torch.Tensor          # [N, C, H, W], uint8 0..255 or float 0..1
    targets: torch.Tensor         # [N] int64


@dataclass
class Files:
    samples: list[tuple[str, int]]
    mode: str                     # "L" or "RGB": what the loader converts to

    @property
    def targets(self) -> torch.Tensor:
        return torch.tensor([t for _, t in self.samples], dtype=torch.long)


@dataclass
class Raw:
    train: Arrays | Files
    val: Arrays | Files | None
    test: Arrays | Files | None
    classes: list[str]
    channels: int                 # natural channels and size
    size: tuple[int, int] | None  # None: the images differ in size
    # the data set's usual per-channel (mean, std) of pixels in [0, 1]; None: measured on train
    stats: tuple[tuple[float, ...], tuple[float, ...]] | None = None
