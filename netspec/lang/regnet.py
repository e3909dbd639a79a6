"""RegNet's quantized linear rule (Radosavovic et al. 2020, "Designing Network Design Spaces",
Sec. 3.3): the per-stage widths, depths and groups of a network from six numbers.

A RegNet of depth ``d`` has a width per block that grows linearly,

    u_j = w0 + wa * j                        for 0 <= j < d,

and is then made piecewise constant in log space, a step of ``wm`` per stage:

    s_j = round(log(u_j / w0) / log(wm)),    w_j = w0 * wm^s_j,

each ``w_j`` rounded to a multiple of 8. A stage is a run of blocks of equal width; its depth is
the run's length. Last, each stage's bottleneck width ``w * b`` (``b``: the bottleneck
multiplier, 1 / the paper's ratio) is made a multiple of its group width ``g`` (itself at most the
bottleneck width), and the stage width follows: the group compatibility adjustment. torchvision
rounds that multiple with ``make_divisible`` (half up, never 10% below); the paper's code (pycls)
to the nearest multiple, so RegNetX-400MF's last stage is 400 wide in torchvision and 384 in the
paper. ``regnet`` (the spec language's function) is torchvision's, so that the zoo's RegNets are
its models; ``rounding="paper"`` gives the paper's.
"""
from __future__ import annotations

import math

from .rounding import make_divisible

QUANTUM = 8          # block widths are multiples of 8
MAX_BLOCKS = 10_000  # a spec's d beyond this is a typo, and would hold the resolve pass


def block_widths(w0: float, wa: float, wm: float, d: int) -> list[int]:
    """The width of each of the ``d`` blocks: u_j quantized in log space to w0 * wm^s_j, then
    to a multiple of 8."""
    widths = []
    for j in range(d):
        u = w0 + wa * j
        s = round(math.log(u / w0) / math.log(wm))
        widths.append(int(round(w0 * wm ** s / QUANTUM)) * QUANTUM)
    return widths


def stage_runs(widths: list[int]) -> tuple[list[int], list[int]]:
    """Runs of equal width: (the width of each stage, its number of blocks)."""
    stage_widths, depths = [], []
    for w in widths:
        if stage_widths and stage_widths[-1] == w:
            depths[-1] += 1
        else:
            stage_widths.append(w)
            depths.append(1)
    return stage_widths, depths


def _nearest_multiple(v: float, q: int) -> int:
    """pycls's quantize_float: the nearest multiple (ties to even, as Python's round)."""
    return int(round(v / q) * q)


def compatible(widths: list[int], g: int, b: float,
               rounding: str = "torchvision") -> tuple[list[int], list[int]]:
    """Stage widths whose bottleneck widths are multiples of their group widths, and those group
    widths (``g``, or the bottleneck width where that is smaller)."""

    if rounding not in ("torchvision", "paper"):
        raise ValueError(f"rounding must be 'torchvision' or 'paper', got {rounding!r}")
    multiple = make_divisible if rounding == "torchvision" else _nearest_multiple
    mids = [int(w * b) for w in widths]
    group_widths = [min(g, mid) for mid in mids]
    mids = [multiple(mid, gw) for mid, gw in zip(mids, group_widths)]
    return [int(mid / b) for mid in mids], group_widths


def _check(w0, wa, wm, d, g, b) -> None:
    """torchvision's conditions (w0 a multiple of 8, wa >= 0, wm > 1) and sane d, g, b."""
    if not (w0 > 0 and float(w0).is_integer() and w0 % QUANTUM == 0):
        raise ValueError(f"w0 (the initial width) must be a positive multiple of {QUANTUM}, "
                         f"got {w0}")
    if wa < 0:
        raise ValueError(f"wa (the width slope) must be at least 0, got {wa}")
    if wm <= 1:
        raise ValueError(f"wm (the width multiplier per stage) must be more than 1, got {wm}")
    if not (1 <= d <= MAX_BLOCKS and float(d).is_integer()):
        raise ValueError(f"d (the number of blocks) must be an integer from 1 to {MAX_BLOCKS:,}, "
                         f"got {d}")
    if not (g >= 1 and float(g).is_integer()):
        raise ValueError(f"g (the group width) must be a positive integer, got {g}")
    if b <= 0:
        raise ValueError(f"b (the bottleneck multiplier) must be positive, got {b}")


def regnet(w0: float, wa: float, wm: float, d: int, g: int, b: float = 1.0, *,
           rounding: str = "torchvision") -> dict:
    """The stages of RegNet(w0, wa, wm, d, g, b), as a table a spec indexes per stage:
    ``widths`` (output channels), ``depths`` (blocks), ``mids`` (bottleneck widths),
    ``group_widths``, ``groups`` (of the 3x3 conv: mid // group width) and ``stages`` (how many).
    Arithmetic of torchvision's BlockParams.from_init_params."""
    _check(w0, wa, wm, d, g, b)
    widths, depths = stage_runs(block_widths(w0, wa, wm, int(d)))
    widths, group_widths = compatible(widths, int(g), b, rounding)
    mids = [int(round(w * b)) for w in widths]        # ResBottleneckBlock's w_b
    return {"widths": widths, "depths": depths, "mids": mids, "group_widths": group_widths,
            "groups": [mid // gw for mid, gw in zip(mids, group_widths)], "stages": len(widths)}
