"""The user's own ops, norms, blocks and data sources, for the command lines.

In Python a user imports the file that registers them; a command line imports what
``NETSPEC_PLUGINS`` names (comma-separated module names or paths to .py files) and every module an
installed package declares under the entry-point group ``netspec.plugins``.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from importlib.metadata import entry_points
from pathlib import Path

from .errors import ConfigError

ENV = "NETSPEC_PLUGINS"
GROUP = "netspec.plugins"
_loaded: set[str] = set()


def _import(name: str) -> None:
    if name.endswith(".py") or os.sep in name:
        path = Path(name).expanduser().resolve()
        if not path.is_file():
            raise ConfigError(f"{ENV}: no such file: {name}")
        spec = importlib.util.spec_from_file_location(f"netspec_plugin_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    else:
        importlib.import_module(name)


def load_plugins() -> list[str]:
    """Import every plugin once; a plugin that fails is one ConfigError naming it."""
    names = [n.strip() for n in os.environ.get(ENV, "").split(",") if n.strip()]
    names += [ep.value for ep in entry_points(group=GROUP)]
    for name in names:
        if name in _loaded:
            continue
        try:
            _import(name)
        except ConfigError:
            raise
        except Exception as e:      # the user's code: say which plugin broke, and how
            raise ConfigError(f"plugin '{name}' ({ENV} or the {GROUP} entry points) failed to "
                              f"import: {type(e).__name__}: {e}") from e
        _loaded.add(name)
    return names
