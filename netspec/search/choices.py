"""The choices of a space: every choice mapping named by its key path (the Optuna parameter name),
checked where it is written, with its options' labels and, for grid search, every value."""
from __future__ import annotations

import math
from dataclasses import dataclass

import yaml

from ..lang.choices import is_choice
from ..lang.source import Loc, plain

_PRIMITIVE = (type(None), bool, int, float, str)


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


def check_choice(raw: dict, loc: Loc) -> str:
    """The kind of a choice mapping (choice, int, float), its options checked."""
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
                kind = check_choice(v, loc)
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
