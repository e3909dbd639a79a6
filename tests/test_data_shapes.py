"""The ``shapes`` data source: deterministic by its seed, balanced, and its label (the pair of
the two shapes' kinds) read back from a clean image by plain geometry."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial import ConvexHull

from netspec.errors import DataError
from netspec.train.data import shapes
from netspec.train.data.config import DataConfig, check_config


def test_the_same_seed_gives_the_same_images_and_another_seed_others():
    x0, y0 = shapes.generate(200, seed=0)
    x1, y1 = shapes.generate(200, seed=0)
    x2, _ = shapes.generate(200, seed=1)
    assert np.array_equal(x0, x1) and np.array_equal(y0, y1)
    assert not np.array_equal(x0, x2)
    assert x0.shape == (200, 32, 32) and x0.dtype == np.float32
    assert 0.0 <= x0.min() and x0.max() <= 1.0


def test_the_classes_are_balanced():
    _, y = shapes.generate(1000, seed=0)
    assert np.bincount(y, minlength=10).tolist() == [100] * 10


def kind_of(mask: np.ndarray) -> str:
    """A shape's kind from its pixels: a hole, its solidity, its fill of the enclosing disk."""
    if ndimage.binary_fill_holes(mask).sum() > mask.sum():
        return "ring"
    pts = np.argwhere(mask).astype(float)
    area = len(pts)
    hull = ConvexHull(_corners(pts)).volume     # its area, in 2-d
    if area / hull < 0.765:              # (measured: plus <= 0.74, square >= 0.79)
        return "plus"
    r = np.hypot(*(pts - pts.mean(0)).T).max() + 0.5
    return "disk" if area / (np.pi * r * r) > 0.765 else "square"   # (disk >= 0.79)


def _corners(pts: np.ndarray) -> np.ndarray:
    """The four corners of every pixel (a pixel is a unit square, not a point)."""
    offsets = np.array([[-0.5, -0.5], [-0.5, 0.5], [0.5, -0.5], [0.5, 0.5]])
    return (pts[:, None, :] + offsets[None]).reshape(-1, 2)


def test_the_label_is_the_pair_of_the_two_shapes_kinds(monkeypatch):
    monkeypatch.setattr(shapes, "NOISE", 0.0)
    monkeypatch.setattr(shapes, "STROKES", 0)
    images, labels = shapes.generate(200, seed=3)
    for img, label in zip(images, labels):
        parts, n = ndimage.label(img > 0)
        assert n == 2                       # two shapes, apart
        kinds = sorted(shapes.KINDS.index(kind_of(parts == i)) for i in (1, 2))
        assert tuple(kinds) == shapes.PAIRS[label]


def test_it_is_a_data_source_with_its_settings_checked():
    cfg, _ = check_config({"name": "shapes", "num_samples": 40}, None)
    raw = shapes.load_shapes(cfg, None)
    assert raw.classes[0] == "disk+disk" and len(raw.classes) == 10
    assert tuple(raw.train.images.shape) == (40, 1, 32, 32) and raw.size == (32, 32)
    with pytest.raises(DataError, match="data.num_samples=5"):
        check_config(DataConfig(name="shapes", num_samples=5), None)
