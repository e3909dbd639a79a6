"""The two passes joined: spec -> resolved tree -> ``nn.Module`` (and the report of the tree)."""
from __future__ import annotations

from .analyze import Report, report_of
from .blocks import included_blocks
from .lang.loader import load_spec
from .lang.network import NetworkNode, gc_paused, resolve_spec
from .lang.source import plain


def resolve(spec, overrides=(), *, sampler=None) -> NetworkNode:
    """Load, override and resolve a spec (a zoo name, a YAML path or a dict)."""
    with gc_paused():
        loaded = load_spec(spec, overrides)
        net = resolve_spec(loaded, sampler=sampler, extra_blocks=included_blocks(loaded))
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
    with gc_paused():
        net = resolve(spec, overrides)
        return report_of(net, net.spec_name)
