"""Per-sample augmentations from the ``aug`` config group, built with torchvision.transforms.v2.

The pipeline turns a PIL image or a ``[C, H, W]`` tensor (uint8 in 0..255 or float in [0, 1]) of any
size into a normalized float tensor ``[channels, size, size]``::

    to image -> channels (1 <-> 3) -> resize (or random resized crop) -> crop with padding, flip,
    rotation, colour jitter -> float -> normalize -> random erasing -> gaussian noise

Everything random is left out when ``train`` is false, so validation and test batches never change
with the ``aug`` config. :class:`BatchAugment` does the same random augmentations on a whole batch
of in-memory images at once, with parameters drawn per sample. MixUp and CutMix mix whole batches
and live in the LightningModule.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torchvision.transforms import v2


@dataclass
class AugConfig:
    hflip: float = 0.0           # probability of a horizontal flip
    crop_padding: int = 0        # random crop back to the size after zero padding (CIFAR style)
    rotation: float = 0.0        # random rotation in [-rotation, rotation] degrees
    color_jitter: float = 0.0    # brightness/contrast/saturation strength
    noise: float = 0.0           # std of gaussian noise added after normalization
    erasing: float = 0.0         # probability of random erasing (cutout)
    resized_crop: bool = False   # RandomResizedCrop to the size instead of a plain resize


def _get(aug, key: str):
    return aug[key] if isinstance(aug, Mapping) else getattr(aug, key)


def is_identity(aug) -> bool:
    """True when ``aug`` changes nothing, so train samples are as deterministic as val samples."""
    return not (
        _get(aug, "hflip") > 0 or _get(aug, "crop_padding") > 0 or _get(aug, "rotation") > 0
        or _get(aug, "color_jitter") > 0 or _get(aug, "noise") > 0 or _get(aug, "erasing") > 0
        or _get(aug, "resized_crop")
    )


def check_aug(aug) -> None:
    """ValueError for an option out of its range."""
    for key in ("hflip", "erasing"):
        p = float(_get(aug, key))
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"aug.{key}={p} is a probability: it must lie in [0, 1]")
    for key in ("crop_padding", "rotation", "color_jitter", "noise"):
        if float(_get(aug, key)) < 0:
            raise ValueError(f"aug.{key}={_get(aug, key)} must not be negative")


def hw(size) -> tuple[int, int] | None:
    """A size as (height, width): an int (numpy's too) or a pair; None stays None."""
    if size is None:
        return None
    if isinstance(size, (int, np.integer)):
        return (int(size), int(size))
    h, w = size
    return (int(h), int(w))


def build_transforms(
    aug,
    size: int | Sequence[int] | None,
    channels: int | None,
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    train: bool,
) -> v2.Compose:
    """The v2 pipeline for one split.

    ``size`` is an int or ``(h, w)`` (None: keep the image's size), ``channels`` 1 or 3 (None: keep
    them), ``mean``/``std`` per output channel (None: no normalization). ``aug`` is an
    :class:`AugConfig` (or a mapping with its keys); it only applies when ``train`` is true.
    """
    check_aug(aug)
    out_hw = hw(size)
    random = train and not is_identity(aug)
    steps: list = [v2.ToImage()]
    if channels == 1:
        steps.append(v2.Grayscale(num_output_channels=1))
    elif channels == 3:
        steps.append(v2.RGB())
    elif channels is not None:
        raise ValueError(f"channels={channels}: only 1 and 3 channel images can be converted")

    if random and _get(aug, "resized_crop"):
        if out_hw is None:
            raise ValueError("aug.resized_crop needs a target size")
        steps.append(v2.RandomResizedCrop(out_hw, antialias=True))
    elif out_hw is not None:
        steps.append(v2.Resize(out_hw, interpolation=v2.InterpolationMode.BILINEAR, antialias=True))

    if random:
        pad = int(_get(aug, "crop_padding"))
        if pad > 0:
            if out_hw is None:
                raise ValueError("aug.crop_padding needs a target size")
            steps.append(v2.RandomCrop(out_hw, padding=pad, fill=0))
        if _get(aug, "hflip") > 0:
            steps.append(v2.RandomHorizontalFlip(p=float(_get(aug, "hflip"))))
        if _get(aug, "rotation") > 0:
            steps.append(v2.RandomRotation(float(_get(aug, "rotation")),
                                           interpolation=v2.InterpolationMode.BILINEAR))
        s = float(_get(aug, "color_jitter"))
        if s > 0:
            steps.append(v2.ColorJitter(brightness=s, contrast=s, saturation=s))

    steps.append(v2.ToDtype(torch.float32, scale=True))
    if mean is not None and std is not None:
        steps.append(v2.Normalize(mean=[float(m) for m in mean], std=[float(s) for s in std]))

    if random:
        if _get(aug, "erasing") > 0:
            steps.append(v2.RandomErasing(p=float(_get(aug, "erasing")), value=0))
        if _get(aug, "noise") > 0:
            steps.append(v2.GaussianNoise(mean=0.0, sigma=float(_get(aug, "noise")), clip=False))
    steps.append(v2.ToPureTensor())
    return v2.Compose(steps)


class BatchAugment:
    """The random part of :func:`build_transforms` for a whole batch at once, with parameters drawn
    per sample: what the data module uses for images held in memory, where the per-sample v2
    pipeline would cost more than the network's step.

    Input: ``[B, C, H, W]`` float in [0, 1] (or uint8), already at the target size and channels.
    Output: normalized float32. The geometric options (random resized crop, crop with padding,
    flip, rotation) are composed into one affine map per sample and sampled once (bilinear, zero
    fill); then colour jitter, normalization, random erasing and gaussian noise, as in v2.
    """

    def __init__(self, aug, mean: Sequence[float] | None, std: Sequence[float] | None):
        check_aug(aug)
        self.hflip = float(_get(aug, "hflip"))
        self.pad = int(_get(aug, "crop_padding"))
        self.rotation = float(_get(aug, "rotation"))
        self.jitter = float(_get(aug, "color_jitter"))
        self.noise = float(_get(aug, "noise"))
        self.erasing = float(_get(aug, "erasing"))
        self.resized_crop = bool(_get(aug, "resized_crop"))
        self.mean = None if mean is None else torch.tensor([float(m) for m in mean]).view(-1, 1, 1)
        self.std = None if std is None else torch.tensor([float(s) for s in std]).view(-1, 1, 1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float().div_(255) if x.dtype == torch.uint8 else x.float()
        if self.resized_crop or self.pad or self.hflip or self.rotation:
            x = self._geometric(x)
        if self.jitter:
            x = self._jitter(x)
        if self.mean is not None:
            x = (x - self.mean) / self.std
        if self.erasing:
            x = self._erase(x)
        if self.noise:
            x = x + torch.randn_like(x) * self.noise
        return x.contiguous()

    def _geometric(self, x: torch.Tensor) -> torch.Tensor:
        import math

        import torch.nn.functional as F

        b, _, h, w = x.shape
        # in normalized coordinates (align_corners=False): source = A @ output + t
        a = torch.eye(2).repeat(b, 1, 1)
        t = torch.zeros(b, 2)
        if self.rotation:                       # rotation about the centre, in pixel space
            ang = (torch.rand(b) * 2 - 1) * math.radians(self.rotation)
            cos, sin = ang.cos(), ang.sin()
            a = torch.stack([torch.stack([cos, -sin * h / w], -1),
                             torch.stack([sin * w / h, cos], -1)], -2)
        if self.hflip:
            sign = torch.where(torch.rand(b) < self.hflip, -1.0, 1.0)
            a = a * torch.stack([sign, torch.ones(b)], -1).unsqueeze(-1)
        if self.pad:                            # integer shifts in [-pad, pad]: pad, then crop
            shift = torch.randint(-self.pad, self.pad + 1, (b, 2)).float()
            t = t + shift * torch.tensor([2.0 / w, 2.0 / h])
        if self.resized_crop:                   # scale (0.08, 1), ratio (3/4, 4/3), 10 tries
            area = torch.empty(b, 10).uniform_(0.08, 1.0) * h * w
            ratio = torch.exp(torch.empty(b, 10).uniform_(math.log(3 / 4), math.log(4 / 3)))
            cw, ch = (area * ratio).sqrt(), (area / ratio).sqrt()
            ok = (cw <= w) & (ch <= h)
            pick = torch.where(ok.any(1), ok.float().argmax(1), 0)
            cw, ch = cw.gather(1, pick[:, None])[:, 0], ch.gather(1, pick[:, None])[:, 0]
            full = ~ok.any(1)
            cw, ch = torch.where(full, float(w), cw), torch.where(full, float(h), ch)
            left, top = torch.rand(b) * (w - cw), torch.rand(b) * (h - ch)
            scale = torch.stack([cw / w, ch / h], -1)
            centre = torch.stack([2 * (left + cw / 2) / w - 1, 2 * (top + ch / 2) / h - 1], -1)
            a = scale.unsqueeze(-1) * a
            t = scale * t + centre
        theta = torch.cat([a, t.unsqueeze(-1)], -1).to(x.dtype)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    def _jitter(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[:2]
        s = self.jitter

        def factor() -> torch.Tensor:
            return torch.empty(b, 1, 1, 1).uniform_(max(0.0, 1 - s), 1 + s)

        def gray(img: torch.Tensor) -> torch.Tensor:
            if c != 3:
                return img
            return (0.2989 * img[:, 0:1] + 0.587 * img[:, 1:2] + 0.114 * img[:, 2:3])

        x = (x * factor()).clamp_(0, 1)                                        # brightness
        m = gray(x).mean(dim=(1, 2, 3), keepdim=True)
        x = (x * (f := factor()) + m * (1 - f)).clamp_(0, 1)                   # contrast
        if c == 3:
            x = (x * (f := factor()) + gray(x) * (1 - f)).clamp_(0, 1)         # saturation
        return x

    def _erase(self, x: torch.Tensor) -> torch.Tensor:
        import math

        b, _, h, w = x.shape
        area = torch.empty(b).uniform_(0.02, 0.33) * h * w
        ratio = torch.exp(torch.empty(b).uniform_(math.log(0.3), math.log(3.3)))
        eh = (area * ratio).sqrt().round().clamp(1, h).long()
        ew = (area / ratio).sqrt().round().clamp(1, w).long()
        top = (torch.rand(b) * (h - eh + 1)).long()
        left = (torch.rand(b) * (w - ew + 1)).long()
        ys, xs = torch.arange(h).view(1, h, 1), torch.arange(w).view(1, 1, w)
        box = ((ys >= top.view(b, 1, 1)) & (ys < (top + eh).view(b, 1, 1))
               & (xs >= left.view(b, 1, 1)) & (xs < (left + ew).view(b, 1, 1)))
        box &= (torch.rand(b) < self.erasing).view(b, 1, 1)
        return x.masked_fill(box.unsqueeze(1), 0.0)
