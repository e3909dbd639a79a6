"""Channel rounding shared by the expressions and RegNet's rule: torchvision's make_divisible."""
from __future__ import annotations


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``v`` to a multiple of ``divisor``, never more than 10% below it (torchvision's rule)."""
    divisor = int(divisor)
    min_value = divisor if min_value is None else int(min_value)
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return int(new_v)
