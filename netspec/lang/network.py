"""The whole network: a spec's top-level keys read in order, then its sections resolved.

``vars`` first (everything else may use them), then ``num_classes``, ``scale`` (width, depth,
resolution, compound scaling), ``input``, ``defaults``; then ``stem``, ``stages`` and ``head`` in
sequence, and last the drop-path schedule over every ``drop_path: auto`` residual.
"""
from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ..blocks import builtin_blocks, parse_library
from ..errors import did_you_mean
from ..ops.activations import ACT_NAMES
from ..ops.base import Arg, Feat, Node, pair
from ..ops.combinators import sequence
from ..ops.norms import NORM_NAMES, SETTINGS
from ..ops.tape import Tape, building_tape, done_building
from .names import TensorNames
from .resolve import Ctx
from .source import Loc, Map, Seq
from .values import MAX_CHANNELS, Values, short

TOP_KEYS = ("name", "paper", "doc", "reference", "base", "include", "input", "num_classes",
            "scale", "defaults", "vars", "drop_path", "stem", "stages", "head", "outputs", "blocks")
SECTIONS = ("stem", "stages", "head")
INPUT_KEYS = ("channels", "size")
SCALE_KEYS = ("width", "depth", "resolution", "divisor", "depth_round",
              "phi", "alpha", "beta", "gamma")
# EfficientNet's compound scaling: depth alpha^phi, width beta^phi, resolution gamma^phi
COMPOUND = {"alpha": 1.2, "beta": 1.1, "gamma": 1.15}
BASE_DEFAULTS = {"norm": "bn", "act": "relu", "bias": "auto", "order": "post"}


def layer_defaults() -> dict:
    """What ``defaults:`` may set: the base keys and every key a registered norm reads."""
    return {**BASE_DEFAULTS, **{k: s.default for k, s in SETTINGS.items()}}


class NetworkNode(Node):
    outputs: dict = {}              # name -> (tape key, feature) of the spec's outputs:

    def build(self):
        from ..ops.modules import Network
        tape = Tape()
        token = building_tape(tape)      # the named tensors' hooks of this build use this tape
        try:
            parts = {name: child.build() for name, child in self.children}
        finally:
            done_building(token)
        return Network(parts, spec_name=self.spec_name, tape=tape,
                       outputs={name: key for name, (key, _) in self.outputs.items()})


@dataclass
class Scale:
    width: float
    depth: float
    resolution: float
    divisor: int
    depth_round: str


def section(spec: Map, key: str, allowed, loc: Loc) -> tuple[dict, Loc]:
    """A top-level mapping whose keys must be among ``allowed``."""
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


@contextmanager
def gc_paused() -> Iterator[None]:
    """The pass allocates many small objects that live on, and makes no garbage cycles: the cyclic
    collector's runs over them cost 45% of the time at 6,000 layers and found nothing."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def resolve_spec(spec: Map, *, sampler: Callable | None = None, extra_blocks=None) -> NetworkNode:
    """Resolve a loaded, merged and overridden spec into a NetworkNode (in time linear in it)."""
    with gc_paused():
        return _resolve_spec(spec, sampler, extra_blocks)


def _resolve_spec(spec: Map, sampler: Callable | None, extra_blocks) -> NetworkNode:
    root = Loc(spec.file, spec.line, "")
    for k in spec:
        if k not in TOP_KEYS:
            raise root.key(spec, k).error(f"unknown top-level key '{k}'{did_you_mean(k, TOP_KEYS)};"
                                          f" allowed: {', '.join(TOP_KEYS)}")
    blocks = dict(builtin_blocks())
    blocks.update(extra_blocks or {})
    if spec.get("blocks") is not None:
        blocks.update(parse_library(spec["blocks"], root.key(spec, "blocks")))

    scope: dict = {}
    probe = Values(scope, sampler)        # the top-level keys see only what is read before them
    _read_vars(spec, root, probe)
    scope["num_classes"] = num_classes = _read_num_classes(spec, root, probe)
    scale = _read_scale(spec, root, probe)
    scope.update(width=scale.width, depth=scale.depth, resolution=scale.resolution,
                 divisor=scale.divisor)
    channels, size = _read_input(spec, root, probe, scale.resolution)
    scope.update(in_channels=channels, size=size[0])
    defaults = _read_defaults(spec, root, probe)

    ctx = Ctx(scope=scope, defaults=defaults, blocks=blocks, width=scale.width,
              depth=scale.depth, divisor=scale.divisor, depth_round=scale.depth_round,
              sampler=sampler)
    ctx.globals = set(scope)
    ctx.names = TensorNames([spec.get(name) for name in SECTIONS])
    children, feat = _resolve_sections(spec, root, ctx, Feat((channels, *size)))
    _schedule_drop_path(spec, ctx, root, probe)
    net = NetworkNode("network", children[0][1].inp, feat, root, children=children)
    net.outputs = _read_outputs(spec, root, ctx, net)
    net.spec_name = str(spec.get("name", ""))
    net.num_classes = num_classes
    return net


def _read_vars(spec: Map, root: Loc, probe: Values) -> None:
    vars_raw = spec.get("vars") or {}
    vloc = root.key(spec, "vars")
    if not isinstance(vars_raw, dict):
        raise vloc.error("vars must be a mapping of name: value")
    for k, v in vars_raw.items():
        if not str(k).isidentifier():
            raise vloc.key(vars_raw, k).error(f"variable name '{k}' is not an identifier")
        probe.scope[str(k)] = probe.lenient(v, vloc.key(vars_raw, k))


def _read_num_classes(spec: Map, root: Loc, probe: Values) -> int:
    loc = root.key(spec, "num_classes")
    n = probe.number("num_classes", "int", spec.get("num_classes", 1000), loc)
    if n < 1:
        raise loc.error(f"num_classes must be at least 1, got {n}")
    return n


def _read_scale(spec: Map, root: Loc, probe: Values) -> Scale:
    raw, sloc = section(spec, "scale", SCALE_KEYS, root)
    number = lambda key, t, default: probe.number(key, t, raw.get(key, default), sloc.key(raw, key))
    width, depth = number("width", "float", 1.0), number("depth", "float", 1.0)
    res, divisor = number("resolution", "float", 1.0), number("divisor", "int", 8)
    phi = number("phi", "float", 0.0)
    coef = {k: number(k, "float", v) for k, v in COMPOUND.items()}
    if phi:
        depth, width, res = (depth * coef["alpha"] ** phi, width * coef["beta"] ** phi,
                             res * coef["gamma"] ** phi)
    depth_round = raw.get("depth_round", "ceil")
    for key, v in (("width", width), ("depth", depth), ("resolution", res), ("divisor", divisor)):
        if v <= 0:
            raise sloc.key(raw, key).error(f"scale.{key} must be positive, got {v}")
    if depth_round not in ("ceil", "round", "floor"):
        raise sloc.key(raw, "depth_round").error(
            f"depth_round must be ceil, round or floor, got {depth_round!r}")
    return Scale(width, depth, res, divisor, depth_round)


def _read_input(spec: Map, root: Loc, probe: Values, resolution: float):
    inp, iloc = section(spec, "input", INPUT_KEYS, root)
    channels = probe.number("channels", "int", inp.get("channels", 3), iloc.key(inp, "channels"))
    size = pair(probe.typed("size", Arg("pair"), inp.get("size", 224), iloc.key(inp, "size")))
    written = size
    size = tuple(int(round(s * resolution)) for s in size)
    if channels < 1 or channels > MAX_CHANNELS:     # blame the key (it may come from an override)
        raise iloc.key(inp, "channels").error(
            f"input must have 1 to {MAX_CHANNELS:,} channels, got {channels:,}")
    if min(size) < 1:
        loc, scaled = iloc.key(inp, "size"), ""
        if resolution != 1 and min(written) >= 1:     # the resolution multiplier made it vanish
            scale, sloc = section(spec, "scale", SCALE_KEYS, root)
            loc = sloc.key(scale, "resolution" if "resolution" in scale or "phi" not in scale
                           else "phi")
            scaled = f" (size {'x'.join(map(str, written))} times resolution {resolution:g})"
        raise loc.error(f"input must have at least 1x1 pixels, got "
                        f"{channels}x{size[0]}x{size[1]}{scaled}")
    return channels, size


def _read_defaults(spec: Map, root: Loc, probe: Values) -> dict:
    defaults = layer_defaults()
    raw, dloc = section(spec, "defaults", tuple(defaults), root)
    for k, v in raw.items():
        loc = dloc.key(raw, k)
        v = probe.lenient(v, loc)
        if k == "norm" and v not in NORM_NAMES:
            raise loc.error(f"unknown norm '{v}'{did_you_mean(str(v), NORM_NAMES)}; "
                            f"use one of {', '.join(NORM_NAMES)}")
        if k == "act" and v not in ACT_NAMES:
            raise loc.error(f"unknown activation '{v}'{did_you_mean(str(v), ACT_NAMES)}; "
                            f"use one of {', '.join(ACT_NAMES)}")
        if k == "order" and v not in ("pre", "post"):
            raise loc.error(f"order must be 'pre' or 'post', got {v!r}")
        if k == "bias" and v not in (True, False, "auto"):
            raise loc.error(f"bias must be true, false or auto, got {short(v)}")
        if k in SETTINGS:
            v = _setting(k, v, loc, probe)
        defaults[k] = v
    return defaults


def _setting(key: str, v, loc: Loc, probe: Values):
    s = SETTINGS[key]
    v = probe.number(key, s.type, v, loc)
    if v <= s.low or s.high is not None and v > s.high:
        where = f"in ({s.low:g}, {s.high:g}]" if s.high is not None else \
            ("positive" if s.low == 0 else f"above {s.low:g}")
        raise loc.error(f"{key} must be {where}, got {v}")
    return v


def _resolve_sections(spec: Map, root: Loc, ctx: Ctx, feat: Feat):
    children = []
    for name in SECTIONS:
        raw = spec.get(name)
        if raw is None:
            raw = Seq()
        sloc = root.key(spec, name)
        if not isinstance(raw, list):
            raise sloc.error(f"'{name}' must be a list of layers")
        ctx.section = name
        node = ctx.sequence(raw, feat, sloc, index_names=(name == "stages"))
        if node.kind != "seq":  # sequence() unwraps single items only without index names
            node = sequence([(node.module_name if getattr(node, "module_name", None)
                              else f"{node.kind}1", node)], feat, sloc)
        children.append((name, node))
        feat = node.out
    return children, feat


def _read_outputs(spec: Map, root: Loc, ctx: Ctx, net: NetworkNode) -> dict:
    """``outputs``: the layers whose outputs the network returns, as a dict: a list of names
    (``[p3, p4, p5]``) or a mapping of output names to layer names or module paths
    (``{c3: stages.1, c4: stages.2}``: a backbone's maps without renaming its layers)."""
    raw = spec.get("outputs")
    if raw is None:
        return {}
    loc = root.key(spec, "outputs")
    if isinstance(raw, list):
        pairs = [(str(name), name, loc.key(raw, i)) for i, name in enumerate(raw)]
    elif isinstance(raw, dict):
        pairs = [(str(k), v, loc.key(raw, k)) for k, v in raw.items()]
    else:
        pairs = []
    if not pairs:
        raise loc.error("outputs must be a list of layer names ([p3, p4, p5]) or a mapping of "
                        "output names to layer names or module paths ({c3: stages.1})")
    paths = None
    out = {}
    for name, target, iloc in pairs:
        if name in out:
            raise iloc.error(f"'{name}' is listed twice in outputs")
        if isinstance(target, str) and "." in target:
            if paths is None:
                paths = {}
                for qname, _, node in net.walk():
                    paths.setdefault(qname, node)
            if target not in paths:
                near = did_you_mean(target, [q for q in paths if q.count(".") <= 2])
                raise iloc.error(f"no layer at module path '{target}'{near}")
            out[name] = ctx.names.keep(paths[target], target)
        else:
            out[name] = ctx.names.read(target, iloc)
    return out


def _schedule_drop_path(spec: Map, ctx: Ctx, root: Loc, probe: Values):
    """Give every ``drop_path: auto`` residual its share of the linear schedule."""
    raw = spec.get("drop_path", 0.0)
    loc = root.key(spec, "drop_path")
    first, first_loc, linspace = 0, loc, False
    if isinstance(raw, dict):
        keys = ("rate", "first", "schedule")
        for k in raw:
            if k not in keys:
                raise loc.key(raw, k).error(f"unknown key '{k}' in drop_path"
                                            f"{did_you_mean(k, keys)}; allowed: {', '.join(keys)}")
        first_loc = loc.key(raw, "first")
        first = probe.number("first", "int", raw.get("first", 0), first_loc)
        schedule = raw.get("schedule", "linear")
        if schedule not in ("linear", "linspace"):
            raise loc.key(raw, "schedule").error(
                f"drop_path schedule must be linear (rate*(i+first)/N) or linspace (from 0 at "
                f"the first block to the rate at the last), got {short(schedule)}")
        linspace = schedule == "linspace"
        if linspace and "first" in raw:
            raise first_loc.error("drop_path first goes with schedule: linear only")
        raw = raw.get("rate", 0.0)
    rate = probe.number("drop_path", "float", probe.lenient(raw, loc), loc)
    if not 0.0 <= rate < 1.0:
        raise loc.error(f"drop_path rate must be in [0, 1), got {rate}")
    nodes = ctx.local.get("drop_path", [])
    if first < 0 or nodes and rate * (len(nodes) - 1 + first) / len(nodes) >= 1.0:
        raise first_loc.error(f"drop_path first must be at least 0 and keep every block's "
                              f"rate below 1, got {first}")
    steps = max(1, len(nodes) - 1) if linspace else len(nodes)
    for i, node in enumerate(nodes):
        if node is not None:            # blocks whose shortcut fell away count, but drop nothing
            node.drop_path = rate * (i + first) / steps
