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
        self.files: dict = {}          # items that came from elsewhere (an override)

    def line_of(self, index: int) -> int | None:
        return self.lines[index] if 0 <= index < len(self.lines) else self.line

    def __deepcopy__(self, memo):
        new = Seq((copy.deepcopy(v, memo) for v in self), file=self.file, line=self.line,
                  lines=self.lines)
        new.files = dict(self.files)
        return new


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
            if line is None and key not in container.files and file == self.file:
                line = self.line
        elif isinstance(container, Seq):
            file, line = container.files.get(key, container.file), container.line_of(key)
            if line is None and file == self.file:
                line = self.line
        if isinstance(key, int):
            path = f"{self.path}[{key}]"
        else:
            path = f"{self.path}.{key}" if self.path else str(key)
        return Loc(file, line, path)

    def error(self, message: str) -> SpecError:
        return SpecError(message, file=self.file, line=self.line, path=self.path)


_CORE = "tag:yaml.org,2002:"
_PLAIN_TAGS = {_CORE + t for t in ("str", "int", "float", "bool", "null", "seq", "map",
                                   "timestamp", "merge")}


_MAX_NODES = 1_000_000    # aliases can expand exponentially ("billion laughs"): cap the work


def _construct(node: yaml.Node, file: str, constructor: yaml.constructor.SafeConstructor,
               path: str = ""):
    line = node.start_mark.line + 1
    constructor.nodes_left = getattr(constructor, "nodes_left", _MAX_NODES) - 1
    if constructor.nodes_left < 0:
        raise SpecError("invalid YAML: too many values (aliases that expand without end?)",
                        file=file, line=line, path=path)
    if node.tag not in _PLAIN_TAGS:
        tag = node.tag.replace(_CORE, "!!")
        raise SpecError(f"YAML tag '{tag}' is not allowed: a spec holds only plain mappings, "
                        f"lists, numbers, strings, booleans and null", file=file, line=line,
                        path=path)
    if isinstance(node, yaml.MappingNode):
        out = Map(file=file, line=line)
        written = {id(k) for k, _ in node.value}
        flat = yaml.MappingNode(node.tag, list(node.value), node.start_mark, node.end_mark)
        constructor.flatten_mapping(flat)  # on a copy: an aliased node is met again unflattened
        merged = set()                    # keys that came from a `<<:` merge may be overridden
        for knode, vnode in flat.value:
            if knode.tag not in _PLAIN_TAGS:
                return _construct(knode, file, constructor, path)  # raises: a tagged key
            key = constructor.construct_object(knode, deep=True)
            if not isinstance(key, (str, int, float, bool)):
                raise SpecError(f"a key must be a plain name, got {key!r}", file=file,
                                line=knode.start_mark.line + 1, path=path)
            kpath = f"{path}.{key}" if path else str(key)
            if key in out and key not in merged:
                raise SpecError(f"duplicate key '{key}' (first on line {out.lines[key]})",
                                file=file, line=knode.start_mark.line + 1, path=kpath)
            if id(knode) in written:
                merged.discard(key)
            else:
                merged.add(key)
            out[key] = _construct(vnode, file, constructor, kpath)
            out.lines[key] = knode.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return Seq((_construct(v, file, constructor, f"{path}[{i}]")
                    for i, v in enumerate(node.value)), file=file, line=line,
                   lines=[v.start_mark.line + 1 for v in node.value])
    return constructor.construct_object(node, deep=True)


def _tab_at(text: str, mark) -> str:
    """What to say when a YAML error is a tab character (YAML never indents with tabs), or ''."""
    if mark is None:
        return ""
    lines = text.split("\n")
    row = lines[mark.line] if 0 <= mark.line < len(lines) else ""
    if not 0 <= mark.column < len(row) or row[mark.column] != "\t":
        return ""
    if not row[:mark.column].strip():
        return (f"a tab character in the indentation (column {mark.column + 1}); "
                f"YAML indents with spaces")
    return f"a tab character at column {mark.column + 1}; YAML separates with spaces here"


def parse_yaml(text: str, file: str = "<spec>"):
    """Parse YAML text into Map/Seq/scalars; a syntax error becomes a SpecError with its line."""
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else None
        why = e.problem or e
        tab = _tab_at(text, e.problem_mark)
        if tab:
            why = tab
        elif e.context and e.problem:
            cm = e.context_mark
            since = f" on line {cm.line + 1}" if cm and cm.line + 1 != line else ""
            why = f"{e.context}{since}, {e.problem}"
        raise SpecError(f"invalid YAML: {why}", file=file, line=line) from None
    except yaml.YAMLError as e:           # e.g. a control character (reader errors carry no mark)
        pos = getattr(e, "position", None)
        line = text[:pos].count("\n") + 1 if isinstance(pos, int) else None
        raise SpecError(f"invalid YAML: {getattr(e, 'reason', None) or e}", file=file,
                        line=line) from None
    if root is None:
        return Map(file=file, line=1)
    try:
        return _construct(root, file, yaml.constructor.SafeConstructor())
    except yaml.MarkedYAMLError as e:     # e.g. a `<<:` merge of something that is not a mapping
        mark = e.problem_mark or e.context_mark
        raise SpecError(f"invalid YAML: {e.problem or e}", file=file,
                        line=mark.line + 1 if mark else None) from None
    except RecursionError:
        raise SpecError("invalid YAML: nested too deeply (a recursive alias?)", file=file,
                        line=root.start_mark.line + 1) from None


@lru_cache(maxsize=256)
def _load_cached(path: str, mtime: float):
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise SpecError(f"not a UTF-8 text file: byte 0x{data[e.start]:02x} at column {column} "
                        f"({e.reason}); save the file as UTF-8", file=path, line=line) from None
    return parse_yaml(text.replace("\r\n", "\n").replace("\r", "\n"), file=path)  # as read_text


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
