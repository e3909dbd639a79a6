"""``digits``: scikit-learn's bundled 8x8 handwritten digits (1797 images), the offline default."""
from __future__ import annotations

from pathlib import Path

import torch

from .raw import Arrays, Raw
from .registry import source


@source("digits")
def load_digits(cfg, root: Path) -> Raw:
    from sklearn.datasets import load_digits

    d = load_digits()
    images = torch.from_numpy(d.images).float().div_(16.0).unsqueeze(1).contiguous()
    targets = torch.from_numpy(d.target).long()
    return Raw(Arrays(images, targets), None, None, [str(i) for i in range(10)], 1, (8, 8))
