"""What the small command lines share: ``key=value`` arguments and user-facing failures."""
from __future__ import annotations

import sys


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


def fail(message: str, status: int = 2):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(status)
