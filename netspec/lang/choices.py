"""How a search choice is written in a spec: ``{choice: [...]}``, ``{int: [lo, hi]}``, ``{float: [lo, hi]}``.

The resolve pass asks its sampler for the value of each choice it meets; ``netspec.search`` names
and samples them. Both recognise a choice by this one rule.
"""
from __future__ import annotations

CHOICE_KEYS = ("choice", "int", "float")
CHOICE_OPTIONS = ("log", "step")    # {float: [1e-4, 1e-1], log: true}, {int: [1, 8], step: 2}


def is_choice(raw) -> bool:
    """A search choice: its first key is choice/int/float; options may follow (log, step)."""
    return isinstance(raw, dict) and len(raw) >= 1 and next(iter(raw)) in CHOICE_KEYS \
        and all(k in CHOICE_OPTIONS for k in list(raw)[1:])
