"""Named blocks: YAML definitions (the built-in library lives beside this file) and Python blocks.

A YAML block is ``{args: {...}, channels: [...], <one layer or combinator>}``: its arguments with
defaults (``required`` for none), which arguments count as channels (they scale with the width
multiplier; default ``[c]``), and its body. Inside the body, expressions see the arguments, ``in``
(the block's input channels) and the network's variables.

A Python block, for what data can't say, is registered with :func:`register_block`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import SpecError, did_you_mean
from ..lang.loader import parsed_as
from ..lang.source import Loc, Map, Seq, load_file
from ..ops.base import OPS, REQUIRED, Arg, Op

META_KEYS = ("args", "channels", "doc")


@dataclass
class BlockDef:
    name: str
    args: dict            # name -> raw default (REQUIRED for none), in declaration order
    channels: list[str]
    body: object          # raw spec of the body
    loc: Loc              # where the body is written
    doc: str = ""
    arg_locs: dict = field(default_factory=dict)


def parse_block(name: str, raw, loc: Loc) -> BlockDef:
    if name in OPS:
        raise loc.error(f"block '{name}' has the name of a built-in layer; choose another name")
    if not isinstance(raw, dict):
        raise loc.error(f"block '{name}' must be a mapping with 'args' and a body")
    unknown_body = [k for k in raw if k not in META_KEYS]
    for k in unknown_body:              # a misspelt key (arg: for args:) is no body
        hint = did_you_mean(str(k), (*META_KEYS, "body"))
        if k != "body" and hint and k not in OPS and k not in PYTHON_BLOCKS:
            raise loc.key(raw, k).error(f"block '{name}' has an unknown key '{k}'{hint}; a block "
                                        f"is its args, channels, doc and one body")
    if "body" in raw:
        extra = [k for k in unknown_body if k != "body"]
        if extra:
            raise loc.key(raw, extra[0]).error(
                f"block '{name}' has both 'body' and '{extra[0]}'; put everything in 'body'")
        body_loc, body = loc.key(raw, "body"), raw["body"]
    elif len(unknown_body) == 1:
        key = unknown_body[0]
        body_loc, body = loc, Map({key: raw[key]}, file=getattr(raw, "file", loc.file),
                                   line=raw.line_of(key) if isinstance(raw, Map) else loc.line,
                                   lines={key: raw.line_of(key) if isinstance(raw, Map) else None})
    elif not unknown_body:
        raise loc.error(f"block '{name}' has no body (a layer, a list of layers or a combinator)")
    else:
        raise loc.error(f"block '{name}' has several bodies ({', '.join(map(str, unknown_body))});"
                        f" wrap them in a list under 'body'")
    args_raw = raw.get("args") or {}
    if not isinstance(args_raw, dict):
        raise loc.key(raw, "args").error("block args must be a mapping of name: default")
    args = {str(k): (REQUIRED if v == "required" else v) for k, v in args_raw.items()}
    arg_loc = loc.key(raw, "args")
    arg_locs = {k: arg_loc.key(args_raw, k) for k in args_raw}
    for k in args:
        if k in ("in", "if", "name", "width"):
            raise arg_locs[k].error(f"'{k}' is reserved and cannot be a block argument")
    channels = raw.get("channels", ["c"] if "c" in args else [])
    if isinstance(channels, str):
        channels = [channels]
    if not isinstance(channels, list) or any(c not in args for c in channels):
        raise loc.key(raw, "channels").error(
            f"channels must list arguments of the block ({', '.join(args)})")
    return BlockDef(name, args, list(channels), body, body_loc, str(raw.get("doc", "")), arg_locs)


def parse_library(raw, loc: Loc) -> dict[str, BlockDef]:
    if not isinstance(raw, dict):
        raise loc.error("blocks must be a mapping of block name to definition")
    return {str(k): parse_block(str(k), v, loc.key(raw, k)) for k, v in raw.items()}


_BUILTIN: dict[str, BlockDef] | None = None


def builtin_blocks() -> dict[str, BlockDef]:
    """The library shipped in ``netspec/blocks/*.yaml``."""
    global _BUILTIN
    if _BUILTIN is None:
        lib: dict[str, BlockDef] = {}
        for path in sorted(Path(__file__).parent.glob("*.yaml")):
            raw = load_file(path)
            lib.update(parse_library(raw.get("blocks", raw), Loc(str(path), 1, "blocks")))
        _BUILTIN = lib
    return _BUILTIN


def load_library(path: str | Path) -> dict[str, BlockDef]:
    """A user's block library file: ``blocks: {name: definition, ...}``."""
    raw = load_file(path)
    if not isinstance(raw, Map):
        raise SpecError("a block library must be a mapping", file=str(path), line=1)
    return parse_library(raw.get("blocks", raw), Loc(str(path), 1, "blocks"))


def included_blocks(spec: Map) -> dict[str, BlockDef]:
    """The blocks of the library files a spec names in ``include:`` (paths relative to it)."""
    raw = spec.get("include") or []
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list):
        raise SpecError("include must be a list of block library files", file=spec.file,
                        line=spec.line_of("include"), path="include")
    blocks = {}
    for i, item in enumerate(raw):
        path = Path(str(item))
        if not path.is_absolute() and spec.file_of("include") not in ("<spec>", "<dict>"):
            path = Path(spec.file_of("include")).parent / path
        if not path.is_file():
            line = raw.line_of(i) if hasattr(raw, "line_of") else spec.line_of("include")
            raise SpecError(f"no such block library: {item}", file=spec.file_of("include"),
                            line=line, path=f"include[{i}]")
        lib = load_file(path)
        if not isinstance(lib, Map):
            line = raw.line_of(i) if hasattr(raw, "line_of") else spec.line_of("include")
            raise SpecError(f"include '{item}' is not a block library: {path} holds "
                            f"{parsed_as(lib)}, not a mapping of block name to definition",
                            file=spec.file_of("include"), line=line, path=f"include[{i}]")
        blocks.update(load_library(path))
    return blocks


PYTHON_BLOCKS: dict[str, Op] = {}


def register_block(name: str, args: dict[str, Arg] | None = None, channels=("c",)):
    """Register a Python block: ``fn(args, feat, ctx) -> Node``.

    ``args`` declares its arguments like a built-in op's; ``ctx.resolve(raw, feat, loc)`` resolves
    sub-layers written as spec data, so a Python block can assemble primitives.
    """
    def deco(fn):
        if name in OPS:
            raise ValueError(f"'{name}' is a built-in layer")
        spec = Op(name, dict(args or {}), fn, doc=(fn.__doc__ or "").strip())
        spec.channels = tuple(c for c in channels if c in spec.args)
        PYTHON_BLOCKS[name] = spec
        return fn
    return deco


__all__ = ["BlockDef", "register_block", "builtin_blocks", "load_library", "parse_library",
           "included_blocks",
           "PYTHON_BLOCKS", "Seq"]
