"""``fake``: torchvision's FakeData (random images, seeded by ``data.seed``), sized by the
``data.num_samples``, ``num_classes``, ``image_size`` and ``image_channels`` settings."""
from __future__ import annotations

from pathlib import Path

import torch

from .config import need
from .raw import Arrays, Raw
from .registry import source


def check_fake(cfg) -> None:
    need(cfg, cfg.num_samples >= 2, "num_samples", "must be at least 2")
    need(cfg, cfg.num_classes >= 1, "num_classes", "must be at least 1")
    need(cfg, cfg.image_size >= 1, "image_size", "must be at least 1")
    need(cfg, cfg.image_channels in (1, 3), "image_channels", "must be 1 or 3")


@source("fake", check=check_fake)
def load_fake(cfg, root: Path) -> Raw:
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
    return Raw(Arrays(images, targets), None, None, classes, c, (s, s))
