"""Short numbers for the search's progress lines, spec headers and rejection reasons (2.9M, 1.2G)."""
from __future__ import annotations


def si(v: float | None) -> str:
    """``v`` with three significant digits and a K, M or G suffix; ``-`` for None."""
    if v is None:
        return "-"
    for unit, div in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(v) >= div:
            return f"{v / div:.3g}{unit}"
    return f"{v:.3g}"
