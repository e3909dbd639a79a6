"""YAML loading that remembers where every key and item came from.

Safe loading only (yaml.SafeLoader semantics): no Python object construction from a spec.
Mappings become :class:`Map` and sequences :class:`Seq`; both behave as dict/list and carry
``file`` and per-key/per-item ``lines`` so that errors can point at ``file:line``.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from ..errors import SpecError

try:  # libyaml's composer is ~10x faster; both are safe loaders
    _Loader = yaml.CSafeLoader
except AttributeError:  # pragma: no cover
    _Loader = yaml.SafeLoader


class Map(dict):
    """A dict that knows the file and line of itself and of each key."""

    file: str = "<spec>"
    line: int | None = None

    def __init__(self, *args, file: str = "<spec>", line: int | None = None, lines=None, **kw):
        super().__init__(*args, **kw)
        self.file, self.line = file, line
        self.lines: dict = dict(lines or {})
        self.files: dict = {}          # keys that came from elsewhere (a base spec, an override)

    def line_of(self, key) -> int | None:
        return self.lines.get(key, self.line) if key not in self.files else self.lines.get(key)

    def file_of(self, key) -> str:
        return self.files.get(key, self.file)

    def __deepcopy__(self, memo):
        new = Map(file=self.file, line=self.line, lines=self.lines)
        new.files = dict(self.files)
        for k, v in self.items():
            new[k] = copy.deepcopy(v, memo)
        return new


class Seq(list):
    """A list that knows the file and line of itself and of each item."""

    def __init__(self, items=(), *, file: str = "<spec>", line: int | None = None, lines=None):
        super().__init__(items)
        self.file, self.line = file, line
        self.lines: list = list(lines or [])

    def line_of(self, index: int) -> int | None:
        return self.lines[index] if 0 <= index < len(self.lines) else self.line

    def __deepcopy__(self, memo):
        return Seq((copy.deepcopy(v, memo) for v in self), file=self.file, line=self.line, lines=self.lines)


@dataclass(frozen=True)
class Loc:
    """Where a value sits: its file, line and key path (``stages[3].bottleneck.c``)."""

    file: str = "<spec>"
    line: int | None = None
    path: str = ""

    def key(self, container, key) -> Loc:
        """The location of ``container[key]`` below this one."""
        line, file = self.line, self.file
        if isinstance(container, Map):
            file = container.file_of(key)
            line = container.line_of(key)
            if line is None and key not in container.files:
                line = self.line
        elif isinstance(container, Seq):
            file, line = container.file, container.line_of(key) or self.line
        if isinstance(key, int):
            path = f"{self.path}[{key}]"
        else:
            path = f"{self.path}.{key}" if self.path else str(key)
        return Loc(file, line, path)

    def error(self, message: str) -> SpecError:
        return SpecError(message, file=self.file, line=self.line, path=self.path)


def _construct(node: yaml.Node, file: str, constructor: yaml.constructor.SafeConstructor):
    line = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out = Map(file=file, line=line)
        constructor.flatten_mapping(node)
        for knode, vnode in node.value:
            key = constructor.construct_object(knode, deep=True)
            if not isinstance(key, (str, int, float, bool)):
                raise SpecError(f"a key must be a plain name, got {key!r}", file=file,
                                line=knode.start_mark.line + 1)
            if key in out:
                raise SpecError(f"duplicate key '{key}'", file=file, line=knode.start_mark.line + 1)
            out[key] = _construct(vnode, file, constructor)
            out.lines[key] = knode.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return Seq((_construct(v, file, constructor) for v in node.value), file=file, line=line,
                   lines=[v.start_mark.line + 1 for v in node.value])
    return constructor.construct_object(node, deep=True)


def parse_yaml(text: str, file: str = "<spec>"):
    """Parse YAML text into Map/Seq/scalars; a syntax error becomes a SpecError with its line."""
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else None
        raise SpecError(f"invalid YAML: {e.problem or e}", file=file, line=line) from None
    if root is None:
        return Map(file=file, line=1)
    return _construct(root, file, yaml.constructor.SafeConstructor())


@lru_cache(maxsize=256)
def _load_cached(path: str, mtime: float):
    return parse_yaml(Path(path).read_text(encoding="utf-8"), file=path)


def load_file(path: str | Path):
    """Load a YAML file (cached by path and modification time); callers get their own copy."""
    p = Path(path)
    try:
        mtime = p.stat().st_mtime
    except OSError:
        raise SpecError(f"no such spec file: {path}", file=str(path)) from None
    return copy.deepcopy(_load_cached(str(p), mtime))


def plain(value):
    """Map/Seq -> dict/list, recursively (for writing a spec back out)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def located(value, file: str = "<dict>"):
    """dict/list -> Map/Seq without line information (for specs given as Python dicts)."""
    if isinstance(value, Map | Seq):
        return value
    if isinstance(value, dict):
        return Map({k: located(v, file) for k, v in value.items()}, file=file)
    if isinstance(value, list):
        return Seq((located(v, file) for v in value), file=file)
    return value
