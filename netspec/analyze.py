"""Static analysis of a resolved spec: shapes, parameters, MACs, activation memory, receptive field.

Everything here reads the resolved tree; no weight is allocated.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .ops.base import Node


@dataclass
class Layer:
    name: str            # module path in the built model, e.g. stages.2.block1.conv2
    kind: str            # conv, pool, linear, ..., or a block/combinator name above leaf level
    out_shape: tuple
    params: int
    macs: int
    activations: int     # output elements per sample
    depth: int
    rf: tuple[int, int]
    info: str = ""
    weights: int = 0     # params without biases and norm parameters (the lecture tables' count)
    leaf: bool = True

    @property
    def bytes(self) -> int:
        return self.activations * 4


@dataclass
class Report:
    name: str
    input_shape: tuple
    output_shape: tuple
    params: int
    macs: int
    layers: list[Layer] = field(default_factory=list)   # leaf layers, in build order
    tree: list[Layer] = field(default_factory=list)     # every level, for summaries by depth
    outputs: dict = field(default_factory=dict)         # name -> shape of a spec's `outputs:`

    @property
    def activations(self) -> int:
        return sum(layer.activations for layer in self.layers)

    @property
    def weights(self) -> int:
        return sum(layer.weights for layer in self.layers)

    def at_depth(self, depth: int) -> list[Layer]:
        """Layers cut at ``depth`` levels below the network (leaves above it are kept)."""
        return [lay for lay in self.tree
                if lay.depth == depth or (lay.leaf and 0 < lay.depth < depth)]

    def table(self, depth: int | None = None, bytes_per_element: int = 4) -> str:
        from .table import format_table
        return format_table(self, depth, bytes_per_element)

    def __str__(self) -> str:
        return self.table()


def _leaf_activations(node: Node) -> int:
    n = 1
    for s in node.out.shape:
        n *= s
    return n


def report_of(net: Node, name: str = "") -> Report:
    rep = Report(name or getattr(net, "spec_name", ""), net.inp.shape, net.out.shape,
                 net.total_params, net.total_macs)
    rep.outputs = {name: feat.shape for name, (_, feat) in getattr(net, "outputs", {}).items()}
    for qname, depth, node in net.walk():
        if depth == 0 or (node.kind == "seq" and not node.children):
            continue                          # the network itself, or an empty stem/head
        layer = Layer(qname, node.kind, node.out.shape, node.total_params, node.total_macs,
                      0, depth, node.out.rf, node.info, getattr(node, "weights", 0), node.is_leaf)
        if node.is_leaf:
            layer.activations = _leaf_activations(node)
            rep.layers.append(layer)
        else:
            layer.weights = sum(getattr(n, "weights", 0) for _, _, n in node.walk() if n.is_leaf)
            layer.activations = sum(_leaf_activations(n) for _, _, n in node.walk() if n.is_leaf)
        rep.tree.append(layer)
        if not node.is_leaf and node.params:
            # a combinator's own tensor (a residual's layer scale): a row of its own, so that the
            # rows add up to the total
            own = Layer(f"{qname}.{getattr(node, 'own_params', 'params')}", "param",
                        node.out.shape, node.params, 0, 0, depth + 1, node.out.rf,
                        f"{node.params:,} values", 0)
            rep.layers.append(own)
            rep.tree.append(own)
    return rep
