"""Primitives and combinators; importing this package registers them all in ``OPS``."""
from . import cells, combinators, layers  # noqa: F401  (registration)
from .base import OPS, Arg, Feat, Node, op

__all__ = ["OPS", "Arg", "Feat", "Node", "op"]
