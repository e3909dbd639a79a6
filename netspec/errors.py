"""Every error a user can act on, in one place, and the helpers that make their messages useful.

Each is a :class:`NetspecError`: the command lines print its one-line message and exit with
status 2 (``netspec.cli.user_errors``); anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class NetspecError(Exception):
    """A problem in what the user gave (a spec, an override, a config value, a path, a file)."""


class SpecError(NetspecError, ValueError):
    """A problem in a spec or an override.

    The message always reads ``file:line: key.path: what is wrong`` so that an editor can jump to it.
    """

    def __init__(self, message: str, *, file: str = "<spec>", line: int | None = None, path: str = ""):
        self.file, self.line, self.path, self.reason = file, line, path, message
        where = f"{file}:{line}" if line is not None else file
        super().__init__(f"{where}: {path}: {message}" if path else f"{where}: {message}")


class WeightsError(NetspecError, ValueError):
    """Reference weights that don't fit the compiled model; the message names both sides."""


class ConfigError(NetspecError, ValueError):
    """A training or search config value that cannot work; the message names the key."""


class DataError(NetspecError, ValueError):
    """A bad data path or data config; the message says what, where and how to fix it."""


class CheckpointError(NetspecError, ValueError):
    """A checkpoint that cannot be read, or holds another network than the run's."""


class NonFiniteLoss(NetspecError, RuntimeError):
    """The training loss became NaN or infinite; the message names the step."""


class StrategyError(NetspecError, ValueError):
    """A search strategy or pruner that cannot serve this search (a bad name or option)."""


class StorageError(NetspecError, ValueError):
    """A storage URL that cannot be opened: no driver for it, a malformed URL, no server."""


class SearchFailed(NetspecError, RuntimeError):
    """The search stopped: too many trials failed."""


class ArgumentError(NetspecError, ValueError):
    """A bad command-line argument of the small commands (summary, eval, export)."""


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest candidate, or an empty string."""
    close = difflib.get_close_matches(str(word), sorted(set(candidates)), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def one_of(candidates: Iterable[str]) -> str:
    names = sorted(set(candidates))
    return ", ".join(names) if len(names) <= 12 else ", ".join(names[:12]) + ", ..."
