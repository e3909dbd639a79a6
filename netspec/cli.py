"""What every command line shares: one way to fail, and ``key=value`` arguments."""
from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

from .errors import NetspecError


def fail(message: str, status: int = 2) -> NoReturn:
    """Print ``error: message`` to stderr and exit (2: the user can fix what went wrong)."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(status)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn any :class:`NetspecError` raised inside into one line and exit status 2."""
    try:
        yield
    except NetspecError as e:
        fail(str(e))


def emit(text: str) -> None:
    """Print a page; a reader that stops early (``| head``) ends it quietly."""
    try:
        print(text)
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def parse_args(argv: list[str], usage: str, known: dict[str, object]) -> tuple[dict, list[str]]:
    """``key=value`` arguments: the ``known`` ones (with defaults) and the rest (overrides)."""
    if any(a in ("-h", "--help", "help") for a in argv):
        print(usage)
        sys.exit(0)
    options, rest = dict(known), []
    for arg in argv:
        key, eq, value = arg.partition("=")
        if not eq:
            fail(f"arguments are key=value, got '{arg}'\n{usage}")
        if key in known:
            options[key] = value
        else:
            rest.append(arg)
    return options, rest
