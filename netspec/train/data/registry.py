"""The registry of data sources: ``@source("name")`` makes a loader a value of ``data.name``.

A loader is ``fn(cfg: DataConfig, root: Path) -> Raw``; a new data set is one module with one
decorated function (import it before the data module is set up)::

    @source("cifar10", "cifar100", torchvision=True, prepare=ensure_cifar)
    def load_cifar(cfg, root): ...
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .raw import Raw


@dataclass(frozen=True)
class Source:
    name: str
    load: Callable[[Any, Path], Raw]
    torchvision: bool = False      # in torchvision's format under data.root, data.download fetches it
    root: bool = False             # reads data.root (every torchvision source does)
    prepare: Callable[[Any, Path], object] | None = None   # locate/unpack/download, once per node
    check: Callable[[Any], None] | None = None              # checks of the source's own settings


SOURCES: dict[str, Source] = {}


def source(*names: str, torchvision: bool = False, root: bool = False,
           prepare: Callable[[Any, Path], object] | None = None,
           check: Callable[[Any], None] | None = None):
    """Register ``fn(cfg, root) -> Raw`` as the loader of the data sets ``names``."""
    if not names:
        raise ValueError("@source needs at least one data set name")

    def register(fn):
        for name in names:
            if name in SOURCES:
                raise ValueError(f"data source '{name}' is registered twice "
                                 f"({SOURCES[name].load.__qualname__} and {fn.__qualname__})")
            SOURCES[name] = Source(name, fn, torchvision, root or torchvision, prepare, check)
        return fn
    return register


class SourceNames(Sequence):
    """The registered names in registration order, read live: a source registered after this
    package was imported is one of them."""

    def __getitem__(self, i):
        return tuple(SOURCES)[i]

    def __len__(self) -> int:
        return len(SOURCES)

    def __contains__(self, name) -> bool:
        return name in SOURCES

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(SOURCES))

    def __repr__(self) -> str:
        return repr(tuple(SOURCES))


NAMES = SourceNames()
