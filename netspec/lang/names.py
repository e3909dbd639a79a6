"""Named tensors at resolve time: which layer a name stands for, where it may be read.

A layer's ``name:`` names its module and its output. A later layer reads it with ``from: NAME``
(instead of the previous layer's output), a ``concat``/``add``/``mul`` merges names in the written
order, and the top-level ``outputs:`` returns several. Names live in a scope: the network (stem,
stages and head together), each block call (its body sees only its own names) and each ``cells``
stack (a cell reads its two input states, nothing from outside). Only a name that is read is kept
at run time (see :mod:`netspec.ops.tape`).
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import count

from ..errors import did_you_mean
from ..ops.base import Feat, Node
from .source import Loc, Map


@dataclass
class Named:
    node: Node
    loc: Loc
    key: str = ""         # the tape key, once something reads it


@dataclass
class Scope:
    what: str             # "the network", "block 'x'", "this cells stack": for messages
    raw: object           # the spec data the scope's layers are written in (to find later names)
    parent: Scope | None = None
    names: dict[str, list[Named]] = field(default_factory=dict)
    hidden: set = field(default_factory=set)      # names of a residual's body, in its shortcut


_keys = count()


def _keep(named: Named, name: str) -> str:
    """Mark the named node's output as kept on the tape (once) and return its key."""
    if not named.key:
        named.key = f"{name}#{next(_keys)}"
        node = named.node
        build, key = node.build, named.key

        def build_and_save():
            from ..ops.tape import SaveOutput, current_tape
            module = build()
            module.register_forward_hook(SaveOutput(key, current_tape()))
            return module

        node.build = build_and_save
        # the kept tensor is read later: nothing may change it in place (an activation, a sum)
        node.fresh = False
        node.overwritable = lambda: False
    return named.key


def read_into(node: Node, key: str, name: str) -> None:
    """Make the node's module read the tensor ``key`` instead of its input (``from:``)."""
    build = node.build

    def build_and_read():
        from ..ops.tape import ReadInput, current_tape
        module = build()
        module.register_forward_pre_hook(ReadInput(key, current_tape()))
        return module

    node.build = build_and_read
    node.reads = key            # an activation here must not run in place: the tensor is kept
    node.info = f"{node.info}, from {name}" if node.info else f"from {name}"


class TensorNames:
    """The scopes of one resolve pass."""

    def __init__(self, raw):
        self.scope = Scope("the network", raw)

    @contextmanager
    def enter(self, what: str, raw):
        self.scope = Scope(what, raw, self.scope)
        try:
            yield
        finally:
            self.scope = self.scope.parent

    def mark(self) -> dict:
        """The names defined so far in this scope, to :meth:`forget` those defined after."""
        return {k: len(v) for k, v in self.scope.names.items()}

    @contextmanager
    def hidden_since(self, mark: dict):
        """Inside: the names defined after ``mark`` are not visible (layers that run before them,
        as a residual's shortcut runs before its body)."""
        saved = self.scope.names
        self.scope.names = {k: v[:mark[k]] for k, v in saved.items() if k in mark}
        self.scope.hidden = {k for k, v in saved.items() if len(v) > mark.get(k, 0)}
        try:
            yield
        finally:
            self.scope.names, self.scope.hidden = saved, set()

    def forget(self, mark: dict) -> None:
        """Drop the names defined after ``mark`` (those of layers that may not run, e.g. an
        auxiliary head in eval)."""
        self.scope.names = {k: v[:mark[k]] for k, v in self.scope.names.items() if k in mark}

    def define(self, name: str, node: Node, loc: Loc) -> None:
        self.scope.names.setdefault(name, []).append(Named(node, loc))

    def keep(self, node: Node, label: str) -> tuple[str, Feat]:
        """The tape key and feature of a layer found otherwise (by its module path)."""
        return _keep(Named(node, node.loc), label), node.out

    def read(self, name, loc: Loc) -> tuple[str, Feat]:
        """The tape key and the feature of the tensor ``name``, or a located SpecError."""
        if not isinstance(name, str) or not name.isidentifier():
            raise loc.error(f"a tensor is read by its layer's name (an identifier), got {name!r}")
        found = self.scope.names.get(name)
        if found:
            if len(found) > 1:
                lines = ", ".join(str(n.loc.line) for n in found)
                raise loc.error(f"'{name}' names {len(found)} layers in {self.scope.what} "
                                f"(lines {lines}); give the one to read a name of its own")
            return _keep(found[0], name), found[0].node.out
        raise loc.error(self._missing(name))

    def _missing(self, name: str) -> str:
        if name in self.scope.hidden:
            return (f"'{name}' is made by the residual's body, which runs after its shortcut: "
                    f"the shortcut reads only names defined before the residual")
        outer = self.scope.parent
        while outer is not None:
            if name in outer.names:
                line = outer.names[name][0].loc.line
                return (f"'{name}' (line {line}) is outside {self.scope.what}, which reads only "
                        f"names defined in it" + (": a cell reads its two input states"
                                                  if "cells" in self.scope.what else ""))
            outer = outer.parent
        later = dict(_written_names(self.scope.raw))
        if name in later:
            return (f"'{name}' is defined later (line {later[name]}): a layer reads only the "
                    f"outputs of layers before it")
        known = list(self.scope.names)
        hint = did_you_mean(name, known) or (f"; names defined before here: {', '.join(known)}"
                                             if known else "; no layer before here has a name")
        return f"no layer named '{name}' before here in {self.scope.what}{hint}"


def _written_names(raw, line=None):
    """(name, line) of every ``name:`` written in spec data, blocks' bodies aside."""
    if isinstance(raw, list):
        for i, item in enumerate(raw):
            yield from _written_names(item, getattr(raw, "line_of", lambda _: line)(i))
    elif isinstance(raw, dict):
        for k, v in raw.items():
            at = raw.line_of(k) if isinstance(raw, Map) else line
            if k == "name" and isinstance(v, str):
                yield v, at
            elif isinstance(v, (list, dict)):
                yield from _written_names(v, at)
