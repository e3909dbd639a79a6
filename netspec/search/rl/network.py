"""The controller's network: an LSTM that emits the search space's decisions one after the other.

Each parameter name (with its options) owns a *decision*: its softmax head, an embedding of its
options (the next step's input: the sampled token's embedding) and a query vector added to that
input, which tells the LSTM which decision it is asked for (needed when conditional choices make
positions differ between trials). Logits are divided by the temperature and, with
``tanh_constant`` C, squashed to C * tanh(logits / C) (Bello et al. 2017, ENAS).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .options import mask


class Decision(nn.Module):
    """One decision's own parameters: its softmax head, its options' embedding, its query."""

    def __init__(self, n: int, hidden: int, embed: int, generator: torch.Generator):
        super().__init__()
        self.head = nn.Linear(hidden, n)
        self.embed = nn.Embedding(n, embed)
        self.query = nn.Parameter(torch.zeros(embed))
        with torch.no_grad():
            bound = 1 / math.sqrt(hidden)
            self.head.weight.uniform_(-bound, bound, generator=generator)
            self.head.bias.zero_()      # a new decision starts uniform over its options
            self.embed.weight.uniform_(-0.1, 0.1, generator=generator)
            self.query.uniform_(-0.1, 0.1, generator=generator)


class Controller(nn.Module):
    """The LSTM cell, its start token and the decisions (appended as they are first met)."""

    def __init__(self, hidden: int, embed: int, generator: torch.Generator,
                 temperature: float = 1.0, tanh_constant: float | None = None):
        super().__init__()
        self.hidden, self.embed_dim = hidden, embed
        self.temperature, self.tanh_constant = temperature, tanh_constant   # not learnt
        self.start = nn.Parameter(torch.zeros(embed))
        self.cell = nn.LSTMCell(embed, hidden)
        self.decisions = nn.ModuleList()
        with torch.no_grad():
            for p in self.cell.parameters():
                p.uniform_(-0.1, 0.1, generator=generator)
            self.start.uniform_(-0.1, 0.1, generator=generator)

    def add(self, n: int, generator: torch.Generator) -> Decision:
        """A new decision of ``n`` options, initialised from ``generator``."""
        d = Decision(n, self.hidden, self.embed_dim, generator)
        self.decisions.append(d)
        return d

    def initial(self):
        z = torch.zeros(1, self.hidden)
        return self.start, (z, z.clone())

    def step(self, index: int, x: torch.Tensor, hc):
        """One decision: the logits of decision ``index`` given the previous token's embedding."""
        d = self.decisions[index]
        h, c = self.cell((x + d.query)[None], hc)
        logits = d.head(h)[0] / self.temperature
        tanh = self.tanh_constant
        if tanh:
            logits = tanh * torch.tanh(logits / tanh)
        return logits, (h, c)

    def feed(self, index: int, token: int) -> torch.Tensor:
        return self.decisions[index].embed.weight[token]

    def log_prob(self, steps: list[tuple]):
        """The log-probability of a sequence of decisions ``(index, token[, masked])`` under the
        distributions it was drawn from (masked options excluded) and the sum of their
        entropies."""
        x, hc = self.initial()
        log_prob = torch.zeros(())
        entropy = torch.zeros(())
        for index, token, *masked in steps:
            logits, hc = self.step(index, x, hc)
            masked = masked[0] if masked else ()
            logp = torch.log_softmax(mask(logits, masked), dim=-1)
            log_prob = log_prob + logp[token]
            if masked:     # 0 * log 0 would be NaN, in the gradient too: the allowed options only
                logp = logp[[i for i in range(logp.numel()) if i not in masked]]
            entropy = entropy - (logp.exp() * logp).sum()
            x = self.feed(index, token)
        return log_prob, entropy
