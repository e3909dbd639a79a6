"""Sampling a space: the resolve pass asks a trial for every choice it meets, and the sample is the
concrete spec (no choice left), its decisions, its training keys and its static report."""
from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..analyze import Report, report_of
from ..blocks import included_blocks
from ..errors import SpecError
from ..lang.choices import is_choice
from ..lang.expr import ExprError, evaluate
from ..lang.network import COMPOUND, resolve_spec
from ..lang.source import Loc, Map, located, plain
from .choices import Choice, check_choice, index_choices, option_labels

if TYPE_CHECKING:
    from .space import Space


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
            kind = check_choice(raw, loc)
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


def resolve(spec, sampler=None):
    """The resolved tree of a spec (a plain dict or a located Map), its include files' blocks in."""
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
        net = resolve(self.spec, chooser)
        rep = report_of(net, self.name)
        unreached: list[str] = []
        spec = concrete(self.spec, self.index, chooser.values, unreached)
        spec = {"name": name or self.name, **{k: v for k, v in spec.items() if k != "name"}}
        _absolute_includes(spec, self.spec)
        spec.pop("base", None)
        # the written spec must be the network that was measured
        check = report_of(resolve(spec), self.name)
        if (check.params, check.macs) != (rep.params, rep.macs):   # pragma: no cover - a bug
            raise RuntimeError(f"the written sample resolves to {check.params} params / "
                               f"{check.macs} MACs, the sampled network to {rep.params} / "
                               f"{rep.macs}; please report this")
        baked, size = bake_resolution(spec) if bake else (spec, None)
        if baked is not spec:
            again = report_of(resolve(baked), self.name)
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
