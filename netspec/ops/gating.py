"""Weights across the splits of the channels: ``radix_softmax`` (split attention)."""
from __future__ import annotations

from . import modules as M
from .base import Arg, Feat, Node, op
from .layers import leaf_node


@op("radix_softmax", {
    "radix": Arg("int", 2, doc="splits whose weights sum to 1 per channel"),
    "groups": Arg("int", 1, doc="channel groups (cardinality), each with its own splits"),
}, scalar="radix")
def radix_softmax(a, feat: Feat, ctx) -> Node:
    """Softmax across the radix splits of the channels (ResNeSt, SKNet); sigmoid at radix 1."""
    c = feat.channels
    if a.radix < 1 or a.groups < 1 or c % (a.radix * a.groups):
        raise a.loc.error(f"radix_softmax with radix {a.radix} and {a.groups} groups needs "
                          f"channels divisible by {a.radix * a.groups}, got {c}")
    return leaf_node("radix_softmax", a, feat, feat, lambda: M.RadixSoftmax(a.radix, a.groups),
                 info=f"radix {a.radix} groups {a.groups}")
