"""The two passes joined: spec -> resolved tree -> ``nn.Module`` (and the report of the tree)."""
from __future__ import annotations

from pathlib import Path

from .analyze import Report, report_of
from .blocks import load_library
from .errors import SpecError
from .spec.loader import load_spec
from .spec.resolve import NetworkNode, resolve_spec
from .spec.source import Map, plain


def _includes(spec: Map) -> dict:
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
        blocks.update(load_library(path))
    return blocks


def resolve(spec, overrides=(), *, sampler=None) -> NetworkNode:
    """Load, override and resolve a spec (a zoo name, a YAML path or a dict)."""
    loaded = load_spec(spec, overrides)
    net = resolve_spec(loaded, sampler=sampler, extra_blocks=_includes(loaded))
    net.spec = plain(loaded)
    return net


def build(spec, overrides=()):
    """A plain ``nn.Module`` for the spec; its submodules are named after their place in it."""
    net = resolve(spec, overrides)
    model = net.build()
    model.spec = net.spec
    model.input_shape = net.inp.shape     # (C, H, W): port_weights runs an example through it
    return model


def analyze(spec, overrides=()) -> Report:
    """Shapes, parameters, MACs and activation sizes per layer, without allocating weights."""
    net = resolve(spec, overrides)
    return report_of(net, net.spec_name)
