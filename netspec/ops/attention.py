"""Multi-head self-attention over the positions of a map: ``attention`` (hybrid CNN-attention nets).

The map's H*W positions are the tokens and its C channels their features; the output is a map of
the same shape, so the op sits in a residual like any conv (a transformer block is
``residual: {body: [norm: ln, attention: 4]}``).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .base import REQUIRED, Arg, Feat, Node, op
from .layers import need_map


class MapSelfAttention(nn.Module):
    """Self-attention among the positions of a (N, C, H, W) map.

    Its tensors are laid out as nn.MultiheadAttention's (``in_proj`` [3C, C]: the rows of q, then
    k, then v, each split into heads in order; ``out_proj`` [C, C]) and as timm's ViT ``qkv`` and
    ``proj``, so either ports in by state_dict order.
    """

    def __init__(self, channels: int, heads: int, qkv_bias: bool = True, proj: bool = True,
                 dropout: float = 0.0, tokens: int | None = None):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        # a learned absolute embedding per position (ViT's, without a class token), or none
        self.pos = nn.Parameter(torch.empty(1, tokens, channels)) if tokens else None
        self.in_proj = nn.Linear(channels, 3 * channels, bias=qkv_bias)
        self.out_proj = nn.Linear(channels, channels) if proj else None
        self.reset_parameters()

    def reset_parameters(self):
        # as nn.MultiheadAttention: Xavier projections of q, k, v and zero biases; ViT's pos init
        nn.init.xavier_uniform_(self.in_proj.weight)
        if self.in_proj.bias is not None:
            nn.init.zeros_(self.in_proj.bias)
        if self.out_proj is not None:
            nn.init.zeros_(self.out_proj.bias)
        if self.pos is not None:
            nn.init.trunc_normal_(self.pos, std=0.02)

    def forward(self, x):
        n, c, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)                     # (n, h*w, c)
        if self.pos is not None:
            tokens = tokens + self.pos
        q, k, v = self.in_proj(tokens).view(n, h * w, 3, self.heads, c // self.heads) \
            .permute(2, 0, 3, 1, 4)                               # each (n, heads, h*w, c/heads)
        out = F.scaled_dot_product_attention(q, k, v,
                                             dropout_p=self.dropout if self.training else 0.0)
        out = out.transpose(1, 2).reshape(n, h * w, c)
        if self.out_proj is not None:
            out = self.out_proj(out)
        return out.transpose(1, 2).reshape(n, c, h, w)


class AttentionNode(Node):
    def build(self) -> nn.Module:
        return MapSelfAttention(self.inp.channels, **self.cfg)


def attention_macs(channels: int, tokens: int, proj: bool = True) -> int:
    """Multiply-accumulates of one sample: the q, k, v (and output) projections, N*C^2 each, and
    the two matmuls QK^T and AV, N^2*C each (over all heads together)."""
    return (4 if proj else 3) * tokens * channels ** 2 + 2 * tokens ** 2 * channels


@op("attention", {
    "heads": Arg("int", REQUIRED, doc="attention heads; the channels must divide by it"),
    "qkv_bias": Arg("bool", True, doc="biases of the q, k, v projections"),
    "proj": Arg("bool", True, doc="the output projection (with bias)"),
    "dropout": Arg("float", 0.0, doc="dropout on the attention weights (in training)"),
    "pos": Arg("str", "none", choices=("none", "learned"),
               doc="learned: an absolute embedding per position added to the tokens first"),
}, scalar="heads")
def attention(a, feat: Feat, ctx) -> Node:
    """Multi-head scaled dot-product self-attention among the H*W positions of a CxHxW map, which
    keeps its shape. Params: 3C^2 (+3C with qkv_bias) for q, k, v, C^2 + C for the output
    projection, H*W*C for a learned position embedding (4C^2 + 4C in all by default, as
    nn.MultiheadAttention). MACs per sample, N = H*W tokens: 4*N*C^2 for the projections (3 without
    the output one) and 2*N^2*C for the two matmuls QK^T and AV; the softmax and the 1/sqrt(C/heads)
    scale are not multiply-accumulates and are not counted."""
    need_map(a, feat, "attention")
    c = feat.channels
    h, w = feat.spatial
    tokens = h * w
    if a.heads < 1:
        raise a.at("heads").error(f"attention needs at least 1 head, got {a.heads}")
    if c % a.heads:
        raise a.at("heads").error(f"attention with {a.heads} heads needs channels divisible by "
                                  f"{a.heads}, got {c}")
    if not 0.0 <= a.dropout < 1.0:
        raise a.at("dropout").error(f"attention dropout must be in [0, 1), got {a.dropout}")
    learned_pos = a.pos == "learned"
    # every position sees every other: the receptive field is the whole map
    node = AttentionNode("attention", feat, feat.after(feat.shape, (h, w)), a.loc,
                         info=f"{a.heads} heads, {tokens} tokens")
    node.weights = (4 if a.proj else 3) * c * c + (tokens * c if learned_pos else 0)
    node.params = node.weights + (3 * c if a.qkv_bias else 0) + (c if a.proj else 0)
    node.macs = attention_macs(c, tokens, a.proj)
    node.cfg = dict(heads=a.heads, qkv_bias=a.qkv_bias, proj=a.proj, dropout=a.dropout,
                    tokens=tokens if learned_pos else None)
    return node
