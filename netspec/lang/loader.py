"""Finding and loading specs: zoo names, paths or dicts; ``base:`` inheritance; overrides."""
from __future__ import annotations

import copy
from pathlib import Path

import yaml

from ..errors import SpecError, did_you_mean
from .source import Map, Seq, load_file, located

_PKG = Path(__file__).resolve().parent.parent


def data_dir(name: str) -> Path:
    """A shipped data folder (specs, search, conf): inside the installed package, else the repo."""
    for candidate in (_PKG / name, _PKG.parent / name):
        if candidate.is_dir():
            return candidate
    return _PKG / name


def zoo() -> list[str]:
    """The names of the shipped specs."""
    return sorted(p.stem for p in data_dir("specs").glob("*.yaml"))


def spec_path(name: str | Path) -> Path:
    """A zoo name or a path to a YAML file -> the file, or a SpecError listing the zoo."""
    p = Path(name)
    if p.suffix in (".yaml", ".yml") or p.exists() or "/" in str(name):
        if not p.is_file():
            raise SpecError(f"no such spec file: {name}", file=str(name))
        return p
    zp = data_dir("specs") / f"{name}.yaml"
    if zp.is_file():
        return zp
    names = zoo()
    raise SpecError(f"unknown spec '{name}'{did_you_mean(str(name), names)}; "
                    f"the zoo has: {', '.join(names)}; or give a path to a YAML file",
                    file=str(name))


def load_spec(spec, overrides=()) -> Map:
    """Load a spec (zoo name, path or dict), merge its ``base:`` chain, then apply overrides."""
    if isinstance(spec, dict):
        raw = copy.deepcopy(located(spec))
        origin = None
    else:
        if not isinstance(spec, (str, Path)):
            raise SpecError(f"a spec is a zoo name, a path to a YAML file or a dict, got "
                            f"{type(spec).__name__}", file=repr(spec)[:40])
        path = spec_path(spec)
        raw = load_file(path)
        origin = path
        if not isinstance(raw, Map):
            raise SpecError(f"a spec must be a mapping (input, stem, stages, head, ...), but the "
                            f"file holds {parsed_as(raw)}", file=str(path), line=getattr(raw, "line", 1))
        if not raw:
            raise SpecError("empty spec (no stem, stages or head): write its layers, or "
                            "'base: NAME' to start from another spec", file=str(path))
        raw.setdefault("name", path.stem)
    raw = _merge_base(raw, origin, seen=())
    apply_overrides(raw, overrides)
    return raw


def _merge_base(raw: Map, origin: Path | None, seen: tuple) -> Map:
    base = raw.get("base")
    if base is None:
        return raw
    if not isinstance(base, str):
        raise SpecError("base must be a zoo name or a path", file=raw.file, line=raw.line_of("base"))
    rel = (origin.parent / base) if origin is not None and base.endswith((".yaml", ".yml")) else base
    if rel == base and base not in zoo():      # a bare name: a spec file beside this one
        beside = [d / f"{base}{ext}" for d in ([origin.parent] if origin is not None else [])
                  + [Path.cwd()] for ext in (".yaml", ".yml")]
        rel = next((p for p in beside if p.is_file()), base)
    try:
        path = spec_path(rel)
    except SpecError as e:
        raise SpecError(e.reason, file=raw.file, line=raw.line_of("base"), path="base") from None
    if str(path.resolve()) in seen:
        raise SpecError(f"base '{base}' inherits from itself", file=raw.file,
                        line=raw.line_of("base"), path="base")
    parent = load_file(path)
    if not isinstance(parent, Map) or not parent:
        what = "is empty" if isinstance(parent, Map) else \
            f"holds {parsed_as(parent)}, not a mapping (input, stem, stages, head, ...)"
        raise SpecError(f"base '{base}' is not a spec: {path} {what}", file=raw.file,
                        line=raw.line_of("base"), path="base")
    parent = _merge_base(parent, path, seen + (str(path.resolve()),))
    merged = deep_merge(parent, raw)
    del merged["base"]
    return merged


def parsed_as(value) -> str:
    """What a YAML file that is not a mapping parsed to, for an error message."""
    if isinstance(value, list):
        return f"a list of {len(value)} item{'s' if len(value) != 1 else ''}"
    if isinstance(value, str):
        text = " ".join(value.split())
        return f"plain text ({text[:40]!r}{'...' if len(text) > 40 else ''})"
    if value is None:
        return "nothing"
    return f"a single value ({str(value)[:40]})"


def deep_merge(base: Map, top: Map) -> Map:
    """``top`` over ``base``: mappings merge key by key, everything else is replaced."""
    out = copy.deepcopy(base)
    for k, v in top.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
        if isinstance(out, Map):
            out.lines[k] = top.line_of(k) if isinstance(top, Map) else None
            out.files[k] = top.file if isinstance(top, Map) else out.file
    return out


def _parse_key(key: str) -> list:
    parts: list = []
    for piece in key.replace("]", "").replace("[", ".").split("."):
        if piece == "":
            raise ValueError(key)
        parts.append(int(piece) if piece.lstrip("-").isdigit() else piece)
    return parts


def apply_overrides(spec: Map, overrides) -> None:
    """Apply Hydra-style ``key.path=value`` strings (``stages[2].c=64``) in place."""
    if isinstance(overrides, str):
        overrides = [overrides]
    for text in overrides:
        where = f"<override {text}>"
        if not isinstance(text, str) or "=" not in text:
            raise SpecError(f"an override must look like key.path=value, got {text!r}", file=where)
        key, _, value_text = text.partition("=")
        key = key.strip().lstrip("+")
        try:
            parts = _parse_key(key)
            value = yaml.safe_load(value_text) if value_text.strip() else None
        except (ValueError, yaml.YAMLError):
            raise SpecError(f"cannot read the override {text!r}", file=where) from None
        value = located(value, where)
        node = spec
        for i, part in enumerate(parts):
            if isinstance(node, list) and not isinstance(part, int):
                raise SpecError(f"'{'.'.join(map(str, parts[:i]))}' is a list: give an index "
                                f"like [0], not '{part}'", file=where, path=key)
            if i == len(parts) - 1:
                break
            nxt = node[part] if _has(node, part) else None
            if nxt is None:
                if isinstance(part, int):
                    raise SpecError(f"{'.'.join(map(str, parts[:i]))} has no item {part}",
                                    file=where, path=key)
                nxt = Map(file=where)
                node[part] = nxt
                if isinstance(node, Map):      # a section the override made: it is the place
                    node.lines[part] = None
                    node.files[part] = where
            if not isinstance(nxt, (dict, list)):
                raise SpecError(f"'{'.'.join(map(str, parts[:i + 1]))}' is a value, not a section; "
                                f"it cannot take '{parts[i + 1]}'", file=where, path=key)
            node = nxt
        last = parts[-1]
        if isinstance(node, list):
            if not -len(node) <= last < len(node):
                raise SpecError(f"index {last} is out of range (the list has {len(node)} items)",
                                file=where, path=key)
        node[last] = value
        if isinstance(node, Map):
            node.lines[last] = None
            node.files[last] = where
        elif isinstance(node, Seq):
            if -len(node.lines) <= last < len(node.lines):
                node.lines[last] = None
            node.files[last % len(node)] = where


def _has(node, part) -> bool:
    if isinstance(node, dict):
        return part in node
    return isinstance(part, int) and -len(node) <= part < len(node)
