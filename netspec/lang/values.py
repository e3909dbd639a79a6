"""Values in a spec: expressions evaluated in a scope, search choices sampled, types checked.

:class:`Values` is the part of the resolve context that turns what is written (``in * t``,
``{choice: [3, 5]}``, ``act: act``) into a value of an argument's declared type, or a SpecError
that says what was expected.
"""
from __future__ import annotations

import math
from collections.abc import Callable

from ..errors import did_you_mean
from .choices import is_choice
from .expr import ExprError, clip, evaluate, is_expression, names_in
from .source import Loc, Seq

MAX_INT = 2**31 - 1        # no channel count, size or repeat comes near; torch can't build more
# torch cannot allocate past these (the zoo's widest map has 4,032 channels, its largest layer
# 102,764,544 parameters): the resolve pass refuses them at the key instead of `build` failing
MAX_CHANNELS = 2**24
MAX_LAYER_PARAMS = 2**32


class Values:
    """Evaluation of written values in ``scope``; ``sampler`` answers search choices."""

    def __init__(self, scope: dict, sampler: Callable | None = None):
        self.scope = scope
        self.sampler = sampler

    def choice(self, raw, loc: Loc):
        """A search-space choice met where a concrete value is needed."""
        if self.sampler is None:
            raise loc.error(f"this is a search choice ({short(raw)}); sample the space with "
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
                raise loc.error(f"in expression '{clip(raw)}': unknown name '{missing[0]}'"
                                f"{did_you_mean(missing[0], scope)}")
        if isinstance(raw, list) and not isinstance(raw, Seq):
            return [self.lenient(v, loc, scope) for v in raw]
        return raw

    def typed(self, name: str, arg, raw, loc: Loc):
        """A value of ``arg``'s declared type, or a SpecError that says what was expected."""
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
            return self._name(name, arg, raw, loc)
        if t == "pair":
            if isinstance(raw, list):
                if len(raw) != 2:
                    raise loc.error(f"'{name}' must be a number or a pair [h, w], got {short(raw)}")
                return tuple(self.number(name, "int", v, loc) for v in raw)
            return self.number(name, "int", raw, loc)
        return self.number(name, t, raw, loc)

    def _name(self, name: str, arg, raw, loc: Loc):
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
            raise loc.error(f"'{name}' must be a name, got {short(raw)}")
        if arg.choices and raw not in arg.choices:
            raise loc.error(f"unknown {name} '{clip(raw)}'{did_you_mean(raw, arg.choices)}; "
                            f"use one of {', '.join(arg.choices)}")
        return raw

    def number(self, name: str, t: str, raw, loc: Loc):
        """``raw`` evaluated as a bool, an int or a float (``t``), in range and finite."""
        value = self.eval(raw, loc)
        if t == "bool":
            if not isinstance(value, bool):
                raise loc.error(f"'{name}' must be true or false, got {short(value)}")
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise loc.error(f"'{name}' must be a number, got {short(value)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise loc.error(f"'{name}' must be a finite number, got {value}")
        if abs(value) > MAX_INT:
            raise loc.error(f"'{name}' is out of range: {short(value)}")
        if t == "int":
            if isinstance(value, float):
                if not value.is_integer():
                    shown = f" from '{clip(raw)}'" if isinstance(raw, str) else ""
                    raise loc.error(f"'{name}' must be a whole number, got {value:g}{shown}; "
                                    f"use round(), ceil() or floor()")
                value = int(value)
            return value
        return float(value)


def _numeric(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def short(raw) -> str:
    """A value as an error message shows it: at most 60 characters."""
    try:
        text = repr(dict(raw)) if isinstance(raw, dict) else repr(raw)
    except ValueError:                    # an int too long to print
        return "a number with too many digits"
    return text if len(text) < 60 else text[:57] + "..."
