"""What the controller learns, and how: the network with its vocabulary of decisions, Adam, the
reward baseline and the running RMS of the advantage; one REINFORCE step per finished trial

    loss = -(R - b) * sum_t log p(a_t)  -  entropy_weight * sum_t H(p_t)
           -  imitation_weight * mean_{k in top_k} sum_t log p(a^k_t)

where R is the trial's reward, b an exponential moving average of earlier rewards and a^k the
decisions of the k-th best trial so far. With ``normalize`` the advantage ``R - b`` is divided
by the running RMS of past advantages, so that a learning rate works whatever the scale of the
rewards (accuracies of a NAS proxy task differ by a percent or two); Zoph & Le used the raw one.

The vocabulary of decisions is kept in order of first appearance and saved with the weights
(``state_dict``: tensors, numbers, strings, lists and dicts only), so a name always maps to the
same head.
"""
from __future__ import annotations

import math
import warnings
import zlib
from collections.abc import Sequence

import torch
from torch import nn

from ...errors import StrategyError
from .network import Controller
from .options import mask

FORMAT = 1                        # of the state_dict


def mnas_reward(acc: float, macs: float, target: float, w: float = -0.07) -> float:
    """MnasNet's soft-constrained reward ACC x (MACs / T) ** w (Tan et al. 2019)."""
    return acc * (float(macs) / target) ** w


class Policy:
    """The learnt state of the controller and its update."""

    def __init__(self, seed: int, *, hidden: int, embed: int, lr: float, baseline_decay: float,
                 entropy_weight: float, normalize: bool, temperature: float,
                 tanh_constant: float | None, grad_clip: float, imitation_weight: float):
        self.seed, self.hidden, self.embed, self.lr = seed, hidden, embed, lr
        self.baseline_decay, self.entropy_weight = baseline_decay, entropy_weight
        self.normalize, self.grad_clip, self.imitation_weight = normalize, grad_clip, imitation_weight
        self.temperature, self.tanh_constant = temperature, tanh_constant
        self.model, self.optimizer = self._network(hidden, embed, [])
        self.vocab: list[dict] = []              # [{"key", "name", "n"}], order of first appearance
        self._index: dict[str, int] = {}         # signature -> decision index
        self.baseline: float | None = None
        self.adv_sq: float | None = None         # running mean of the squared advantage
        self.min_reward: float | None = None
        self.updates = 0

    def _network(self, hidden: int, embed: int, vocab: list[dict]):
        g = torch.Generator().manual_seed(self.seed)
        model = Controller(hidden, embed, g, self.temperature, self.tanh_constant)
        optimizer = torch.optim.Adam(model.parameters(), lr=self.lr)
        for v in vocab:
            optimizer.add_param_group({"params": list(model.add(int(v["n"]), g).parameters())})
        return model, optimizer

    def add(self, entry: dict) -> int:
        """The index of a vocabulary entry ``{key, name, n}``; a new one gets a fresh decision."""
        index = self._index.get(entry["key"])
        if index is None:
            g = torch.Generator().manual_seed(
                (self.seed * 1_000_003 + zlib.crc32(entry["key"].encode())) % 2**63)
            d = self.model.add(int(entry["n"]), g)
            self.optimizer.add_param_group({"params": list(d.parameters())})
            index = len(self.vocab)
            self.vocab.append(dict(entry))
            self._index[entry["key"]] = index
        return index

    def draw(self, index: int, x, hc, generator: torch.Generator, masked: Sequence[int] = (),
             greedy: bool = False):
        """One LSTM step for decision ``index``: (token, next input, next state); the token is
        drawn from the softmax over the options not ``masked`` (the likeliest with ``greedy``)."""
        with torch.no_grad():
            logits, hc = self.model.step(index, x, hc)
            probs = torch.softmax(mask(logits, masked), dim=-1)
            token = int(probs.argmax()) if greedy else \
                int(torch.multinomial(probs, 1, generator=generator))
            return token, self.model.feed(index, token).detach(), hc

    # -- learning ----------------------------------------------------------------------------------
    def log_prob(self, steps: list[tuple]):
        """See Controller.log_prob: ``steps`` are ``(decision index, token[, masked])``."""
        return self.model.log_prob(steps)

    def update(self, steps: list[tuple], reward: float, elite: Sequence[list[tuple]] = ()) -> dict:
        """One REINFORCE step on a trial's decisions ``[(decision index, token[, masked]), ...]``,
        plus the imitation of the ``elite`` sequences (the best trials so far) where given."""
        if self.baseline is None:
            self.baseline = reward
        advantage = reward - self.baseline
        if self.normalize:
            self.adv_sq = advantage ** 2 if self.adv_sq is None else \
                self.baseline_decay * self.adv_sq + (1 - self.baseline_decay) * advantage ** 2
            scale = math.sqrt(self.adv_sq)
            advantage = advantage / scale if scale > 1e-12 else 0.0
        self.model.train()
        log_prob, entropy = self.model.log_prob(steps)
        loss = -advantage * log_prob - self.entropy_weight * entropy
        if elite and self.imitation_weight:
            imitation = torch.stack([self.model.log_prob(seq)[0] for seq in elite]).mean()
            loss = loss - self.imitation_weight * imitation
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.optimizer.step()
        self.baseline = self.baseline_decay * self.baseline + (1 - self.baseline_decay) * reward
        self.min_reward = reward if self.min_reward is None else min(self.min_reward, reward)
        self.updates += 1
        return {"reward": reward, "advantage": advantage, "log_prob": float(log_prob.detach()),
                "entropy": float(entropy.detach())}

    def probabilities(self, names: Sequence[str] | None = None) -> dict[str, list[float]]:
        """Each decision's softmax along the greedy (most likely) path, for inspection."""
        with torch.no_grad():
            x, hc = self.model.initial()
            out = {}
            for i, v in enumerate(self.vocab):
                if names is not None and v["name"] not in names:
                    continue
                logits, hc = self.model.step(i, x, hc)
                p = torch.softmax(logits, dim=-1)
                out[v["name"]] = [round(float(q), 4) for q in p]
                x = self.model.feed(i, int(p.argmax()))
            return out

    # -- the state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"format": FORMAT, "hidden": self.model.hidden, "embed": self.model.embed_dim,
                "vocab": [dict(v) for v in self.vocab], "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(), "baseline": self.baseline,
                "adv_sq": self.adv_sq, "min_reward": self.min_reward, "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        if state.get("format") != FORMAT:
            raise StrategyError(f"strategy=rl: the controller state in the study has format "
                                f"{state.get('format')!r}, this version reads {FORMAT}")
        if (state["hidden"], state["embed"]) != (self.hidden, self.embed):
            warnings.warn(f"strategy=rl: continuing the study's controller with hidden="
                          f"{state['hidden']}, embed={state['embed']} (asked for hidden="
                          f"{self.hidden}, embed={self.embed})", stacklevel=3)
        model, optimizer = self._network(int(state["hidden"]), int(state["embed"]), state["vocab"])
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        for group in optimizer.param_groups:     # this run's learning rate
            group["lr"] = self.lr
        self.model, self.optimizer = model, optimizer
        self.vocab = [dict(v) for v in state["vocab"]]
        self._index = {v["key"]: i for i, v in enumerate(self.vocab)}
        self.baseline, self.adv_sq = state["baseline"], state["adv_sq"]
        self.min_reward, self.updates = state["min_reward"], int(state["updates"])
