"""``python -m netspec.summary``: the lecture-style table of a spec, from the command line.

    python -m netspec.summary spec=vgg16
    python -m netspec.summary spec=mobilenet_v2 scale.width=0.5 input.size=160 depth=3

The table itself (its rows and totals) is :mod:`netspec.table`; this module reads the arguments,
analyzes the spec and prints it.
"""
from __future__ import annotations

import sys
import textwrap

from .cli import emit, user_errors
from .errors import ArgumentError
from .plugins import load_plugins
from .table import WIDTH, format_table

USAGE = """\
usage: python -m netspec.summary spec=NAME_OR_PATH [key.path=value ...] [depth=N]
       netspec-summary spec=NAME_OR_PATH [key.path=value ...] [depth=N]

Print a spec's layers (output size, activation memory, weights, parameters, MACs, receptive
field) and its totals, computed from the spec alone (no weights are allocated).

  spec=NAME_OR_PATH   a zoo name (below) or a path to a YAML spec
  depth=N             cut the tree at N levels: blocks below it show as one row each
                      (default: every layer)
  key.path=value      overrides of the spec, e.g. input.size=32 num_classes=10 scale.width=0.5

memory and MACs per row in K/M/G (10^3, 10^6, 10^9); bytes for float32; totals are exact.
"""


# -- command line -------------------------------------------------------------------------------

def _usage() -> str:
    from .lang.loader import zoo
    names = textwrap.fill(", ".join(zoo()), WIDTH, initial_indent="zoo: ",
                          subsequent_indent="     ", break_on_hyphens=False)
    return f"{USAGE}\n{names}\n"



def parse_args(argv: list[str]) -> tuple[str, list[str], int | None]:
    """``spec=``, ``depth=`` and the overrides; an ArgumentError says what is wrong."""
    spec, depth, overrides = None, None, []
    for arg in argv:
        key, eq, value = arg.partition("=")
        if not eq or not key.strip():
            raise ArgumentError(f"arguments look like key=value (spec=vgg16, depth=2, "
                                f"input.size=32), got '{arg}'; see --help")
        key = key.strip()
        if key == "spec":
            if spec is not None:
                raise ArgumentError("spec= is given twice")
            if not value.strip():
                raise ArgumentError("spec= needs a zoo name or a path to a YAML spec")
            spec = value.strip()
        elif key == "depth":
            try:
                depth = int(value)
            except ValueError:
                raise ArgumentError(f"depth must be a whole number, got '{value}'") from None
            if depth < 1:
                raise ArgumentError(f"depth must be 1 or more, got {depth}")
        else:
            overrides.append(arg)
    if spec is None:
        raise ArgumentError("which spec? give spec=NAME (a zoo name) or spec=path/to/spec.yaml; "
                         "see --help")
    return spec, overrides, depth


def main(argv: list[str] | None = None) -> int:
    """``netspec-summary``: print the table; a bad spec or argument exits 2 with one line."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if any(a in ("-h", "--help", "help") for a in argv):
        sys.stdout.write(_usage())
        return 0
    with user_errors():
        load_plugins()
        spec, overrides, depth = parse_args(argv)
        from .compile import analyze
        report = analyze(spec, overrides)
        text = format_table(report, depth)
    emit(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
