"""NASNet-style cells (Zoph et al. 2018): ``cells`` runs a stack of cells, ``cell`` is one cell.

A cell takes the outputs of the two cells before it, ``h[i-1]`` (state 0) and ``h[i]`` (state 1),
and a *genotype*, plain data: per block its inputs (indices among the states so far: 0, 1, then
2, 3, ... for the blocks of this cell), one operation per input and a ``combine`` (``add``, as
NASNet, or ``concat``). Each block's result is a new state; the output concatenates the states no
block uses (``concat: auto``) or the ones listed. As in TF-slim's NASNet, state 1 always goes
through ReLU-1x1 conv-BN to ``c`` filters; state 0 is halved by a factorized reduction when it is
twice the size of state 1, or brought to ``c`` filters by ReLU-1x1 conv-BN when only its channels
differ; on the first cell it is the raw input itself. In a cell with ``s: 2`` (a reduction cell)
the operations on states 0 and 1 have stride 2.

``cells`` threads the pair of states through its body: after a cell, (s0, s1) becomes (s1, out),
or (s0, out) with ``skip_input`` (NASNet-A Large's ``skip_reduction_layer_input``). Cells appear
in the body as ``cell`` layers or blocks made of them, so ``n``, ``if``, blocks and width/depth
scaling work as everywhere else. Shape rules and the modules are both here; the genotype's
parsing is in :mod:`netspec.ops.genotype`, the factorized reduction in :mod:`netspec.ops.reduce`.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from ..errors import did_you_mean, one_of
from .base import REQUIRED, Arg, Feat, Node, Transparent, merge_rf, op
from .combinators import SeqNode
from .genotype import parse_concat, parse_genotype, sizes
from .reduce import FactorizedReduce


class Cell(nn.Module):
    """One NASNet cell: ``(s0, s1) -> (next s0, output)``; ``s0`` is None for the first cell."""

    def __init__(self, pre0: nn.Module | None, pre1: nn.Module, ops: list[nn.Module],
                 plan: list[tuple[tuple[int, ...], bool]], concat: list[int],
                 reduce: dict[int, nn.Module], skip_input: bool):
        super().__init__()
        pre0 = pre0 if pre0 is not None else nn.Identity()
        # a factorized reduction comes after the 1x1 of the previous state in the weights, as
        # timm's (and Cadene's) NASNet registers them, so that port_weights pairs them in order
        if isinstance(pre0, FactorizedReduce):
            self.pre1, self.pre0 = pre1, pre0
        else:
            self.pre0, self.pre1 = pre0, pre1
        self.ops = nn.ModuleList(ops)
        self.reduce = nn.ModuleDict({str(k): m for k, m in reduce.items()})
        self.plan = plan                  # per block: (input state indices, add?)
        self.concat = concat
        self.skip_input = skip_input

    def forward(self, s0, s1):
        prev = s1 if s0 is None else s0
        states = [self.pre0(prev), self.pre1(s1)]
        k = 0
        for inputs, add in self.plan:
            outs = []
            for i in inputs:
                outs.append(self.ops[k](states[i]))
                k += 1
            if add:
                y = outs[0]
                for o in outs[1:]:
                    y = y + o
            else:
                y = torch.cat(outs, 1)
            states.append(y)
        parts = [self.reduce[str(i)](states[i]) if str(i) in self.reduce else states[i]
                 for i in self.concat]
        return (prev if self.skip_input else s1), torch.cat(parts, 1)

    def extra_repr(self):
        blocks = "; ".join(f"{'+' if add else 'cat'}{list(inputs)}" for inputs, add in self.plan)
        return f"blocks=[{blocks}], concat={self.concat}, skip_input={self.skip_input}"


class CellNode(Node):
    def build(self) -> nn.Module:
        kids = dict(self.children)
        ops = [c.build() for name, c in self.children if name.startswith("ops.")]
        reduce = {int(name.split(".")[1]): c.build() for name, c in self.children
                  if name.startswith("reduce.")}
        pre0 = kids["pre0"].build() if "pre0" in kids else None
        return Cell(pre0, kids["pre1"].build(), ops, self.plan, self.concat, reduce,
                    self.skip_input)


def _resolve_inner(ctx, raw, feat: Feat, loc) -> Node:
    """Resolve spec data that the cell writes itself (no width/depth scaling: c is scaled)."""
    with ctx.unscaled():
        return ctx.resolve(raw, feat, loc)


def _op_vocabulary(ctx) -> dict[str, object]:
    """Names a genotype may use: `identity`, and every layer or block taking both c and s."""
    names = {"identity": None}
    for name in sorted(ctx.known_names()):
        target = ctx.lookup(name)
        if "c" in target.args and "s" in target.args and name != "cell":
            names[name] = target
    return names


def _cell_op(ctx, name: str, feat: Feat, c: int, s: int, loc) -> Node:
    """One operation of a block, on one state, to c filters with stride s."""
    if name == "identity":
        if s == 1 and feat.channels == c:
            return _resolve_inner(ctx, "identity", feat, loc)
        # TF-slim's 'none' that must change the stride or the channels: ReLU-1x1 conv-BN
        return _resolve_inner(ctx, [{"act": None}, {"conv": {"c": c, "k": 1, "s": s,
                                                              "act": "none"}}], feat, loc)
    target = ctx.lookup(name)
    if target is None or "c" not in target.args or "s" not in target.args or name == "cell":
        vocab = _op_vocabulary(ctx)
        if target is not None:
            raise loc.error(f"'{name}' cannot be a cell operation: it must take the arguments c "
                            f"(filters) and s (stride); cell operations: {one_of(vocab)}")
        raise loc.error(f"unknown cell operation '{name}'{did_you_mean(name, vocab)}; "
                        f"use one of {one_of(vocab)}, or define a block with arguments c and s")
    return _resolve_inner(ctx, {name: {"c": c, "s": s}}, feat, loc)


@op("cell", {
    "c": Arg("int", REQUIRED, doc="filters: the channels of every operation's output"),
    "s": Arg("int", 1, doc="stride of the operations on states 0 and 1 (2: a reduction cell)"),
    "genotype": Arg("any", REQUIRED, doc="per block: inputs, ops, combine"),
    "concat": Arg("any", "auto", doc="states concatenated into the output; auto: the unused ones"),
    "skip_input": Arg("bool", False, doc="the next cell's state 0 is this cell's state 0, "
                                         "not its state 1"),
}, channels=("c",))
def cell(a, feat: Feat, ctx) -> Node:
    """A NASNet cell on the two previous states; only inside ``cells``."""
    states_in = ctx.local.get("cells")
    if states_in is None:
        raise a.loc.error("a cell takes the outputs of the two cells before it, so it can only "
                          "be used inside `cells` (directly or in a block)")
    s0, s1 = states_in
    if feat is not s1:
        raise a.loc.error("inside `cells` a cell must follow a cell; put other layers before or "
                          "after the `cells` stack")
    if a.c < 1:
        raise a.at("c").error(f"a cell needs at least 1 filter, got {a.c}")
    if a.s not in (1, 2):
        raise a.at("s").error(f"a cell's stride must be 1 or 2 (a reduction cell), got {a.s}")
    if s1.spatial is None or (s0 is not None and s0.spatial is None):
        got = sizes([f for f in (s0, s1) if f is not None])
        raise a.loc.error(f"a cell needs CxHxW feature maps, got {got}")
    genotype = parse_genotype(a, ctx)
    c = a.c
    with ctx.let("cells", None):           # no cells inside a cell's operations
        node = _cell(a, ctx, s0, s1, c, genotype)
    prev = s1 if s0 is None else s0
    ctx.local["cells"] = (prev if a.skip_input else s1, node.out)   # what the next cell takes
    return node


def _cell(a, ctx, s0: Feat | None, s1: Feat, c: int, genotype) -> CellNode:
    children, states = _inputs(a, ctx, s0, s1, c)
    plan, used = _blocks(a, ctx, states, c, genotype, children)
    concat = parse_concat(a, ctx, len(states), used)
    out_size = states[-1].spatial
    parts = []
    for i in concat:
        st = states[i]
        if st.spatial != out_size:
            h, w = st.spatial
            if (-(-h // 2), -(-w // 2)) != out_size:
                raise a.at("concat").error(f"state {i} ({st.describe()}) cannot be concatenated "
                                           f"with the cell's output of size {out_size[0]}x"
                                           f"{out_size[1]}")
            # TF-slim reduces an unused state that is twice the output's size (no ReLU)
            red = _resolve_inner(ctx, {"factorized_reduce": {"c": c, "act": "none"}}, st,
                                 a.at("concat"))
            children.append((f"reduce.{i}", red))
            st = red.out
        parts.append(st)
    out = merge_rf(parts, (sum(p.channels for p in parts), *out_size))
    node = CellNode("cell", s1, out, a.loc, children=children)
    node.plan, node.concat, node.skip_input = plan, concat, bool(a.skip_input)
    kind = "reduction" if a.s == 2 else "normal"
    node.info = f"{kind}, c={c}, {len(plan)} blocks, concat {concat}"
    return node


def _inputs(a, ctx, s0: Feat | None, s1: Feat, c: int) -> tuple[list, list[Feat]]:
    """The cell's two states brought to c filters (and state 0 to state 1's size)."""
    loc = a.loc
    children = []
    pre1 = _resolve_inner(ctx, [{"act": None}, {"conv": {"c": c, "k": 1, "act": "none"}}], s1, loc)
    x0 = s1 if s0 is None else s0          # the first cell: state 0 is the raw input
    if s0 is None:
        pre0 = None
    elif s0.spatial != s1.spatial:
        (h0, w0), (h1, w1) = s0.spatial, s1.spatial
        if (-(-h0 // 2), -(-w0 // 2)) != (h1, w1):
            raise loc.error(f"the cell's inputs differ in size ({s0.describe()} and "
                            f"{s1.describe()}); the earlier one can only be halved to match")
        pre0 = _resolve_inner(ctx, {"factorized_reduce": {"c": c}}, s0, loc)
    elif s0.channels != c:
        pre0 = _resolve_inner(ctx, [{"act": None}, {"conv": {"c": c, "k": 1, "act": "none"}}],
                              s0, loc)
    else:
        pre0 = None
    if pre0 is not None:
        x0 = pre0.out
        if pre0.kind == "factorized_reduce":
            children += [("pre1", pre1), ("pre0", pre0)]
        else:
            children += [("pre0", pre0), ("pre1", pre1)]
    else:
        children.append(("pre1", pre1))
    return children, [x0, pre1.out]


def _blocks(a, ctx, states: list[Feat], c: int, genotype, children: list):
    """Each block's ops on its input states, combined into a new state (appended to states)."""
    plan, k, used = [], 0, set()
    for b, (inputs, ops, comb, bloc, olocs) in enumerate(genotype):
        outs = []
        for idx, name, oloc in zip(inputs, ops, olocs, strict=True):
            stride = a.s if idx < 2 else 1
            node = _cell_op(ctx, name, states[idx], c, stride, oloc)
            if node is None or len(node.out.shape) != 3:
                raise oloc.error(f"cell operation '{name}' must give a CxHxW map")
            children.append((f"ops.{k}", node))
            outs.append(node.out)
            k += 1
            used.add(idx)
        if comb == "add":
            if len({o.shape for o in outs}) > 1:
                raise bloc.error(f"block {b} cannot add outputs of different shapes: "
                                 f"{sizes(outs)} ({', '.join(ops)} of states {inputs})")
            shape = outs[0].shape
        else:
            if len({o.spatial for o in outs}) > 1:
                raise bloc.error(f"block {b} cannot concatenate maps of different sizes: "
                                 f"{sizes(outs)} ({', '.join(ops)} of states {inputs})")
            shape = (sum(o.channels for o in outs), *outs[0].spatial)
        states.append(merge_rf(outs, shape))
        plan.append((tuple(inputs), comb == "add"))
    return plan, used


def _cells_in(module: nn.Module):
    for child in module.children():
        if isinstance(child, Cell):
            yield child
        else:
            yield from _cells_in(child)


class Cells(nn.Sequential):
    """A stack of cells, each fed the outputs of the two cells before it."""

    def __init__(self, items):
        super().__init__(OrderedDict(items))
        # a plain list, not submodules: the cells are registered where the spec puts them
        self.__dict__["cells"] = list(_cells_in(self))

    def forward(self, x):
        s0, s1 = None, x
        for c in self.cells:
            s0, s1 = c(s0, s1)
        return s1


class CellsNode(Node):
    def build(self) -> nn.Module:
        return Cells([(name, child.build()) for name, child in self.children])


def _has_cell(node: Node) -> bool:
    return isinstance(node, CellNode) or any(_has_cell(c) for _, c in node.children)


def _check_only_cells(node: Node, loc) -> int:
    """The number of cells under ``node``; a SpecError for any other layer there."""
    if isinstance(node, CellNode):
        return 1
    if isinstance(node, (SeqNode, Transparent)) and _has_cell(node):
        return sum(_check_only_cells(child, loc) for _, child in node.children)
    raise loc.error(f"only cells (a `cell` or a block made of cells) can be stacked in `cells`, "
                    f"got {node.kind}; put other layers before or after the stack")


@op("cells", {
    "body": Arg("nodes", REQUIRED, doc="the cells in order: `cell` layers or blocks of them"),
}, scalar="body")
def cells(a, feat: Feat, ctx) -> Node:
    """A stack of cells: each sees the outputs of the two cells before it (the first: its input)."""
    body = a.body
    loc = a.at("body")
    if not isinstance(body, list) or not body:
        raise loc.error("cells needs a non-empty list of cells")
    if feat.spatial is None:
        raise a.loc.error(f"cells need a CxHxW feature map, got {feat.describe()}")
    children, cur, count = [], feat, 0
    # a cell reads its two input states only: no name from outside, none leaks out
    with ctx.let("cells", (None, feat)), ctx.names.enter("this cells stack", body):
        for i, item in enumerate(body):
            iloc = loc.key(body, i)
            node = ctx.resolve_or_none(item, cur, iloc)
            if node is None:
                continue                                  # `if:` was false
            count += _check_only_cells(node, iloc)
            children.append((str(i), node))
            cur = node.out
    if not children:
        raise loc.error("cells has no cells left (every `if:` was false)")
    node = CellsNode("cells", feat, cur, a.loc, children=children, info=f"{count} cells")
    return node
