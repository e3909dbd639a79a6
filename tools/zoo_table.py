"""Print the README's zoo table from the specs and the tests' claims: python tools/zoo_table.py

Params and MACs come from ``netspec.analyze`` at each spec's own input; "proven against" from
tests/zoo_proofs.py, the list the proving tests are parametrized from. tests/test_readme.py
checks the README's table against this one.
"""
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import zoo_proofs  # noqa: E402

import netspec  # noqa: E402
from netspec.lang.loader import load_spec  # noqa: E402

HEADER = ["| spec | paper | params | MACs | proven against |", "|---|---|---:|---:|---|"]


def authors(paper: str) -> str:
    m = re.search(r"\(([^()]*\d{4})\)\s*$", paper)
    return m.group(1) if m else paper


def macs(n: int) -> str:
    return f"{n / 1e9:.2f} G" if n >= 1e9 else f"{n / 1e6:.1f} M"


def row(name: str) -> str:
    report = netspec.analyze(name)
    paper = authors(str(load_spec(name).get("paper", "")))
    return (f"| `{name}` | {paper} | {report.params:,} | {macs(report.macs)} | "
            f"{zoo_proofs.proven(name)} |")


def table() -> list[str]:
    return HEADER + [row(name) for name in netspec.zoo()]


if __name__ == "__main__":
    print("\n".join(table()))
