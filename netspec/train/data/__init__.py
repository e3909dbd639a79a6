"""Data sets for training: the ``data`` config group, its data sources and its LightningDataModule.

The sources, one module each, registered with :func:`source` (``data.name`` is one of
:data:`NAMES`): ``digits`` (scikit-learn's bundled 8x8 digits, the offline default), ``fake``
(torchvision FakeData), ``mnist``, ``fashion_mnist``, ``cifar10``, ``cifar100`` (torchvision's
on-disk formats under ``data.root``) and ``imagefolder`` (``root/<class>/<image>``, or
``root/train/<class>/...`` with ``val/`` and ``test/`` beside it). Every problem with a path or the
files in it is one :class:`DataError` that says what is wrong, where, and how to fix it.

    registry     @source, NAMES           raw          what a loader returns (Raw, Arrays, Files)
    config       DataConfig, its checks   roots        data.root: missing files, downloads
    splits       stratified_split         datasets     the torch Datasets, transform-once, mean/std
    datamodule   ImageDataModule
"""
from __future__ import annotations

from torchvision.datasets.folder import IMG_EXTENSIONS as IMAGE_EXTENSIONS

from ...errors import DataError
from . import cifar, digits, fake, imagefolder, mnist, shapes  # noqa: F401  (each registers its sources)
from .config import DataConfig
from .datamodule import ImageDataModule, make_datamodule
from .datasets import MATERIALIZE_BYTES, STATS_FILES, STATS_PIXELS
from .raw import Arrays, Files, Raw
from .registry import NAMES, SOURCES, Source, source
from .splits import stratified_split

# the data sets' usual per-channel statistics (of their train splits, pixel values in [0, 1])
STANDARD_STATS = {**mnist.STATS, **cifar.STATS}

__all__ = ["DataConfig", "DataError", "ImageDataModule", "make_datamodule", "stratified_split",
           "NAMES", "SOURCES", "Source", "source", "Raw", "Arrays", "Files", "STANDARD_STATS",
           "IMAGE_EXTENSIONS", "MATERIALIZE_BYTES", "STATS_PIXELS", "STATS_FILES"]
