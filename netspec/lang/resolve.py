"""The resolve pass: a loaded spec -> a tree of nodes that know their shapes, params and MACs.

Here the language's rules live: the forms a layer can be written in, node-level keys (``n`` repeat
with the stride on the first repeat only, ``if`` conditions, ``name``, ``width``), width and depth
scaling, block expansion with argument scopes, expression evaluation and the drop-path schedule.
"""
from __future__ import annotations

import math
from collections.abc import Callable

from torch import nn

from ..blocks import PYTHON_BLOCKS, BlockDef, builtin_blocks, parse_library
from ..errors import SpecError, did_you_mean
from ..ops import base as B
from ..ops.base import OPS, REQUIRED, Arg, Args, Feat, Node, Transparent
from ..ops.combinators import sequence
from ..ops.modules import ACTIVATIONS, NORMS
from .choices import is_choice
from .expr import ExprError, evaluate, is_expression, make_divisible, names_in
from .source import Loc, Map, Seq

NODE_KEYS = ("n", "if", "name", "width")
SECTIONS = ("stem", "stages", "head")
DEFAULTS = {"norm": "bn", "act": "relu", "bias": "auto", "bn_eps": 1e-5, "bn_momentum": 0.1,
            "order": "post", "gn_groups": 32}
CONV_CHANNELS = {"conv": ("c",)}
MAX_REPEATS, MAX_LAYERS = 10_000, 20_000     # resnet1202 resolves 2403 layers
MAX_BLOCK_DEPTH = 32
_MODULE_ATTRS = frozenset(dir(nn.Sequential()))   # names a submodule cannot take
_MAX_INT = 2**31 - 1        # no channel count, size or repeat comes near; torch can't build more


class BlockNode(Transparent):
    """A named block: a report level over its body, which it builds to."""


class Ctx:
    """State of one resolve pass."""

    def __init__(self, *, scope: dict, defaults: dict, blocks: dict[str, BlockDef],
                 width: float, depth: float, divisor: int, depth_round: str,
                 sampler: Callable | None = None):
        self.scope = scope
        self.defaults = defaults
        self.blocks = blocks
        self.width, self.depth, self.divisor, self.depth_round = width, depth, divisor, depth_round
        self.sampler = sampler
        self.block_depth = 0          # > 0 inside a block body: no width/depth scaling there
        self.section = ""
        self.auto_drop_path: list[Node] = []
        self.globals: set[str] = set()    # names a block body sees besides its own arguments
        self.layers = 0                   # resolved so far: a runaway `n` stops at MAX_LAYERS

    # -- defaults ---------------------------------------------------------------------------
    def default(self, key: str):
        return self.defaults[key]

    def norm_kw(self, kind: str) -> dict:
        if kind == "bn":
            return {"eps": self.defaults["bn_eps"], "momentum": self.defaults["bn_momentum"]}
        if kind == "gn":
            return {"eps": self.defaults["bn_eps"], "momentum": 0.0,
                    "groups": self.defaults["gn_groups"]}
        return {}

    # -- values -----------------------------------------------------------------------------
    def choice(self, raw, loc: Loc):
        """A search-space choice met where a concrete value is needed."""
        if self.sampler is None:
            raise loc.error(f"this is a search choice ({_short(raw)}); sample the space with "
                            f"netspec.search, or replace it with a value")
        return self.sampler(raw, loc)

    def eval(self, raw, loc: Loc, scope: dict | None = None):
        """Evaluate an expression string strictly (an unknown name is an error)."""
        scope = self.scope if scope is None else scope
        if is_choice(raw):
            raw = self.choice(raw, loc)
        if isinstance(raw, str):
            try:
                return evaluate(raw, scope)
            except ExprError as e:
                raise loc.error(str(e)) from None
        return raw

    def lenient(self, raw, loc: Loc, scope: dict | None = None):
        """Evaluate a string only if it is an expression over known names; else keep it."""
        scope = self.scope if scope is None else scope
        if is_choice(raw):
            raw = self.choice(raw, loc)
        if isinstance(raw, str) and is_expression(raw):
            names = names_in(raw)
            if names and all(n in scope for n in names) or (not names and _numeric(raw)):
                return self.eval(raw, loc, scope)
            if not names:                       # arithmetic on numbers alone: `se: 1/16`
                try:
                    return evaluate(raw, scope)
                except ExprError:
                    return raw
            if raw.isidentifier():
                return raw
            if any(op in raw for op in "+-*/%()<>=") and names:
                missing = sorted(n for n in names if n not in scope)
                raise loc.error(f"in expression '{raw}': unknown name '{missing[0]}'"
                                f"{did_you_mean(missing[0], scope)}")
        if isinstance(raw, list) and not isinstance(raw, Seq):
            return [self.lenient(v, loc, scope) for v in raw]
        return raw

    def typed(self, name: str, arg: Arg, raw, loc: Loc):
        """A value of the declared type, or a SpecError that says what was expected."""
        t = arg.type
        if t in ("node", "nodes"):
            return raw
        if raw is None:
            if arg.default is None:
                return None
            raise loc.error(f"'{name}' needs a value")
        if t == "any":
            return self.lenient(raw, loc)
        if t == "str":
            if is_choice(raw):
                raw = self.choice(raw, loc)
            if isinstance(raw, str) and raw in self.scope and raw not in (arg.choices or ()):
                raw = self.scope[raw]          # a block argument passed through: `act: act`
                if raw is None:
                    return None
            elif isinstance(raw, str) and not raw.isidentifier() and is_expression(raw) \
                    and names_in(raw) and names_in(raw) <= set(self.scope):
                # a name chosen by an expression: `merge: "'add' if s == 1 else 'concat'"`
                raw = self.eval(raw, loc)
            if not isinstance(raw, str):
                raise loc.error(f"'{name}' must be a name, got {raw!r}")
            if arg.choices and raw not in arg.choices:
                raise loc.error(f"unknown {name} '{raw}'{did_you_mean(raw, arg.choices)}; "
                                f"use one of {', '.join(arg.choices)}")
            return raw
        if t == "pair":
            if isinstance(raw, list):
                if len(raw) != 2:
                    raise loc.error(f"'{name}' must be a number or a pair [h, w], got {raw!r}")
                return tuple(self._number(name, "int", v, loc) for v in raw)
            return self._number(name, "int", raw, loc)
        return self._number(name, t, raw, loc)

    def _number(self, name: str, t: str, raw, loc: Loc):
        value = self.eval(raw, loc)
        if t == "bool":
            if not isinstance(value, bool):
                raise loc.error(f"'{name}' must be true or false, got {value!r}")
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise loc.error(f"'{name}' must be a number, got {_short(value)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise loc.error(f"'{name}' must be a finite number, got {value}")
        if abs(value) > _MAX_INT:
            raise loc.error(f"'{name}' is out of range: {_short(value)}")
        if t == "int":
            if isinstance(value, float):
                if not value.is_integer():
                    shown = f" from '{raw}'" if isinstance(raw, str) else ""
                    raise loc.error(f"'{name}' must be a whole number, got {value:g}{shown}; "
                                    f"use round(), ceil() or floor()")
                value = int(value)
            return value
        return float(value)

    # -- nodes ------------------------------------------------------------------------------
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
            return self._sequence(raw, feat, loc, index_names)
        if isinstance(raw, str):
            return self._call(raw, None, feat, loc)
        if isinstance(raw, dict):
            if is_choice(raw):
                return self.resolve_or_none(self.choice(raw, loc), feat, loc)
            if len(raw) != 1:
                keys = ", ".join(map(str, raw))
                raise loc.error(f"a layer is a mapping with exactly one name (conv, pool, a block, "
                                f"...) but this one has {len(raw)} keys: {keys}; "
                                f"put each layer in its own list item")
            (name, value), = raw.items()
            return self._call(str(name), value, feat, loc.key(raw, name))
        raise loc.error(f"expected a layer (a name, a mapping or a list), got {raw!r}")

    def _sequence(self, items: list, feat: Feat, loc: Loc, index_names: bool) -> Node:
        children, counts, cur = [], {}, feat
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
            if any(n == name for n, _ in children):
                raise loc.key(items, i).error(f"two layers are named '{name}'")
            children.append((name, child))
            cur = child.out
        if len(children) == 1 and not index_names:
            return children[0][1]
        return sequence(children, feat, loc)

    def _lookup(self, name: str, loc: Loc):
        if name in self.blocks:
            return self.blocks[name]
        if name in OPS:
            return OPS[name]
        if name in PYTHON_BLOCKS:
            return PYTHON_BLOCKS[name]
        known = set(OPS) | set(self.blocks) | set(PYTHON_BLOCKS)
        raise loc.error(f"unknown layer or block '{name}'{did_you_mean(name, known)}")

    def _call(self, name: str, value, feat: Feat, loc: Loc) -> Node | None:
        target = self._lookup(name, loc)
        declared = list(target.args)
        kwargs, locs = self._call_args(name, target, value, loc)
        node_keys = {k: kwargs.pop(k) for k in NODE_KEYS if k in kwargs and k not in declared}
        node_locs = {k: locs.get(k, loc) for k in node_keys}
        if "if" in node_keys and not self.eval(node_keys["if"], node_locs["if"]):
            return None
        unknown = [k for k in kwargs if k not in declared]
        if unknown:
            k = unknown[0]
            hint = did_you_mean(k, declared + list(NODE_KEYS))
            layer_args = [a for a, arg in target.args.items()
                          if getattr(arg, "type", "") in ("node", "nodes")]
            if not hint and layer_args and (k in OPS or k in self.blocks or k in PYTHON_BLOCKS):
                hint = f" ('{k}' is a layer: put it under '{layer_args[0]}:')"
            raise locs[k].error(f"{name} has no argument '{k}'{hint}; "
                                f"its arguments: {', '.join(declared) or 'none'}")
        scaled = self.block_depth == 0
        channels = target.channels if isinstance(target, BlockDef) else \
            getattr(target, "channels", CONV_CHANNELS.get(name, ()))
        width = self.width
        if "width" in node_keys:
            width = self._number("width", "float", node_keys["width"], node_locs["width"])
            if width <= 0:
                raise node_locs["width"].error(f"'width' must be positive, got {width:g}")
        n = None
        if "n" in node_keys:
            n = self._number("n", "int", node_keys["n"], node_locs["n"])
            if n < 1:
                raise node_locs["n"].error(f"'n' (repeats) must be at least 1, got {n}")
        if scaled and self.section == "stages":
            if n is not None:
                n = self._scale_depth(n)
            elif "n" in declared and "n" in kwargs:
                kwargs["n"] = self._scale_depth(self._number("n", "int", kwargs["n"], locs["n"]))
        if n is not None and n > MAX_REPEATS:
            raise node_locs["n"].error(f"'n' is {n} repeats (after depth scaling); "
                                       f"at most {MAX_REPEATS}")
        repeats = n or 1
        nodes, cur = [], feat
        for r in range(repeats):
            self.layers += 1
            if self.layers > MAX_LAYERS:
                raise loc.error(f"the network has more than {MAX_LAYERS} layers; "
                                f"is a repeat count 'n' far too large?")
            if self.block_depth == 0:      # in a block body, `in` stays the block's input
                self.scope = {**self.scope, "in": cur.channels}
            args = dict(kwargs)
            if r > 0 and "s" in kwargs:
                args["s"] = 1          # a written stride applies to the first repeat only
            node = self._invoke(name, target, args, locs, cur, loc, channels if scaled else (),
                                width)
            nodes.append((f"block{r}", node))
            cur = node.out
        if n is not None:
            result = sequence(nodes, feat, loc, kind="repeat")
            result.info = f"x{n}"
        else:
            result = nodes[0][1]
        if "name" in node_keys:
            mname = node_keys["name"]
            if not isinstance(mname, str) or not mname.isidentifier():
                raise node_locs["name"].error(f"a layer name must be an identifier, got {mname!r}")
            if mname.startswith("_") or mname in _MODULE_ATTRS:
                raise node_locs["name"].error(f"a layer cannot be named '{mname}': torch's "
                                              f"nn.Module uses that name; choose another")
            result.module_name = mname
        return result

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
                            f"got {value!r}")
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
            values[key] = v
        return target.resolve(Args(values, loc, locs), feat, self)

    def _scale_width(self, c: int, width: float) -> int:
        if width == 1.0:
            return c
        return make_divisible(c * width, self.divisor)

    def _block(self, block: BlockDef, kwargs, locs, feat: Feat, loc: Loc, channels, width) -> Node:
        if self.block_depth >= MAX_BLOCK_DEPTH:
            e = loc.error(f"blocks nest more than {MAX_BLOCK_DEPTH} deep; does block "
                          f"'{block.name}' use itself?")
            e.runaway = True
            raise e
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
                                                   f"got {v!r}")
                v = self._scale_width(int(v), width) if float(v).is_integer() else v
            scope[key] = v
        saved = self.scope
        self.scope = scope
        self.block_depth += 1
        try:
            body = self.resolve_or_none(block.body, feat, block.loc)
        except SpecError as e:
            if getattr(e, "runaway", False):    # runaway recursion: report the outermost call
                e2 = loc.error(e.reason)
                e2.runaway = True
                raise e2 from None
            if e.file == loc.file and e.line == loc.line:
                raise
            raise SpecError(f"in block '{block.name}' ({e.file}:{e.line} {e.path}): {e.reason}",
                            file=loc.file, line=loc.line, path=loc.path) from None
        finally:
            self.scope = saved
            self.block_depth -= 1
        if body is None:
            raise loc.error(f"block '{block.name}' has no layers left for these arguments")
        node = BlockNode(block.name, feat, body.out, loc, children=[("body", body)])
        node.info = ", ".join(f"{k}={scope[k]}" for k in block.args if k in kwargs)
        return node


def _numeric(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _short(raw) -> str:
    try:
        text = repr(dict(raw)) if isinstance(raw, dict) else repr(raw)
    except ValueError:                    # an int too long to print
        return "a number with too many digits"
    return text if len(text) < 60 else text[:57] + "..."


# -- the whole network ----------------------------------------------------------------------------

TOP_KEYS = ("name", "paper", "doc", "reference", "base", "include", "input", "num_classes",
            "scale", "defaults", "vars", "drop_path", "stem", "stages", "head", "blocks")
INPUT_KEYS = ("channels", "size")
SCALE_KEYS = ("width", "depth", "resolution", "divisor", "depth_round",
              "phi", "alpha", "beta", "gamma")
# EfficientNet's compound scaling: depth alpha^phi, width beta^phi, resolution gamma^phi
COMPOUND = {"alpha": 1.2, "beta": 1.1, "gamma": 1.15}


class NetworkNode(Node):
    def build(self):
        from ..ops.modules import Network
        return Network({name: child.build() for name, child in self.children},
                       spec_name=self.spec_name)


def _section(spec: Map, key: str, allowed, loc: Loc) -> tuple[dict, Loc]:
    raw = spec.get(key)
    sloc = loc.key(spec, key)
    if raw is None:
        return {}, sloc
    if not isinstance(raw, dict):
        raise sloc.error(f"'{key}' must be a mapping ({', '.join(allowed)})")
    for k in raw:
        if k not in allowed:
            raise sloc.key(raw, k).error(f"unknown key '{k}' in {key}{did_you_mean(k, allowed)}; "
                                         f"allowed: {', '.join(allowed)}")
    return raw, sloc


def resolve_spec(spec: Map, *, sampler: Callable | None = None, extra_blocks=None) -> NetworkNode:
    """Resolve a loaded, merged and overridden spec into a NetworkNode."""
    root = Loc(spec.file, spec.line, "")
    for k in spec:
        if k not in TOP_KEYS:
            raise root.key(spec, k).error(f"unknown top-level key '{k}'{did_you_mean(k, TOP_KEYS)};"
                                          f" allowed: {', '.join(TOP_KEYS)}")
    blocks = dict(builtin_blocks())
    blocks.update(extra_blocks or {})
    if spec.get("blocks") is not None:
        blocks.update(parse_library(spec["blocks"], root.key(spec, "blocks")))

    # variables first: everything else may use them
    scope: dict = {}
    probe = Ctx(scope=scope, defaults=dict(DEFAULTS), blocks=blocks, width=1.0, depth=1.0,
                divisor=8, depth_round="ceil", sampler=sampler)
    vars_raw = spec.get("vars") or {}
    vloc = root.key(spec, "vars")
    if not isinstance(vars_raw, dict):
        raise vloc.error("vars must be a mapping of name: value")
    for k, v in vars_raw.items():
        if not str(k).isidentifier():
            raise vloc.key(vars_raw, k).error(f"variable name '{k}' is not an identifier")
        scope[str(k)] = probe.lenient(v, vloc.key(vars_raw, k), scope)

    nc_loc = root.key(spec, "num_classes")
    num_classes = probe._number("num_classes", "int", spec.get("num_classes", 1000), nc_loc)
    if num_classes < 1:
        raise nc_loc.error(f"num_classes must be at least 1, got {num_classes}")
    scope["num_classes"] = num_classes

    scale, sloc = _section(spec, "scale", SCALE_KEYS, root)
    width = probe._number("width", "float", scale.get("width", 1.0), sloc.key(scale, "width"))
    depth = probe._number("depth", "float", scale.get("depth", 1.0), sloc.key(scale, "depth"))
    res = probe._number("resolution", "float", scale.get("resolution", 1.0),
                        sloc.key(scale, "resolution"))
    divisor = probe._number("divisor", "int", scale.get("divisor", 8), sloc.key(scale, "divisor"))
    phi = probe._number("phi", "float", scale.get("phi", 0.0), sloc.key(scale, "phi"))
    coef = {k: probe._number(k, "float", scale.get(k, v), sloc.key(scale, k))
            for k, v in COMPOUND.items()}
    if phi:
        depth, width, res = (depth * coef["alpha"] ** phi, width * coef["beta"] ** phi,
                             res * coef["gamma"] ** phi)
    depth_round = scale.get("depth_round", "ceil")
    for key, v in (("width", width), ("depth", depth), ("resolution", res), ("divisor", divisor)):
        if v <= 0:
            raise sloc.key(scale, key).error(f"scale.{key} must be positive, got {v}")
    if depth_round not in ("ceil", "round", "floor"):
        raise sloc.key(scale, "depth_round").error(
            f"depth_round must be ceil, round or floor, got {depth_round!r}")
    scope.update(width=width, depth=depth, resolution=res, divisor=divisor)

    inp, iloc = _section(spec, "input", INPUT_KEYS, root)
    channels = probe._number("channels", "int", inp.get("channels", 3), iloc.key(inp, "channels"))
    size = probe.typed("size", Arg("pair"), inp.get("size", 224), iloc.key(inp, "size"))
    size = B.pair(size)
    size = tuple(int(round(s * res)) for s in size)
    if channels < 1 or min(size) < 1:
        raise iloc.error(f"input must have at least 1 channel and 1x1 pixels, got "
                         f"{channels}x{size[0]}x{size[1]}")
    scope.update(in_channels=channels, size=size[0])

    defaults = dict(DEFAULTS)
    draw, dloc = _section(spec, "defaults", tuple(DEFAULTS), root)
    for k, v in draw.items():
        v = probe.lenient(v, dloc.key(draw, k), scope)
        if k == "norm" and v not in NORMS:
            raise dloc.key(draw, k).error(f"unknown norm '{v}'{did_you_mean(str(v), NORMS)}; "
                                          f"use one of {', '.join(NORMS)}")
        if k == "act" and v not in (*ACTIVATIONS, "none"):
            raise dloc.key(draw, k).error(
                f"unknown activation '{v}'{did_you_mean(str(v), ACTIVATIONS)}; "
                f"use one of {', '.join(ACTIVATIONS)}, none")
        if k == "order" and v not in ("pre", "post"):
            raise dloc.key(draw, k).error(f"order must be 'pre' or 'post', got {v!r}")
        if k == "bias" and v not in (True, False, "auto"):
            raise dloc.key(draw, k).error(f"bias must be true, false or auto, got {_short(v)}")
        if k in ("bn_eps", "bn_momentum", "gn_groups"):
            v = probe._number(k, "int" if k == "gn_groups" else "float", v, dloc.key(draw, k))
            if v <= 0 or k == "bn_momentum" and v > 1:
                raise dloc.key(draw, k).error(f"{k} must be "
                                              f"{'in (0, 1]' if k == 'bn_momentum' else 'positive'}"
                                              f", got {v}")
        defaults[k] = v

    ctx = Ctx(scope=scope, defaults=defaults, blocks=blocks, width=width, depth=depth,
              divisor=divisor, depth_round=depth_round, sampler=sampler)
    ctx.globals = set(scope)
    feat = Feat((channels, *size))
    children = []
    for section in SECTIONS:
        raw = spec.get(section)
        if raw is None:
            raw = Seq()
        sloc = root.key(spec, section)
        if not isinstance(raw, list):
            raise sloc.error(f"'{section}' must be a list of layers")
        ctx.section = section
        node = ctx._sequence(raw, feat, sloc, index_names=(section == "stages"))
        if node.kind != "seq":  # _sequence unwraps single items only without index names
            node = sequence([(node.module_name if getattr(node, "module_name", None)
                              else f"{node.kind}1", node)], feat, sloc)
        children.append((section, node))
        feat = node.out

    _schedule_drop_path(spec, ctx, root, probe, scope)
    net = NetworkNode("network", children[0][1].inp, feat, root, children=children)
    net.spec_name = str(spec.get("name", ""))
    net.num_classes = num_classes
    return net


def _schedule_drop_path(spec, ctx: Ctx, root: Loc, probe: Ctx, scope: dict):
    """Give every ``drop_path: auto`` residual its share of the linear schedule."""
    raw = spec.get("drop_path", 0.0)
    loc = root.key(spec, "drop_path")
    first, first_loc = 0, loc
    if isinstance(raw, dict):
        for k in raw:
            if k not in ("rate", "first"):
                raise loc.key(raw, k).error(f"unknown key '{k}' in drop_path"
                                            f"{did_you_mean(k, ('rate', 'first'))}; "
                                            f"allowed: rate, first")
        first_loc = loc.key(raw, "first")
        first = probe._number("first", "int", raw.get("first", 0), first_loc)
        raw = raw.get("rate", 0.0)
    rate = probe._number("drop_path", "float", probe.lenient(raw, loc, scope), loc)
    if not 0.0 <= rate < 1.0:
        raise loc.error(f"drop_path rate must be in [0, 1), got {rate}")
    nodes = ctx.auto_drop_path
    if first < 0 or nodes and rate * (len(nodes) - 1 + first) / len(nodes) >= 1.0:
        raise first_loc.error(f"drop_path first must be at least 0 and keep every block's "
                              f"rate below 1, got {first}")
    for i, node in enumerate(nodes):
        if node is not None:            # blocks whose shortcut fell away count, but drop nothing
            node.drop_path = rate * (i + first) / len(nodes)
