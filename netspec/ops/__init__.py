"""Primitives and combinators of the language: importing this package registers them all in ``OPS``.

Every module of the package is imported, so a new primitive is one ``@op`` in one new file here; a
user registers their own the same way, in their own file (see README, "Adding a primitive").
"""
import importlib as _importlib
import pkgutil as _pkgutil

from .activations import ACTIVATIONS, register_activation
from .base import OPS, Arg, Feat, Node, op
from .norms import NORMS, Setting, register_norm

for _module in _pkgutil.iter_modules(__path__):
    _importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["OPS", "Arg", "Feat", "Node", "op", "NORMS", "Setting", "register_norm", "ACTIVATIONS",
           "register_activation"]
