"""The resolve pass over layers: spec data -> a tree of nodes that know their shapes, params, MACs.

Here the language's rules for layers live: the forms a layer can be written in, the node-level keys
(``n`` repeats with the stride on the first repeat only, ``if`` conditions, ``name``, ``width``),
width and depth scaling, and block expansion with argument scopes. The ops (``netspec.ops``) hold
each primitive's own rule; :mod:`netspec.lang.network` reads the top-level keys around this.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from torch import nn

from ..blocks import PYTHON_BLOCKS, BlockDef
from ..errors import SpecError, did_you_mean
from ..ops.base import OPS, REQUIRED, Args, Feat, Node, Transparent
from ..ops.combinators import sequence
from ..ops.norms import NORMS
from .choices import is_choice
from .names import TensorNames, read_into
from .rounding import make_divisible
from .source import Loc
from .values import MAX_CHANNELS, MAX_LAYER_PARAMS, Values, short

NODE_KEYS = ("n", "if", "name", "width", "from")
MAX_REPEATS, MAX_LAYERS = 10_000, 20_000     # resnet1202 resolves 2403 layers
MAX_BLOCK_DEPTH = 32
MODULE_ATTRS = frozenset(dir(nn.Sequential()))   # names a submodule cannot take


class BlockNode(Transparent):
    """A named block: a report level over its body, which it builds to."""


class Ctx(Values):
    """The state of one resolve pass, and the calls an op or a Python block makes into it.

    ``local`` is the one place a combinator keeps its own state during the pass (the pair of cell
    states of a ``cells`` stack, the residuals on the drop-path schedule), keyed by its name:
    :meth:`let` sets a value for the extent of a ``with`` block, :meth:`state` gets or creates one.
    """

    def __init__(self, *, scope: dict, defaults: dict, blocks: dict[str, BlockDef],
                 width: float, depth: float, divisor: int, depth_round: str,
                 sampler: Callable | None = None):
        super().__init__(scope, sampler)
        self.defaults = defaults
        self.blocks = blocks
        self.width, self.depth, self.divisor, self.depth_round = width, depth, divisor, depth_round
        self.block_depth = 0          # > 0 inside a block body: no width/depth scaling there
        self.section = ""
        self.globals: set[str] = set()    # names a block body sees besides its own arguments
        self.layers = 0                   # resolved so far: a runaway `n` stops at MAX_LAYERS
        self.local: dict[str, object] = {}
        self.names = TensorNames(None)    # the named tensors (the network's pass replaces it)

    # -- what ops and Python blocks ask of the pass ----------------------------------------------
    def default(self, key: str):
        return self.defaults[key]

    def norm_kw(self, kind: str) -> dict:
        """The keyword arguments of norm ``kind`` from the network's defaults."""
        return NORMS[kind].kwargs(self.defaults) if kind in NORMS else {}

    def state(self, key: str, factory: Callable[[], object] = dict):
        """The combinator state under ``key``, created by ``factory`` when first asked for."""
        if key not in self.local:
            self.local[key] = factory()
        return self.local[key]

    @contextmanager
    def let(self, key: str, value) -> Iterator[None]:
        """``local[key] = value`` inside the ``with`` block; the previous value after it."""
        missing = object()
        saved = self.local.get(key, missing)
        self.local[key] = value
        try:
            yield
        finally:
            if saved is missing:
                self.local.pop(key, None)
            else:
                self.local[key] = saved

    @contextmanager
    def unscaled(self) -> Iterator[None]:
        """Resolve spec data an op writes itself (its channels are final): no width or depth
        scaling and ``in`` fixed, as inside a block body."""
        self.block_depth += 1
        try:
            yield
        finally:
            self.block_depth -= 1

    def lookup(self, name: str):
        """The block or op ``name`` (a spec's blocks first), or None."""
        return self.blocks.get(name) or OPS.get(name) or PYTHON_BLOCKS.get(name)

    def known_names(self) -> set[str]:
        return set(OPS) | set(self.blocks) | set(PYTHON_BLOCKS)

    def resolve(self, raw, feat: Feat, loc: Loc, *, index_names: bool = False) -> Node:
        """Resolve one layer, combinator, block call or list of them.

        A layer whose ``if:`` is false resolves to an empty sequence (identity), so that
        combinators and Python blocks always get a node.
        """
        node = self.resolve_or_none(raw, feat, loc, index_names=index_names)
        return sequence([], feat, loc) if node is None else node

    def resolve_or_none(self, raw, feat: Feat, loc: Loc, *,
                        index_names: bool = False) -> Node | None:
        """As :meth:`resolve`, but None for a layer whose ``if:`` is false."""
        if isinstance(raw, list):
            return self.sequence(raw, feat, loc, index_names)
        if isinstance(raw, str):
            return self._call(raw, None, feat, loc)
        if isinstance(raw, dict):
            if is_choice(raw):
                return self.resolve_or_none(self.choice(raw, loc), feat, loc)
            if len(raw) != 1:
                keys = ", ".join(map(str, raw))
                added = [k for k in raw if k in getattr(raw, "files", {})]
                if added:                        # a key an override added: blame the override
                    loc = loc.key(raw, added[-1])
                raise loc.error(f"a layer is a mapping with exactly one name (conv, pool, a block, "
                                f"...) but this one has {len(raw)} keys: {keys}; "
                                f"put each layer in its own list item")
            (name, value), = raw.items()
            return self._call(str(name), value, feat, loc.key(raw, name))
        raise loc.error(f"expected a layer (a name, a mapping or a list), got {short(raw)}")

    def sequence(self, items: list, feat: Feat, loc: Loc, index_names: bool = False) -> Node:
        """The layers of a list in order; a single layer stands for itself unless indexed."""
        children, counts, names, cur = [], {}, set(), feat
        for i, item in enumerate(items):
            child = self.resolve_or_none(item, cur, loc.key(items, i))
            if child is None:
                continue                                   # `if:` was false
            if index_names:
                name = str(i)
            elif getattr(child, "module_name", None):
                name = child.module_name
            else:
                counts[child.kind] = counts.get(child.kind, 0) + 1
                name = f"{child.kind}{counts[child.kind]}"
            if name in names:
                raise loc.key(items, i).error(f"two layers are named '{name}'")
            names.add(name)
            children.append((name, child))
            cur = child.out
        if len(children) == 1 and not index_names:
            return children[0][1]
        return sequence(children, feat, loc)

    # -- one call: node keys, repeats, then the op or block ----------------------------------
    def _target(self, name: str, loc: Loc):
        target = self.lookup(name)
        if target is None:
            raise loc.error(f"unknown layer or block '{name}'{did_you_mean(name, self.known_names())}")
        return target

    def _call(self, name: str, value, feat: Feat, loc: Loc) -> Node | None:
        target = self._target(name, loc)
        kwargs, locs = self._call_args(name, target, value, loc)
        node_keys = {k: kwargs.pop(k) for k in NODE_KEYS if k in kwargs and k not in target.args}
        node_locs = {k: locs.get(k, loc) for k in node_keys}
        if "if" in node_keys and not self.eval(node_keys["if"], node_locs["if"]):
            return None
        self._check_known(name, target, kwargs, locs)
        read = None
        if "from" in node_keys:            # the layer reads a named tensor, not the one before
            read = self.names.read(node_keys["from"], node_locs["from"])
            feat = read[1]
        scaled = self.block_depth == 0
        width = self._width(node_keys, node_locs)
        n = self._repeats(target, kwargs, locs, node_keys, node_locs, scaled)
        nodes, cur = [], feat
        for r in range(n or 1):
            self.layers += 1
            if self.layers > MAX_LAYERS:
                raise loc.error(f"the network has more than {MAX_LAYERS} layers; "
                                f"is a repeat count 'n' far too large?")
            if scaled:                     # in a block body, `in` stays the block's input
                self.scope = {**self.scope, "in": cur.channels}
            args = dict(kwargs)
            if r > 0 and "s" in kwargs:
                args["s"] = 1          # a written stride applies to the first repeat only
            node = self._invoke(name, target, args, locs, cur, loc,
                                target.channels if scaled else (), width)
            nodes.append((f"block{r}", node))
            cur = node.out
        if n is not None:
            result = sequence(nodes, feat, loc, kind="repeat")
            result.info = f"x{n}"
        else:
            result = nodes[0][1]
        if read is not None:
            read_into(result, read[0], node_keys["from"])
        if "name" in node_keys:
            result.module_name = _module_name(node_keys["name"], node_locs["name"])
            self.names.define(result.module_name, result, node_locs["name"])
        return result

    def _check_known(self, name: str, target, kwargs: dict, locs: dict) -> None:
        declared = list(target.args)
        unknown = [k for k in kwargs if k not in declared]
        if not unknown:
            return
        k = unknown[0]
        hint = did_you_mean(k, declared + list(NODE_KEYS))
        layer_args = [a for a, arg in target.args.items()
                      if getattr(arg, "type", "") in ("node", "nodes")]
        if not hint and layer_args and self.lookup(k) is not None:
            hint = f" ('{k}' is a layer: put it under '{layer_args[0]}:')"
        raise locs[k].error(f"{name} has no argument '{k}'{hint}; "
                            f"its arguments: {', '.join(declared) or 'none'}")

    def _width(self, node_keys: dict, node_locs: dict) -> float:
        if "width" not in node_keys:
            return self.width
        width = self.number("width", "float", node_keys["width"], node_locs["width"])
        if width <= 0:
            raise node_locs["width"].error(f"'width' must be positive, got {width:g}")
        return width

    def _repeats(self, target, kwargs, locs, node_keys, node_locs, scaled) -> int | None:
        """The layer's ``n`` (after depth scaling in stage rows), or None when it has none; a
        block's own ``n`` argument is scaled in place instead."""
        n = None
        if "n" in node_keys:
            n = self.number("n", "int", node_keys["n"], node_locs["n"])
            if n < 1:
                raise node_locs["n"].error(f"'n' (repeats) must be at least 1, got {n}")
        if scaled and self.section == "stages":
            if n is not None:
                n = self._scale_depth(n)
            elif "n" in target.args and "n" in kwargs:
                kwargs["n"] = self._scale_depth(self.number("n", "int", kwargs["n"], locs["n"]))
        if n is not None and n > MAX_REPEATS:
            raise node_locs["n"].error(f"'n' is {n} repeats (after depth scaling); "
                                       f"at most {MAX_REPEATS}")
        return n

    def _scale_depth(self, n: int) -> int:
        if self.depth == 1.0:
            return n
        rounding = {"ceil": math.ceil, "round": round, "floor": math.floor}[self.depth_round]
        return max(1, int(rounding(n * self.depth)))

    def _call_args(self, name, target, value, loc: Loc) -> tuple[dict, dict]:
        """The written arguments (raw) and their locations, from any of the call forms."""
        if value is None:
            return {}, {}
        if isinstance(value, dict) and not is_choice(value):
            return dict(value), {k: loc.key(value, k) for k in value}
        declared = list(target.args)
        if isinstance(target, BlockDef):
            if isinstance(value, list):                     # positional: `inception: [64, 96, ...]`
                if len(value) > len(declared):
                    raise loc.error(f"{name} takes at most {len(declared)} positional arguments "
                                    f"({', '.join(declared)}), got {len(value)}")
                return dict(zip(declared, value)), {k: loc.key(value, i)
                                                    for i, k in enumerate(declared[:len(value)])}
            if not declared:
                raise loc.error(f"{name} takes no arguments")
            return {declared[0]: value}, {declared[0]: loc}
        scalar = target.scalar
        if scalar is None:
            raise loc.error(f"{name} needs a mapping of arguments ({', '.join(declared)}), "
                            f"got {short(value)}")
        return {scalar: value}, {scalar: loc}

    def _invoke(self, name, target, kwargs, locs, feat: Feat, loc: Loc, channels, width) -> Node:
        if isinstance(target, BlockDef):
            return self._block(target, kwargs, locs, feat, loc, channels, width)
        values = {}
        for key, arg in target.args.items():
            if key in kwargs:
                v = self.typed(key, arg, kwargs[key], locs.get(key, loc))
            elif arg.default is REQUIRED:
                raise loc.error(f"{name} is missing its required argument '{key}'")
            else:
                v = arg.default
            if key in channels and isinstance(v, int) and v is not None:
                v = self._scale_width(v, width)
            if key in target.channels:
                _check_channels(key, v, locs.get(key, loc), key in channels and width != 1.0)
            values[key] = v
        node = target.resolve(Args(values, loc, locs), feat, self)
        _check_size(name, node, loc)
        if node.fresh is None and node.kind == name:
            node.fresh = target.fresh
        return node

    def _scale_width(self, c: int, width: float) -> int:
        if width == 1.0:
            return c
        return make_divisible(c * width, self.divisor)

    # -- blocks -------------------------------------------------------------------------------
    def _block(self, block: BlockDef, kwargs, locs, feat: Feat, loc: Loc, channels, width) -> Node:
        if self.block_depth >= MAX_BLOCK_DEPTH:
            e = loc.error(f"blocks nest more than {MAX_BLOCK_DEPTH} deep; does block "
                          f"'{block.name}' use itself?")
            e.runaway = True
            raise e
        scope = self._block_scope(block, kwargs, locs, feat, loc, channels, width)
        saved = self.scope
        self.scope = scope
        self.block_depth += 1
        try:
            with self.names.enter(f"block '{block.name}'", block.body):
                body = self.resolve_or_none(block.body, feat, block.loc)
        except SpecError as e:
            if getattr(e, "runaway", False):    # runaway recursion: report the outermost call
                e2 = loc.error(e.reason)
                e2.runaway = True
                raise e2 from None
            if e.file == loc.file and e.line == loc.line:
                raise
            where = f"{e.file}:{e.line}" if e.line is not None else e.file
            raise SpecError(f"in block '{block.name}' ({where} {e.path}): {e.reason}",
                            file=loc.file, line=loc.line, path=loc.path) from None
        finally:
            self.scope = saved
            self.block_depth -= 1
        if body is None:
            raise loc.error(f"block '{block.name}' has no layers left for these arguments")
        node = BlockNode(block.name, feat, body.out, loc, children=[("body", body)])
        node.info = ", ".join(f"{k}={scope[k]}" for k in block.args if k in kwargs)
        return node

    def _block_scope(self, block: BlockDef, kwargs, locs, feat: Feat, loc: Loc, channels,
                     width) -> dict:
        """What the block's body sees: its arguments, ``in`` and the network's globals."""
        scope = {k: v for k, v in self.scope.items() if k.startswith("_") or k in self.globals}
        scope["in"] = feat.channels
        for key, default in block.args.items():
            if key in kwargs:
                v = self.lenient(kwargs[key], locs.get(key, loc))
            elif default is REQUIRED:
                raise loc.error(f"block '{block.name}' is missing its required argument '{key}'")
            else:
                v = self.lenient(default, block.arg_locs.get(key, block.loc), scope)
            if key in channels:
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    raise locs.get(key, loc).error(f"'{key}' must be a number of channels, "
                                                   f"got {short(v)}")
                v = self._scale_width(int(v), width) if float(v).is_integer() else v
                _check_channels(key, v, locs.get(key, loc), width != 1.0)
            scope[key] = v
        return scope


def _check_channels(key: str, v, loc: Loc, scaled: bool) -> None:
    """A channel count torch could allocate, refused at its key before the op sees it."""
    if isinstance(v, (int, float)) and not isinstance(v, bool) and v > MAX_CHANNELS:
        after = " (after width scaling)" if scaled else ""
        raise loc.error(f"'{key}' is {v:,} channels{after}; at most {MAX_CHANNELS:,} "
                        f"(torch cannot allocate a layer that wide)")


def _check_size(name: str, node: Node, loc: Loc) -> None:
    """An op's output and own weights within what torch can allocate (a concat of wide branches,
    a linear layer of too many features, a conv between two very wide maps)."""
    if len(node.out.shape) == 3 and node.out.shape[0] > MAX_CHANNELS:   # a flattened map is fine
        raise loc.error(f"{name} gives {node.out.shape[0]:,} channels ({node.out.describe()}); "
                        f"at most {MAX_CHANNELS:,} (torch cannot allocate a layer that wide)")
    if node.params > MAX_LAYER_PARAMS:
        raise loc.error(f"{name} has {node.params:,} parameters; at most {MAX_LAYER_PARAMS:,} in "
                        f"one layer (torch cannot allocate them)")


def _module_name(mname, loc: Loc) -> str:
    if not isinstance(mname, str) or not mname.isidentifier():
        raise loc.error(f"a layer name must be an identifier, got {short(mname)}")
    if mname.startswith("_") or mname in MODULE_ATTRS:
        raise loc.error(f"a layer cannot be named '{mname}': torch's nn.Module uses that name; "
                        f"choose another")
    return mname
