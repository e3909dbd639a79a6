"""The lecture-style table of a report: one row per layer, then the totals.

Rows read like the VGG-16 table of the CS231n notes::

    CONV3-64: [224x224x64] memory: 224*224*64=3.2M params: (3*3*3)*64 = 1,728

that is: the layer (its module path in the built model), its kind and short info, its output size
(HxWxC as the notes write it, or N for a vector), its activation memory (elements, and bytes),
its weights as the notes count them (no biases, no norm parameters), its parameters with biases,
its multiply-accumulates and its receptive field. The totals follow. Everything is read from a
:class:`netspec.analyze.Report`; this module imports nothing of netspec.
"""
from __future__ import annotations

WIDTH = 100            # the table fits a terminal this wide
_GAP = "  "


# -- number formats -----------------------------------------------------------------------------

def _compact(n: int, unit: str = "") -> str:
    """3 significant digits with a decimal prefix: 3211264 -> 3.21M, 802816 -> 803K."""
    v, prefix = float(n), ""
    for p in "KMGTP":
        if v < 999.5:
            break
        v, prefix = v / 1000, p
    if not prefix:
        return f"{n}{unit}"
    text = f"{v:.2f}" if v < 9.995 else f"{v:.1f}" if v < 99.95 else f"{v:.0f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{text}{prefix}{unit}"


def _bytes(n: int) -> str:
    return _compact(n)          # the column is headed "bytes": 12.8M, 602K


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


def shape_hwc(shape: tuple) -> str:
    """(C, H, W) -> 'HxWxC' as the notes write it; (N,) -> 'N'."""
    if len(shape) == 3:
        c, h, w = shape
        return f"{h}x{w}x{c}"
    return "x".join(str(s) for s in shape)


def _rf(rf: tuple) -> str:
    return str(rf[0]) if rf[0] == rf[1] else f"{rf[0]}x{rf[1]}"


def _dtype(bytes_per_element: int) -> str:
    return {1: "int8", 2: "float16/bfloat16", 4: "float32", 8: "float64"}.get(
        bytes_per_element, f"{bytes_per_element} bytes per element")


def _layer_text(layer) -> str:
    return f"{layer.kind} {layer.info}".strip()


# -- the table ----------------------------------------------------------------------------------

COLUMNS = ("layer", "type", "output", "memory", "bytes", "weights", "params", "MACs", "RF")
_RIGHT = {"memory", "bytes", "weights", "params", "MACs", "RF"}


def table_rows(report, depth: int | None = None,
               bytes_per_element: int = 4) -> list[tuple[str, ...]]:
    """The cells of every row (the input first), as :func:`format_table` prints them."""
    if depth is not None and depth < 1:
        raise ValueError(f"depth must be 1 or more, got {depth}")
    layers = report.layers if depth is None else report.at_depth(depth)
    inp = 1
    for s in report.input_shape:
        inp *= s
    rows = [("input", "image" if len(report.input_shape) == 3 else "vector",
             shape_hwc(report.input_shape), _compact(inp), _bytes(inp * bytes_per_element),
             "0", "0", "0", "1")]
    for lay in layers:
        rows.append((lay.name, _layer_text(lay), shape_hwc(lay.out_shape),
                     _compact(lay.activations), _bytes(lay.activations * bytes_per_element),
                     f"{lay.weights:,}", f"{lay.params:,}", _compact(lay.macs), _rf(lay.rf)))
    return rows


def _fit(cells: list[tuple[str, ...]], width: int) -> tuple[list[int], list[str]]:
    """Column widths and gaps that fit ``width``: narrow the gaps, then the type and name."""
    widths = [max(len(r[i]) for r in cells) for i in range(len(COLUMNS))]
    gaps = [_GAP] * (len(COLUMNS) - 1)
    total = lambda: sum(widths) + sum(len(g) for g in gaps)
    # one space before and between the numeric columns (right-aligned under their headers)
    for i in range(len(gaps) - 1, 1, -1):
        if total() <= width:
            break
        gaps[i] = " "
    excess = total() - width
    if excess > 0 and excess <= widths[1] - 10:
        widths[1] -= excess          # keep the names whole; the output shows the channels
    elif excess > 0:                 # names must be shortened anyway: share the cut
        widths[1] = min(widths[1], max(16, widths[1] - excess))
        widths[0] = max(18, widths[0] - (total() - width))
        widths[1] = max(10, widths[1] - max(0, total() - width))
    return widths, gaps


def _clip(text: str, n: int, middle: bool = False) -> str:
    if len(text) <= n:
        return text
    if middle:             # module paths: keep the start and the leaf's name
        head = (n - 2) // 2
        return text[:head] + ".." + text[len(text) - (n - 2 - head):]
    return text[:n - 2] + ".."


def format_table(report, depth: int | None = None, bytes_per_element: int = 4) -> str:
    """The report as a lecture-style table, one row per layer (or per block at ``depth``)."""
    rows = table_rows(report, depth, bytes_per_element)
    widths, gaps = _fit([COLUMNS, *rows], WIDTH)
    lines = []

    def line(cells):
        out = []
        for i, (cell, w) in enumerate(zip(cells, widths, strict=True)):
            cell = _clip(cell, w, middle=i == 0)
            out.append(cell.rjust(w) if COLUMNS[i] in _RIGHT else cell.ljust(w))
            if i < len(gaps):
                out.append(gaps[i])
        return "".join(out).rstrip()

    cut = "every layer" if depth is None else f"depth {depth}"
    title = (f"{report.name or 'network'}: {shape_hwc(report.input_shape)} -> "
             f"{shape_hwc(report.output_shape)}  ({cut}; memory and MACs in K/M/G, "
             f"bytes for {_dtype(bytes_per_element)})")
    head = line(COLUMNS)
    rule = "-" * len(head)
    lines.append(title)
    if any(len(r[0]) > widths[0] for r in rows):
        lines.append(f"(long layer names are shortened with '..' to fit {WIDTH} columns; "
                     f"depth=N shows fewer levels)")
    lines += [rule, head, rule]
    lines += [line(r) for r in rows]
    lines.append(rule)
    lines += totals(report, bytes_per_element)
    return "\n".join(lines)


def totals(report, bytes_per_element: int = 4) -> list[str]:
    """The lines under the table: parameters, weights, MACs, activation memory, shapes."""
    inp = 1
    for s in report.input_shape:
        inp *= s
    act = report.activations
    n = max(len(f"{v:,}") for v in (report.params, report.weights, report.macs, act + inp))
    dtype = _dtype(bytes_per_element)
    b = bytes_per_element
    c_in = report.input_shape[0]
    torch_in = "x".join(str(s) for s in (1, *report.input_shape))
    torch_out = "x".join(str(s) for s in (1, *report.output_shape))
    if report.outputs:                 # a dict of named maps (a backbone)
        out_lines = [f"outputs          a dict of {len(report.outputs)}: " + ", ".join(
            f"{k} {shape_hwc(v)}" for k, v in report.outputs.items())]
    else:
        out_lines = [f"output           {shape_hwc(report.output_shape)} (torch {torch_out})"]
    return [
        f"total params     {report.params:>{n},}  (with biases and norm parameters)",
        f"weights          {report.weights:>{n},}  (without biases and norm parameters, "
        f"as the notes count them)",
        f"MACs             {report.macs:>{n},}  ({_compact(report.macs)} multiply-accumulates "
        f"per image)",
        f"activations      {act:>{n},}  elements = {_mb(act * b)} per image, forward ({dtype})",
        f"  + the input    {act + inp:>{n},}  elements = {_mb((act + inp) * b)} (backward keeps "
        f"them: about 2x in training)",
        f"input            {shape_hwc(report.input_shape)} ({c_in} channels; torch {torch_in})",
        *out_lines,
    ]
