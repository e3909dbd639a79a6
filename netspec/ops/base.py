"""The resolved tree and the one way to declare a primitive: :func:`op`.

Each primitive and combinator is an :class:`Op`: its arguments, its shape rule (``resolve``, which
returns a :class:`Node` that knows its output shape, parameters, MACs and how to ``build`` its
``nn.Module``) and what the resolve pass needs to know of it (which arguments are channels that
``scale.width`` multiplies, whether its output is a fresh tensor an activation may overwrite).
Shape rules and module builders live side by side, one file per family; every module of this
package is imported by ``netspec.ops``, and a user's own file registers its ops the same way.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from torch import nn

from ..lang.source import Loc

REQUIRED = object()
Shape = tuple[int, ...]


@dataclass(frozen=True)
class Feat:
    """What flows between layers: a shape (C, H, W) or (F,) and its receptive field and jump."""

    shape: Shape
    rf: tuple[int, int] = (1, 1)
    jump: tuple[int, int] = (1, 1)

    @property
    def channels(self) -> int:
        return self.shape[0]

    @property
    def spatial(self) -> tuple[int, int] | None:
        return (self.shape[1], self.shape[2]) if len(self.shape) == 3 else None

    def describe(self) -> str:
        return "x".join(str(s) for s in self.shape)

    def after(self, shape: Shape, k=(1, 1), s=(1, 1), d=(1, 1)) -> Feat:
        """The feature after a window op of kernel k, stride s, dilation d."""
        rf = tuple(self.rf[i] + (k[i] - 1) * d[i] * self.jump[i] for i in range(2))
        jump = tuple(self.jump[i] * s[i] for i in range(2))
        return Feat(shape, rf, jump)

    def with_shape(self, shape: Shape) -> Feat:
        return Feat(shape, self.rf, self.jump)


def merge_rf(feats: list[Feat], shape: Shape) -> Feat:
    """Receptive field of a merge: the widest input's."""
    rf = tuple(max(f.rf[i] for f in feats) for i in range(2))
    jump = tuple(max(f.jump[i] for f in feats) for i in range(2))
    return Feat(shape, rf, jump)


@dataclass(eq=False)
class Node:
    """One resolved layer or combinator."""

    kind: str
    inp: Feat
    out: Feat
    loc: Loc = field(default_factory=Loc)
    params: int = 0          # this node's own parameters (children add theirs)
    macs: int = 0            # this node's own multiply-accumulates per sample
    children: list[tuple[str, Node]] = field(default_factory=list)
    info: str = ""           # short description for the summary table (e.g. "3x3/2, 64")
    fresh: bool | None = None  # output is a tensor made here (None: as its op declares)

    def build(self) -> nn.Module:  # pragma: no cover - every concrete node overrides it
        raise NotImplementedError(self.kind)

    def overwritable(self) -> bool:
        """Whether the built module's output may be changed in place (a residual adds its shortcut
        into it, as torchvision's ResNet does): a fresh tensor that its last operation does not
        keep for the backward pass (a conv's or a norm's output; not a ReLU's, which it keeps)."""
        return False

    # -- totals over the subtree -------------------------------------------------------------
    @property
    def total_params(self) -> int:
        return self.params + sum(c.total_params for _, c in self.children)

    @property
    def total_macs(self) -> int:
        return self.macs + sum(c.total_macs for _, c in self.children)

    @property
    def is_leaf(self) -> bool:
        return not self.children

    def walk(self, prefix: str = "", depth: int = 0) -> Iterator[tuple[str, int, Node]]:
        """(qualified module name, depth, node) for this node and all below, in build order."""
        yield prefix, depth, self
        for name, child in self.children:
            # a named block builds to its body's module: the body keeps the block's name
            sub = prefix if isinstance(self, Transparent) else (f"{prefix}.{name}" if prefix else name)
            yield from child.walk(sub, depth + 1)

    def leaves(self) -> Iterator[tuple[str, Node]]:
        for name, _, node in self.walk():
            if node.is_leaf:
                yield name, node


class Transparent(Node):
    """A wrapper node (a named block) that adds a report level but no module level."""

    def build(self) -> nn.Module:
        return self.children[0][1].build()

    def overwritable(self) -> bool:
        return self.children[0][1].overwritable()


class Names:
    """A live view of a registry's names (and fixed extras such as ``none``): the values an
    argument accepts, so that a norm or activation registered later is accepted too."""

    def __init__(self, registry: dict, *extra: str):
        self.registry, self.extra = registry, extra

    def __iter__(self) -> Iterator[str]:
        yield from self.registry
        yield from (e for e in self.extra if e not in self.registry)

    def __contains__(self, name) -> bool:
        if not isinstance(name, str):       # a list or mapping written where a name goes
            return False
        return name in self.registry or name in self.extra

    def __repr__(self) -> str:
        return f"Names({', '.join(self)})"


@dataclass
class Arg:
    """One argument of an op: its type, default and (for strings) the values it accepts."""

    type: str = "int"            # int, float, bool, str, pair, node, nodes, any
    default: object = REQUIRED
    choices: tuple[str, ...] | Names | None = None
    doc: str = ""


@dataclass
class Op:
    """A primitive or combinator of the language, and what the resolve pass must know of it."""

    name: str
    args: dict[str, Arg]
    resolve: Callable  # (args: Args, feat: Feat, ctx) -> Node
    scalar: str | None = None    # the argument a scalar form fills: `dropout: 0.5`, `pool: max`
    doc: str = ""
    channels: tuple[str, ...] = ()   # arguments that scale.width multiplies (conv's `c`)
    fresh: bool = False          # its output is a new tensor: an activation after it may run in place


class Args(dict):
    """Evaluated arguments with attribute access and the location of each key."""

    def __init__(self, values: dict, loc: Loc, locs: dict[str, Loc]):
        super().__init__(values)
        self.loc, self.locs = loc, locs

    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None

    def at(self, key: str) -> Loc:
        return self.locs.get(key, self.loc)


OPS: dict[str, Op] = {}


def op(name: str, args: dict[str, Arg], scalar: str | None = None, doc: str = "", *,
       channels: tuple[str, ...] = (), fresh: bool = False):
    """Register ``fn(args, feat, ctx) -> Node`` as the op ``name`` of the language.

    ``channels``: the arguments that are channel counts (``scale.width`` multiplies them outside
    blocks); ``fresh``: the op's output is a tensor it made, so an activation right after it in a
    sequence may run in place.
    """
    unknown = [c for c in channels if c not in args]
    if unknown:
        raise ValueError(f"op '{name}': channels {unknown} are not among its arguments")

    def deco(fn):
        OPS[name] = Op(name, args, fn, scalar, doc or (fn.__doc__ or "").strip(),
                       tuple(channels), fresh)
        return fn
    return deco


# -- shape arithmetic shared by conv and pool ------------------------------------------------

def pair(v) -> tuple[int, int]:
    return (int(v[0]), int(v[1])) if isinstance(v, (list, tuple)) else (int(v), int(v))


def window_out(n: int, k: int, s: int, p: int, d: int = 1, ceil: bool = False) -> int:
    """torch's output length of a conv/pool window (ceil mode drops a window that starts in padding)."""
    span = n + 2 * p - d * (k - 1) - 1
    if ceil:
        out = math.ceil(span / s) + 1
        if (out - 1) * s >= n + p:
            out -= 1
        return out
    return span // s + 1
