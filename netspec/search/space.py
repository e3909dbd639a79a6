"""Search spaces: specs with choices, sampled by an Optuna trial and written out as concrete specs.

A space file is either a spec with choices (any spec: ``{choice: [...]}``, ``{int: [lo, hi]}``,
``{float: [lo, hi]}`` with ``log`` and ``step``, a choice between layers or blocks, choices in a
NASNet genotype) or a mapping with these keys:

    doc:          what the space is
    spec:         the network: a zoo name, a path (relative to this file) or an inline spec with
                  choices; an inline spec may have `base:` (netspec.search's `spec=` replaces it)
    overrides:    spec overrides applied before sampling: [scale.width=0.5, ...]
    train:        training-config choices: {optim.lr: {float: [1e-4, 0.1], log: true}, ...}; a
                  choice among mappings sets several keys at once ({optim: {choice: [{name: sgd,
                  momentum: ...}, {name: adamw}]}}): conditional hyperparameters
    constraints:  defaults for max_macs, max_params, max_latency_ms (the command line wins)
    where:        an expression over the choices' names (the last key of their path) that a
                  sample must satisfy, e.g. "abs(alpha * beta**2 * gamma**2 - 2) <= 0.1"
    emit:         {phi: [1, 2, ...]}: compound scaling's step 2, the best sample scaled by each phi

Every choice is named by its key path in the (merged) spec, e.g. ``stages[2].mbconv.k``; a
choice inside an option of another choice is named through that option:
``stages[5].choice[1].mbconv.k``. Those names are the Optuna parameter names. A choice is met
only where the resolve pass needs its value, so a choice inside an option that was not chosen is
never sampled (conditional spaces), and a choice inside a block definition is one decision shared
by every call of the block.
"""
from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..analyze import Report, report_of
from ..blocks import included_blocks
from ..errors import SpecError, did_you_mean
from ..lang.choices import is_choice
from ..lang.expr import ExprError, evaluate
from ..lang.loader import apply_overrides, deep_merge, load_spec
from ..lang.network import COMPOUND, resolve_spec
from ..lang.source import Loc, Map, load_file, located, plain

SPACE_KEYS = ("doc", "spec", "overrides", "train", "constraints", "where", "emit")
CONSTRAINT_KEYS = ("max_macs", "max_params", "max_latency_ms")
_PRIMITIVE = (type(None), bool, int, float, str)


def space_dir() -> Path:
    """The shipped spaces: package data ``netspec.search_spaces`` in a wheel, else the repo's
    ``search/`` (not data_dir("search"): that name is this package's own folder)."""
    here = Path(__file__).resolve().parent.parent          # the netspec package
    for candidate in (here / "search_spaces", here.parent / "search"):
        if candidate.is_dir():
            return candidate
    return here / "search_spaces"


def shipped_spaces() -> list[str]:
    return sorted(p.stem for p in space_dir().glob("*.yaml"))


def space_file(name: str | Path) -> Path:
    """A shipped space name or a path -> the file."""
    p = Path(name)
    if p.suffix in (".yaml", ".yml") or "/" in str(name):
        if not p.is_file():
            raise SpecError(f"no such search space file: {name}", file=str(name))
        return p
    f = space_dir() / f"{name}.yaml"
    if f.is_file():
        return f
    names = shipped_spaces()
    raise SpecError(f"unknown search space '{name}'{did_you_mean(str(name), names)}; shipped: "
                    f"{', '.join(names)}; or give a path to a YAML file", file=str(name))


# -- the choices of a space ------------------------------------------------------------------------

@dataclass
class Choice:
    """One choice mapping: where it is, its kind and its options."""

    path: str               # its key path: the Optuna parameter name
    raw: dict
    loc: Loc
    kind: str               # choice, int, float
    conditional: bool       # inside an option of another choice

    @property
    def short(self) -> str:
        """The last key of the path (the name a `where:` expression uses)."""
        last = self.path.replace("]", "").replace("[", ".").split(".")[-1]
        return last

    def labels(self) -> list:
        return option_labels(list(self.raw["choice"]))

    def grid(self) -> list:
        """Every value of a finite choice (grid search)."""
        if self.kind == "choice":
            return self.labels()
        lo, hi = self.raw[self.kind]
        step = self.raw.get("step", 1 if self.kind == "int" else None)
        if step is None:
            raise self.loc.error("strategy=grid needs a finite space: give this float range a "
                                 "step, or use {choice: [...]}")
        n = int(math.floor((hi - lo) / step + 1e-9)) + 1
        return [lo + i * step if self.kind == "int" else round(lo + i * step, 12)
                for i in range(n)]


def option_labels(options: list) -> list:
    """Optuna categorical values for the options: the options themselves where they are plain
    values, else short readable labels (a layer's name, or its YAML in flow style)."""
    if all(isinstance(o, _PRIMITIVE) for o in options):
        return options
    labels = []
    for o in options:
        if isinstance(o, dict) and isinstance(o.get("name"), str):     # a group of config keys
            labels.append(o["name"])
        elif isinstance(o, dict) and len(o) == 1 and not is_choice(o):
            labels.append(str(next(iter(o))))
        elif isinstance(o, _PRIMITIVE):
            labels.append(o if isinstance(o, str) else yaml.safe_dump(o).strip().removesuffix("..."))
        else:
            text = yaml.safe_dump(plain(o), default_flow_style=True, width=10**6).strip()
            labels.append(text if len(text) <= 60 else text[:57] + "...")
    if len(set(map(str, labels))) < len(labels):
        labels = [f"{i}: {lab}" for i, lab in enumerate(labels)]
    return [str(lab) for lab in labels]


def _check_choice(raw: dict, loc: Loc) -> str:
    kind = next(iter(raw))
    value = raw[kind]
    for k in list(raw)[1:]:
        if k == "log" and not isinstance(raw[k], bool):
            raise loc.key(raw, k).error(f"log must be true or false, got {raw[k]!r}")
    if kind == "choice":
        if not isinstance(value, list) or not value:
            raise loc.error(f"{{choice: [...]}} needs a non-empty list of options, got {value!r}")
        if len(raw) > 1:
            raise loc.error("a {choice: [...]} takes no options (log and step are for int and "
                            "float ranges)")
        return kind
    if not isinstance(value, list) or len(value) != 2 or any(
            isinstance(v, bool) or not isinstance(v, (int, float)) for v in value):
        raise loc.error(f"{{{kind}: [low, high]}} needs two numbers, got {value!r}")
    lo, hi = value
    if kind == "int" and not all(isinstance(v, int) for v in value):
        raise loc.error(f"{{int: [low, high]}} needs whole numbers, got {value!r}; "
                        f"use {{float: ...}} for real numbers")
    if lo > hi:
        raise loc.error(f"the range [{lo}, {hi}] is empty: low must not exceed high")
    step, log = raw.get("step"), raw.get("log", False)
    if log and lo <= 0:
        raise loc.error(f"a log-scale range must be positive, got low = {lo}")
    if step is not None:
        if isinstance(step, bool) or not isinstance(step, (int, float)) or step <= 0 or (
                kind == "int" and not isinstance(step, int)):
            raise loc.error(f"step must be a positive {'whole ' if kind == 'int' else ''}number, "
                            f"got {step!r}")
        if log and (kind == "float" or step != 1):
            raise loc.error("a range takes log or step, not both")
    return kind


def index_choices(tree, root: str = "", file: str = "<spec>") -> dict[int, Choice]:
    """Every choice mapping under ``tree`` by ``id``: its path (the parameter name), checked."""
    out: dict[int, Choice] = {}

    def walk(v, loc: Loc, conditional: bool):
        if isinstance(v, dict):
            if is_choice(v):
                kind = _check_choice(v, loc)
                out[id(v)] = Choice(loc.path, v, loc, kind, conditional)
                if kind == "choice":
                    opts = v["choice"]
                    for i, o in enumerate(opts):
                        walk(o, loc.key(v, "choice").key(opts, i), True)
                return
            for k, x in v.items():
                walk(x, loc.key(v, k), conditional)
        elif isinstance(v, list):
            for i, x in enumerate(v):
                walk(x, loc.key(v, i), conditional)

    walk(tree, Loc(getattr(tree, "file", file), getattr(tree, "line", None), root), False)
    return out


# -- the space -------------------------------------------------------------------------------------

@dataclass
class Space:
    name: str
    file: Path | None
    spec: object                       # zoo name, Path, or inline Map (with choices)
    overrides: list[str] = field(default_factory=list)
    train: Map = field(default_factory=Map)
    constraints: dict = field(default_factory=dict)
    where: str | None = None
    emit: dict = field(default_factory=dict)
    doc: str = ""

    def base_spec(self, spec_path_override: Path | None = None,
                  spec_overrides: list[str] = (), extra_overrides: list[str] = ()) -> Map:
        """The merged spec with choices: ``base:`` (or the command line's ``spec=``) under the
        space's own spec, then the space's overrides, then ``extra_overrides`` (the data's)."""
        src = self.spec
        where = str(self.file) if self.file else "<space>"
        if isinstance(src, dict):
            top = copy.deepcopy(located(src, where))
            base = top.pop("base", None)
            if isinstance(base, str) and base.endswith((".yaml", ".yml")) and self.file:
                base = str(self.file.parent / base)
        else:
            top, base = None, src
            if isinstance(src, str) and src.endswith((".yaml", ".yml")) and self.file \
                    and not Path(src).is_absolute():
                base = str(self.file.parent / src)
        if spec_path_override is not None:
            if base is None and top is not None:
                raise SpecError(f"search space '{self.name}' writes its whole network; spec= "
                                f"replaces the base of a space whose spec has `base:` (hparams, "
                                f"compound, nasnet_cell)", file=where)
            base = spec_path_override
        if base is not None:
            merged = load_spec(base, list(spec_overrides) if spec_path_override else [])
            if top is not None:
                merged = deep_merge(merged, top)
        else:
            merged = load_spec(top, list(spec_overrides))
        apply_overrides(merged, [*self.overrides, *extra_overrides])
        merged.setdefault("name", self.name)
        return merged


def load_space(name: str | Path) -> Space:
    path = space_file(name)
    raw = load_file(path)
    if not isinstance(raw, Map):
        raise SpecError("a search space must be a mapping (a spec with choices, or spec:, "
                        "train:, ...)", file=str(path), line=getattr(raw, "line", 1))
    stem = path.stem
    if "spec" not in raw:               # a spec with choices, as it is
        raw.setdefault("name", stem)
        return Space(stem, path, raw, doc=str(raw.get("doc") or ""))
    root = Loc(str(path), raw.line, "")
    for k in raw:
        if k not in SPACE_KEYS:
            raise root.key(raw, k).error(f"unknown key '{k}' in a search space"
                                         f"{did_you_mean(str(k), SPACE_KEYS)}; allowed: "
                                         f"{', '.join(SPACE_KEYS)}")
    spec = raw["spec"]
    if not isinstance(spec, (str, dict)):
        raise root.key(raw, "spec").error("spec must be a zoo name, a path or a spec mapping")
    overrides = raw.get("overrides") or []
    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        raise root.key(raw, "overrides").error("overrides must be a list of key.path=value")
    train = raw.get("train") or Map(file=str(path))
    if not isinstance(train, dict):
        raise root.key(raw, "train").error("train must be a mapping of config.key: value or "
                                           "choice")
    constraints = dict(raw.get("constraints") or {})
    for k in constraints:
        if k not in CONSTRAINT_KEYS:
            raise root.key(raw, "constraints").error(
                f"unknown constraint '{k}'{did_you_mean(str(k), CONSTRAINT_KEYS)}; allowed: "
                f"{', '.join(CONSTRAINT_KEYS)}")
    emit = dict(raw.get("emit") or {})
    if emit and (set(emit) != {"phi"} or not isinstance(emit["phi"], list)):
        raise root.key(raw, "emit").error("emit takes {phi: [1, 2, ...]} (compound scaling)")
    where = raw.get("where")
    if where is not None and not isinstance(where, str):
        raise root.key(raw, "where").error("where must be an expression (a string)")
    return Space(stem, path, spec, list(overrides), train, constraints, where, emit,
                 str(raw.get("doc") or ""))


# -- one sample ------------------------------------------------------------------------------------

class Chooser:
    """The resolve pass's sampler: each choice met becomes an Optuna suggestion named by its path.

    ``suggest`` is an Optuna trial (or anything with suggest_categorical/int/float). Values are
    remembered by name, so a choice met several times (a block's body, repeats) is one decision.
    """

    def __init__(self, suggest, index: dict[int, Choice]):
        self.trial = suggest
        self.index = index
        self.values: dict[str, object] = {}     # name -> the chosen option (raw) or number
        self.params: dict[str, object] = {}     # name -> the Optuna value (label for options)

    def __call__(self, raw, loc: Loc):
        c = self.index.get(id(raw))
        if c is None:                # a choice from an include file: named where it was met
            kind = _check_choice(raw, loc)
            c = Choice(loc.path, raw, loc, kind, False)
            self.index[id(raw)] = c
        if c.path in self.values:
            return self.values[c.path]
        t = self.trial
        if c.kind == "choice":
            options = list(raw["choice"])
            labels = option_labels(options)
            label = t.suggest_categorical(c.path, labels)
            value = options[labels.index(label)]
            self.params[c.path] = label
        elif c.kind == "int":
            lo, hi = raw["int"]
            value = t.suggest_int(c.path, lo, hi, step=raw.get("step", 1),
                                  log=raw.get("log", False))
            self.params[c.path] = value
        else:
            lo, hi = raw["float"]
            value = t.suggest_float(c.path, float(lo), float(hi), step=raw.get("step"),
                                    log=raw.get("log", False))
            self.params[c.path] = value
        self.values[c.path] = value
        return value


@dataclass
class Sample:
    spec: dict                  # the concrete spec (plain data): what `netspec.train` trains
    params: dict                # Optuna parameter name -> value (label for options)
    train: dict                 # training-config key -> value
    report: Report
    unreached: list[str]        # choices never met (set to their first option in `spec`)
    data_size: int | None = None  # the resolution a compound-scaled sample trains at


def concrete(tree, index: dict[int, Choice], values: dict, unreached: list | None = None):
    """The tree with every choice replaced by its value; an unreached one by its first option
    (it is never met: it sits under a false `if:` or in a block no layer calls)."""
    if isinstance(tree, dict):
        c = index.get(id(tree))
        if c is not None:
            if c.path in values:
                v = values[c.path]
            else:
                if unreached is not None:
                    unreached.append(c.path)
                v = tree["choice"][0] if c.kind == "choice" else tree[c.kind][0]
            return concrete(v, index, values, unreached)
        return {k: concrete(v, index, values, unreached) for k, v in tree.items()}
    if isinstance(tree, list):
        return [concrete(v, index, values, unreached) for v in tree]
    return tree


def _absolute_includes(spec: dict, merged: Map) -> None:
    inc = spec.get("include")
    if not inc:
        return
    items = [inc] if isinstance(inc, str) else list(inc)
    src = merged.file_of("include") if isinstance(merged, Map) else "<spec>"
    out = []
    for item in items:
        p = Path(str(item))
        if not p.is_absolute() and src not in ("<spec>", "<dict>"):
            p = Path(src).parent / p
        out.append(str(p.resolve()))
    spec["include"] = out


def _resolve(spec, sampler=None):
    loaded = spec if isinstance(spec, Map) else located(copy.deepcopy(spec))
    return resolve_spec(loaded, sampler=sampler, extra_blocks=included_blocks(loaded))


def bake_resolution(spec: dict) -> tuple[dict, int | None]:
    """A spec whose `scale` changes the resolution (phi, resolution) rewritten with the scaled
    input size written out and phi folded into width and depth: the same network, which
    `netspec.train` then trains at that size (``data.size``) instead of the data's own."""
    scale = spec.get("scale") or {}
    phi = scale.get("phi", 0) or 0
    res = scale.get("resolution", 1.0)
    numbers = [v for v in (phi, res, scale.get("width", 1.0), scale.get("depth", 1.0),
                           *(scale.get(k, v) for k, v in COMPOUND.items()))]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in numbers):
        return spec, None
    if not phi and res == 1.0:
        return spec, None
    coef = {k: scale.get(k, v) for k, v in COMPOUND.items()}
    width = scale.get("width", 1.0) * (coef["beta"] ** phi if phi else 1.0)
    depth = scale.get("depth", 1.0) * (coef["alpha"] ** phi if phi else 1.0)
    res = res * (coef["gamma"] ** phi if phi else 1.0)
    inp = dict(spec.get("input") or {})
    size = inp.get("size", 224)
    hw = size if isinstance(size, list) else [size, size]
    if not all(isinstance(v, int) for v in hw):
        return spec, None
    new_hw = [int(round(v * res)) for v in hw]
    out = dict(spec)
    out["scale"] = {k: v for k, v in scale.items()
                    if k not in ("phi", "alpha", "beta", "gamma", "resolution")}
    out["scale"].update(width=round(width, 6), depth=round(depth, 6))
    inp["size"] = new_hw if isinstance(size, list) else new_hw[0]
    out["input"] = inp
    return out, (new_hw[0] if new_hw[0] == new_hw[1] else None)


class Sampler:
    """Samples one space (already merged with its base and the data's overrides)."""

    def __init__(self, space: Space, spec: Map, name: str):
        self.space = space
        self.spec = spec
        self.name = name
        self.index = index_choices(spec)
        self.train_index = index_choices(space.train, "train",
                                         file=str(space.file) if space.file else "<space>")

    @property
    def choices(self) -> list[Choice]:
        return list(self.index.values()) + list(self.train_index.values())

    def sample(self, trial, name: str | None = None, bake: bool = True) -> Sample:
        """Sample the space with ``trial``: the concrete spec, its decisions and its report.

        With ``bake``, a sample whose scale changes the resolution (compound scaling) is written
        with that resolution as its input size (see :func:`bake_resolution`)."""
        chooser = Chooser(trial, {**self.index, **self.train_index})
        train = self._train(self.space.train, chooser, "")
        net = _resolve(self.spec, chooser)
        rep = report_of(net, self.name)
        unreached: list[str] = []
        spec = concrete(self.spec, self.index, chooser.values, unreached)
        spec = {"name": name or self.name, **{k: v for k, v in spec.items() if k != "name"}}
        _absolute_includes(spec, self.spec)
        spec.pop("base", None)
        # the written spec must be the network that was measured
        check = report_of(_resolve(spec), self.name)
        if (check.params, check.macs) != (rep.params, rep.macs):   # pragma: no cover - a bug
            raise RuntimeError(f"the written sample resolves to {check.params} params / "
                               f"{check.macs} MACs, the sampled network to {rep.params} / "
                               f"{rep.macs}; please report this")
        baked, size = bake_resolution(spec) if bake else (spec, None)
        if baked is not spec:
            again = report_of(_resolve(baked), self.name)
            if (again.params, again.macs) == (rep.params, rep.macs) and size is not None:
                spec = baked
            else:
                size = None
        return Sample(spec, dict(chooser.params), train, rep, unreached, size)

    def _train(self, raw, chooser: Chooser, prefix: str) -> dict:
        out = {}
        for key, v in raw.items():
            full = f"{prefix}.{key}" if prefix else str(key)
            if is_choice(v):
                v = chooser(v, Loc(path=f"train.{full}"))
            if isinstance(v, dict) and not is_choice(v):
                out.update(self._train(v, chooser, full))
            else:
                out[full] = plain(v)
        return out

    # -- static checks --------------------------------------------------------------------------
    def where(self, params: dict) -> tuple[bool, str]:
        """The space's `where:` expression on a sample's values (named by their last key)."""
        expr = self.space.where
        if not expr:
            return True, ""
        scope = {}
        for c in self.choices:
            if c.path in params:
                value = params[c.path]
                if c.kind == "choice" and not isinstance(value, (int, float)):
                    continue
                scope[c.short] = value
        try:
            ok = bool(evaluate(expr, scope))
        except ExprError as e:
            raise SpecError(f"in where: {e}", file=str(self.space.file), path="where") from None
        return ok, "" if ok else f"where: {expr} is false"

    def grid(self) -> list[dict]:
        """Every point of a finite, unconditional space that satisfies `where:`."""
        cond = [c.path for c in self.choices if c.conditional]
        if cond:
            raise SpecError(f"strategy=grid needs an unconditional space; '{cond[0]}' is a choice "
                            f"inside an option of another choice: use random or tpe")
        choices = self.choices
        if not choices:
            raise SpecError(f"search space '{self.space.name}' has no choices")
        points = []
        for combo in itertools.product(*(c.grid() for c in choices)):
            params = {c.path: v for c, v in zip(choices, combo)}
            if self.where(params)[0]:
                points.append(params)
        if not points:
            raise SpecError(f"no point of the grid satisfies where: {self.space.where}")
        return points

    def categorical(self) -> list[str]:
        return [c.path for c in self.choices if c.kind == "choice"]


class FixedTrial:
    """A stand-in for an Optuna trial with given values (first option / low end elsewhere)."""

    def __init__(self, params: dict | None = None, pick: Callable | None = None):
        self.params = dict(params or {})
        self.pick = pick

    def suggest_categorical(self, name, choices):
        if name in self.params:
            return self.params[name]
        return self.pick(name, choices) if self.pick else choices[0]

    def suggest_int(self, name, low, high, step=1, log=False):
        return self.params.get(name, low)

    def suggest_float(self, name, low, high, step=None, log=False):
        return self.params.get(name, low)


def write_spec(spec: dict, path: Path, header: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(spec, sort_keys=False, default_flow_style=None, width=100)
    lines = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    path.write_text(lines + text)
    return path
