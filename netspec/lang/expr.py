"""A small, safe arithmetic language for spec values: ``in * t``, ``make_divisible(c * width, 8)``.

Parsed with :mod:`ast` and walked by hand: only literals, names bound in the scope, arithmetic,
comparisons, ``and/or/not``, ``a if cond else b``, calls of the whitelisted functions below and
look-ups in tables the spec defines (``out[g]`` with ``vars: {out: {1: 144, 3: 240}}``).
No attribute access, slices, lambdas or other calls: a spec cannot reach Python.
"""
from __future__ import annotations

import ast
import math
import operator
import re
from collections.abc import Mapping

from ..errors import did_you_mean
from .regnet import regnet
from .rounding import make_divisible


class ExprError(ValueError):
    """Raised with a short reason; the resolver adds file, line and key path."""


FUNCTIONS = {
    "ceil": lambda x: int(math.ceil(x)),
    "floor": lambda x: int(math.floor(x)),
    "round": lambda x, n=None: round(x) if n is None else round(x, int(n)),
    "min": min,
    "max": max,
    "abs": abs,
    "int": int,
    "sqrt": math.sqrt,
    "make_divisible": make_divisible,
    "regnet": regnet,        # RegNet's stages from (w0, wa, wm, d, g[, b]): see regnet.py
}

_BINOPS = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
}
_CMPOPS = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge,
}
_MAX_POW = 64


_IN = re.compile(r"\bin\b")
_IN_NAME = "in_"  # `in` (the input channels) is a Python keyword: it is parsed under this name


MAX_SHOWN = 80     # an error message shows at most this much of an expression


def clip(text, limit: int = MAX_SHOWN) -> str:
    """An expression as an error message echoes it: cut to ``limit`` characters with '...'."""
    text = str(text)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _parse(text: str) -> ast.expr:
    try:
        return ast.parse(_IN.sub(_IN_NAME, text.strip()), mode="eval").body
    except SyntaxError as e:
        refused = _refused_python(text)
        if refused:
            raise ExprError(f"in expression '{clip(text)}': {refused}") from None
        raise ExprError(f"cannot parse expression '{clip(text)}': {e.msg}") from None
    except (ValueError, RecursionError, MemoryError):   # a NUL byte; absurd nesting
        raise ExprError(f"cannot parse expression '{clip(text)}'") from None


def _refused_python(text: str) -> str:
    """Why ``text`` is refused when it is Python that reads ``in`` as a keyword (a comprehension
    ``[x for x in ...]``, a membership test ``a in b``) and so does not parse with ``in`` as a
    name; '' when it is not such Python."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return ""
    nodes = list(ast.walk(tree))
    for node in nodes:
        if isinstance(node, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            return f"{_REFUSED[type(node).__name__]} is not allowed ({_ONLY})"
    for node in nodes:
        if isinstance(node, (ast.In, ast.NotIn)):
            return (f"a membership test ('{'in' if isinstance(node, ast.In) else 'not in'}') "
                    f"is not allowed; 'in' alone is the input channels ({_ONLY})")
    return ""


def names_in(text: str) -> set[str]:
    """The free names an expression uses (empty if it does not parse)."""
    try:
        tree = _parse(text)
    except ExprError:
        return set()
    return {"in" if n.id == _IN_NAME else n.id
            for n in ast.walk(tree) if isinstance(n, ast.Name)} - set(FUNCTIONS)


def is_expression(text: str) -> bool:
    try:
        _parse(text)
        return True
    except ExprError:
        return False


def evaluate(text: str, scope: Mapping[str, object]):
    """Evaluate ``text`` with the names of ``scope``; raise ExprError with a clear reason."""
    tree = _parse(text)
    try:
        return _Eval(text, scope).visit(tree)
    except RecursionError:
        raise ExprError(f"expression '{clip(text)}' is nested too deeply") from None


# what the user wrote, for the forms the language refuses
_REFUSED = {"Attribute": "attribute access", "Lambda": "lambda", "NamedExpr": "':='",
            "ListComp": "a list comprehension ('[... for ... in ...]')",
            "SetComp": "a set comprehension ('{... for ... in ...}')",
            "DictComp": "a dict comprehension ('{...: ... for ... in ...}')",
            "GeneratorExp": "a generator expression ('(... for ... in ...)')",
            "JoinedStr": "an f-string", "Starred": "'*' unpacking", "List": "a list literal",
            "Tuple": "a tuple", "Dict": "a mapping literal", "Set": "a set literal",
            "Await": "await", "Yield": "yield", "YieldFrom": "yield"}


_ONLY = f"only arithmetic, comparisons, conditions and the functions {', '.join(FUNCTIONS)}"


class _Eval:
    def __init__(self, text: str, scope: Mapping[str, object]):
        self.text, self.scope = text, scope

    def fail(self, why: str):
        raise ExprError(f"in expression '{clip(self.text)}': {why}")

    def visit(self, node: ast.AST):
        method = getattr(self, "visit_" + type(node).__name__, None)
        if method is None:
            what = _REFUSED.get(type(node).__name__, f"'{type(node).__name__}'")
            if isinstance(node, ast.Attribute):
                what = f"attribute access ('.{node.attr}')"
            self.fail(f"{what} is not allowed ({_ONLY})")
        return method(node)

    def visit_Constant(self, node: ast.Constant):
        if not isinstance(node.value, (int, float, str, bool)) or node.value is None:
            self.fail(f"literal {clip(repr(node.value), 40)} is not allowed")
        return node.value

    def visit_Name(self, node: ast.Name):
        name = "in" if node.id == _IN_NAME else node.id
        if name in self.scope:
            return self.scope[name]
        if node.id in ("true", "True"):
            return True
        if node.id in ("false", "False"):
            return False
        known = sorted(str(k) for k in self.scope if not str(k).startswith("_"))
        self.fail(f"unknown name '{name}'{did_you_mean(name, known)}"
                  + (f"; known here: {', '.join(known)}" if known else ""))

    def visit_BinOp(self, node: ast.BinOp):
        op = _BINOPS.get(type(node.op))
        if op is None:
            self.fail(f"operator '{type(node.op).__name__}' is not allowed")
        left, right = self.visit(node.left), self.visit(node.right)
        self._numbers(left, right)
        if isinstance(node.op, ast.Pow) and abs(right) > _MAX_POW:
            self.fail(f"exponent {right} is too large")
        if isinstance(node.op, ast.Pow) and isinstance(left, int) and isinstance(right, int) \
                and right * abs(left).bit_length() > 64 * _MAX_POW:
            self.fail(f"{left} ** {right} is too large")
        try:
            value = op(left, right)
        except ZeroDivisionError:
            self.fail("division by zero")
        except OverflowError:
            self.fail("the result is too large")
        if isinstance(value, complex):
            self.fail(f"({left}) ** {right} is not a real number")
        return value

    def visit_UnaryOp(self, node: ast.UnaryOp):
        value = self.visit(node.operand)
        if isinstance(node.op, ast.Not):
            return not value
        self._numbers(value)
        if isinstance(node.op, ast.Invert):
            self.fail("operator '~' is not allowed")
        return -value if isinstance(node.op, ast.USub) else +value

    def visit_BoolOp(self, node: ast.BoolOp):
        values = [self.visit(v) for v in node.values]
        return all(values) if isinstance(node.op, ast.And) else any(values)

    def visit_Compare(self, node: ast.Compare):
        left = self.visit(node.left)
        for op, comp in zip(node.ops, node.comparators):
            fn = _CMPOPS.get(type(op))
            if fn is None:
                self.fail(f"comparison '{type(op).__name__}' is not allowed")
            right = self.visit(comp)
            try:
                holds = fn(left, right)
            except TypeError:
                self.fail(f"cannot compare {clip(repr(left), 40)} with {clip(repr(right), 40)}")
            if not holds:
                return False
            left = right
        return True

    def visit_IfExp(self, node: ast.IfExp):
        return self.visit(node.body) if self.visit(node.test) else self.visit(node.orelse)

    def visit_Subscript(self, node: ast.Subscript):
        """``table[key]``: an entry of a list or mapping the spec defines (e.g. in ``vars``)."""
        table = self.visit(node.value)
        if isinstance(node.slice, ast.Slice):
            self.fail("slices are not allowed; look up one entry: table[key]")
        key = self.visit(node.slice)
        if not isinstance(key, (int, float, str)):
            self.fail(f"a table key must be a number or a name, got {clip(repr(key), 40)}")
        if isinstance(table, dict):
            if key not in table and isinstance(key, float) and key.is_integer():
                key = int(key)
            if key not in table:
                keys = ", ".join(map(str, table))
                self.fail(f"no entry {clip(repr(key), 40)} in the table (its keys: {clip(keys)})")
            return table[key]
        if isinstance(table, (list, tuple)):
            if isinstance(key, float) and key.is_integer():
                key = int(key)
            if isinstance(key, (bool, str, float)) or not -len(table) <= key < len(table):
                self.fail(f"index {key!r} is out of range (the list has {len(table)} entries)")
            return table[key]
        self.fail(f"{clip(repr(table), 40)} is not a table; only lists and mappings can be indexed")

    def visit_Call(self, node: ast.Call):
        if isinstance(node.func, ast.Attribute):
            self.fail(f"method calls ('.{node.func.attr}()') are not allowed; "
                      f"allowed functions: {', '.join(FUNCTIONS)}")
        if not isinstance(node.func, ast.Name):
            if isinstance(node.func, ast.Lambda):
                self.visit(node.func)                          # "lambda is not allowed"
            self.fail(f"only the functions {', '.join(FUNCTIONS)} can be called")
        if node.func.id not in FUNCTIONS:
            name = node.func.id
            self.fail(f"function '{name}' is not allowed{did_you_mean(name, FUNCTIONS)}; "
                      f"allowed: {', '.join(FUNCTIONS)}")
        if node.keywords:
            self.fail("keyword arguments are not allowed")
        args = [self.visit(a) for a in node.args]
        self._numbers(*args)
        try:
            return FUNCTIONS[node.func.id](*args)
        except (TypeError, ValueError, OverflowError, ZeroDivisionError) as e:
            self.fail(f"{node.func.id}(): {e}")

    def _numbers(self, *values):
        for v in values:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                self.fail(f"{clip(repr(v), 40)} is not a number")
