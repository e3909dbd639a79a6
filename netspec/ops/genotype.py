"""A NASNet cell's genotype as data: per block its inputs, one op per input and a combine.

Parsed and checked here (indices in range, one op per input, a known combine), each entry may be
an expression or a search choice; :mod:`netspec.ops.cells` builds the cell from the result.
"""
from __future__ import annotations

from ..errors import did_you_mean
from .base import Arg

COMBINES = ("add", "concat")


def maybe_choice(ctx, raw, loc):
    """A search choice ({choice: [...]}) standing for a whole list is sampled; else raw."""
    if isinstance(raw, dict) and len(raw) == 1 and next(iter(raw)) == "choice":
        return ctx.choice(raw, loc)
    return raw


def need_list(value, loc, what: str) -> list:
    if not isinstance(value, list) or not value:
        raise loc.error(f"{what} must be a non-empty list, got {value!r}")
    return value


def sizes(feats) -> str:
    return ", ".join(f.describe() for f in feats)


def parse_genotype(a, ctx, nstates_in: int = 2):
    """The genotype as [(inputs, ops, combine, locations)], checked; expressions evaluated."""
    gloc = a.at("genotype")
    blocks = need_list(maybe_choice(ctx, a.genotype, gloc), gloc,
                        "a cell's genotype (one entry per block)")
    parsed = []
    for b, entry in enumerate(blocks):
        bloc = gloc.key(blocks, b)
        if not isinstance(entry, dict):
            raise bloc.error(f"block {b} must be a mapping {{inputs: [i, j], ops: [op1, op2], "
                             f"combine: add}}, got {entry!r}")
        for key in entry:
            if key not in ("inputs", "ops", "combine"):
                hint = did_you_mean(str(key), ("inputs", "ops", "combine"))
                raise bloc.key(entry, key).error(f"unknown key '{key}' in a cell block{hint}; "
                                                 f"allowed: inputs, ops, combine")
        for key in ("inputs", "ops"):
            if key not in entry:
                raise bloc.error(f"block {b} has no '{key}'")
        iloc, oloc = bloc.key(entry, "inputs"), bloc.key(entry, "ops")
        inputs_raw = need_list(maybe_choice(ctx, entry["inputs"], iloc), iloc,
                                f"block {b}'s inputs")
        ops_raw = need_list(maybe_choice(ctx, entry["ops"], oloc), oloc, f"block {b}'s ops")
        if len(inputs_raw) != len(ops_raw):
            raise bloc.error(f"block {b} has {len(inputs_raw)} inputs but {len(ops_raw)} ops; "
                             f"each input needs its operation")
        inputs = []
        limit = nstates_in + b
        for i, v in enumerate(inputs_raw):
            vloc = iloc.key(inputs_raw, i)
            idx = ctx.typed("inputs", Arg("int"), v, vloc)
            if not 0 <= idx < limit:
                later = ("" if not b else f" and {nstates_in} (the block before it)" if b == 1
                         else f" and {nstates_in}..{limit - 1} (the blocks before it)")
                raise vloc.error(f"input {idx} of block {b} is out of range: a block can use "
                                 f"states 0 (the cell before the previous), 1 (the previous)"
                                 f"{later}")
            inputs.append(idx)
        ops = [ctx.typed("ops", Arg("str"), v, oloc.key(ops_raw, i)) for i, v in enumerate(ops_raw)]
        comb = entry.get("combine", "add")
        comb = ctx.typed("combine", Arg("str", choices=COMBINES), comb, bloc.key(entry, "combine"))
        parsed.append((inputs, ops, comb, bloc, [oloc.key(ops_raw, i)
                                                 for i in range(len(ops_raw))]))
    return parsed


def parse_concat(a, ctx, nstates: int, used: set[int]) -> list[int]:
    raw = a.concat
    loc = a.at("concat")
    if raw == "auto" or raw is None:
        return [i for i in range(nstates) if i not in used]
    items = need_list(maybe_choice(ctx, raw, loc), loc,
                       "concat ('auto' or a list of state indices)")
    out = []
    for i, v in enumerate(items):
        idx = ctx.typed("concat", Arg("int"), v, loc.key(items, i))
        if not 0 <= idx < nstates:
            raise loc.key(items, i).error(f"state {idx} is out of range: this cell has states "
                                          f"0..{nstates - 1} (0, 1: its inputs; 2..: its blocks)")
        if idx in out:
            raise loc.key(items, i).error(f"state {idx} is concatenated twice")
        out.append(idx)
    return out
