"""The one error type a user sees for a bad spec, and the helpers that make its message useful."""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class SpecError(ValueError):
    """A problem in a spec or an override.

    The message always reads ``file:line: key.path: what is wrong`` so that an editor can jump to it.
    """

    def __init__(self, message: str, *, file: str = "<spec>", line: int | None = None, path: str = ""):
        self.file, self.line, self.path, self.reason = file, line, path, message
        where = f"{file}:{line}" if line is not None else file
        super().__init__(f"{where}: {path}: {message}" if path else f"{where}: {message}")


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest candidate, or an empty string."""
    close = difflib.get_close_matches(str(word), sorted(set(candidates)), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def one_of(candidates: Iterable[str]) -> str:
    names = sorted(set(candidates))
    return ", ".join(names) if len(names) <= 12 else ", ".join(names[:12]) + ", ..."


class WeightsError(ValueError):
    """Reference weights that don't fit the compiled model; the message names both sides."""
