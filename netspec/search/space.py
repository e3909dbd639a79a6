"""Search spaces: the space files and their loading (choices.py names their choices, sampling.py
samples them with an Optuna trial, writing.py writes a sample out as a concrete spec).

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
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import SpecError, did_you_mean
from ..lang.loader import apply_overrides, deep_merge, load_spec
from ..lang.source import Loc, Map, load_file, located

SPACE_KEYS = ("doc", "spec", "overrides", "train", "constraints", "where", "emit")
CONSTRAINT_KEYS = ("max_macs", "max_params", "max_latency_ms")


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
