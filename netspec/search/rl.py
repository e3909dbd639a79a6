"""The REINFORCE controller of Zoph & Le (2016) as an Optuna sampler: ``strategy=rl``.

An LSTM emits the search space's decisions one after the other, each as a softmax over its
options; the sampled token's embedding is the next step's input. After each finished trial the
controller takes one policy-gradient step on

    loss = -(R - b) * sum_t log p(a_t)  -  entropy_weight * sum_t H(p_t)
           -  imitation_weight * mean_{k in top_k} sum_t log p(a^k_t)

where R is the trial's reward, b an exponential moving average of earlier rewards and a^k the
decisions of the k-th best trial so far (see *Imitating the best*).

**Reward.** The trial's value (validation accuracy; its negative in a minimizing study), or with
``target_macs=T`` MnasNet's soft-constrained reward ``ACC x (MACs / T) ** w`` (Tan et al. 2019,
w = -0.07), the MACs read from the trial's user attribute ``macs`` (``macs_attr``). A pruned trial
with an intermediate value is rewarded with that value (its accuracy when it was stopped); a
pruned trial without one (a sample rejected by a static constraint) gets ``reject_reward``
("min": the lowest reward seen so far), a failed trial ``fail_reward`` (None: no update, as a
failure may be the worker's fault rather than the sample's). With ``normalize`` (default) the
advantage ``R - b`` is divided by the running RMS of past advantages, so that a learning rate
works whatever the scale of the rewards (accuracies of a NAS proxy task differ by a percent or
two); Zoph & Le used the raw advantage.

**Define-by-run spaces.** Decisions arrive through ``sample_independent`` in the order the
objective asks for them; a choice met only under another choice is simply absent from other
trials' sequences. Each parameter name (with its options) owns a *decision*: its softmax head, an
embedding of its options (the next input) and a query vector added to that input, which tells the
LSTM which decision it is asked for (needed when conditional choices make positions differ
between trials). The vocabulary of decisions is kept in order of first appearance and persisted, so
a name always maps to the same head; a name whose options changed gets a new decision.
Parameters that were not sampled by the controller (enqueued or fixed values) are fed through
the LSTM as they are (teacher forcing), so later decisions see them, and they are part of the
update's sequence.

Distributions:

* ``CategoricalDistribution``: one token per choice.
* ``IntDistribution``: the grid ``low, low + step, ..., high`` when it has at most
  ``max_int_options`` values; otherwise ``bins`` values evenly spaced (log-spaced with
  ``log=True``) and rounded to the grid, duplicates dropped.
* ``FloatDistribution``: ``bins`` values evenly spaced from ``low`` to ``high`` inclusive
  (log-spaced with ``log=True``); with ``step``, the grid when it has at most ``bins`` values,
  else the evenly spaced values rounded to the grid. The controller only ever proposes these
  points; a fixed value elsewhere in the range counts as its nearest point.

**Persistence.** The whole controller (LSTM and head weights, Adam's state, the baseline and the
running RMS of the advantage, the vocabulary, the update count) is ``torch.save``'d (tensors,
numbers, strings, lists and dicts only: it loads with ``torch.load(weights_only=True)``), base64
encoded and stored in the study's system attributes in chunks of ``CHUNK`` characters (keys
``netspec.rl:state:<slot>:<i>``) with a header (``netspec.rl:state``: slot, chunk count, SHA-256,
a write id). Writes alternate between two slots, each write is read back and checked before the
header that points to it is written, so a reader never mixes two states; a reader that meets a
checksum mismatch (a writer lapped it) reads again, and after a few tries goes on with its own
state rather than failing the trial. Every trial
starts from the latest state in the study (``before_trial``) and every update reloads it first, so
a rerun of the same command (Optuna resume) and parallel workers on one storage continue one
controller; two workers finishing within the same few milliseconds may lose one of the two
updates (last writer wins), which costs a sample's worth of learning, nothing else. Passing
``study=`` to the constructor loads the saved state at once.

**Repeatability.** ``seed`` fixes the initial weights and each trial's draws (the generator of
trial *n* is seeded from ``(seed, n)``), so a study run twice with the same seed samples the
same architectures, whatever the number of workers' interleaving does to the update order.

**No repeats.** With ``unique`` (default) a trial never repeats a finished one: the study's
finished trials form a tree of decisions (each trial's order of decisions is kept in its system
attribute ``netspec.rl:path``), and an option whose every completion was tried already is masked
out of the softmax (its probability set to 0) before the draw. The policy gradient uses the
masked distribution the token was drawn from. Once every sample of a finite space was tried,
the controller draws freely again. A runner trial trains with a fixed seed, so a repeat would
spend a whole training to learn the same number; with a noisy reward ``unique=False`` lets the
controller sample its favourite again.

**Imitating the best** (``top_k``, ``imitation_weight``). Each update also raises the
log-probability of the ``top_k`` best completed trials so far (mean over them, weighted by
``imitation_weight``): the priority queue training of Abolafia et al. (2018), which makes the
policy gradient far more sample-efficient when a search has a few dozen trials, not thousands.
The queue is read from the study (each trial's reward is kept as ``netspec.rl:reward``), so
resumed runs and parallel workers imitate the same trials. ``top_k=0`` is plain REINFORCE.

**Defaults.** lr 0.02 (Adam), entropy_weight 0.1 (against an advantage of unit RMS), baseline
decay 0.9, LSTM of 32 units, unique, top_k 5 with imitation_weight 0.5: chosen on the 540
networks of bench/bench_search.py's space, each trained once per training seed (0, 1, 2) and
looked up, by the number of trials the controller needs to reach the best of 50 random ones.
Over 90 simulated searches (sampler seeds 20-49 on the three tables) the median was 18.5
(48 of 90 within 20); without the priority queue and with entropy_weight 0.3, 20.5 (45 of 90);
TPE on the same tables needed 19 (seeds 0-19). On a synthetic reward (6 decisions of 4 options,
noisy) the mean reward of 200 trials is 0.54-0.58 on every seed tried, random sampling's 0.25.
A higher learning rate learns faster but more often settles early on a wrong option.

Single-objective studies only: for accuracy against MACs use ``target_macs`` (the MnasNet reward),
or NSGA-II for a Pareto front.
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import math
import os
import random
import threading
import time
import uuid
import warnings
import zlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
import torch
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState
from torch import nn

from ..errors import StrategyError
from ..threads import one_thread  # controller tensors are tiny: one thread

_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
KEY = "netspec.rl:state"          # the header; the chunks are KEY:<slot>:<i>
CHUNK = 32_000                    # characters per system attribute (MySQL's TEXT holds 64 KiB)
FORMAT = 1

MULTI_OBJECTIVE = (
    "strategy=rl (the REINFORCE controller) optimizes a single objective, and this study has {n}: "
    "for accuracy against MACs give the controller the MnasNet reward instead "
    "(objectives=[acc] strategy.options.target_macs=<T>, reward ACC x (MACs/T)^-0.07), or use "
    "strategy=nsga2 for the Pareto front")


# -- the options of a decision -----------------------------------------------------------------------

def _snap(values: list[float], low: float, step: float, high: float) -> list[float]:
    out = []
    for v in values:
        s = low + round((v - low) / step) * step
        s = min(max(s, low), high)
        if not out or abs(s - out[-1]) > 1e-12 * max(1.0, abs(s)):
            out.append(s)
    return out


def _spaced(low: float, high: float, n: int, log: bool) -> list[float]:
    if n <= 1 or low == high:
        return [low]
    if log:
        a, b = math.log(low), math.log(high)
        return [math.exp(a + (b - a) * i / (n - 1)) for i in range(n - 1)] + [high]
    return [low + (high - low) * i / (n - 1) for i in range(n - 1)] + [high]


def options_of(dist: BaseDistribution, bins: int = 10, max_int_options: int = 32) -> list:
    """The values a decision chooses among (see the module's docstring)."""
    if isinstance(dist, CategoricalDistribution):
        return list(dist.choices)
    if isinstance(dist, IntDistribution):
        low, high, step = int(dist.low), int(dist.high), int(dist.step)
        count = (high - low) // step + 1
        if count <= max_int_options:
            return [low + i * step for i in range(count)]
        values = _spaced(float(low), float(high), bins, dist.log)
        return [int(v) for v in _snap(values, low, step, high)]
    if isinstance(dist, FloatDistribution):
        low, high = float(dist.low), float(dist.high)
        if dist.step is not None:
            step = float(dist.step)
            count = int(math.floor((high - low) / step + 1e-9)) + 1
            if count <= bins:
                return [min(low + i * step, high) for i in range(count)]
            return _snap(_spaced(low, high, bins, False), low, step, high)
        return _spaced(low, high, bins, dist.log)
    raise StrategyError(f"strategy=rl: unsupported distribution {type(dist).__name__}; it handles "
                     f"CategoricalDistribution, IntDistribution and FloatDistribution")


def _signature(name: str, dist: BaseDistribution, options: list) -> str:
    kind = type(dist).__name__.replace("Distribution", "").lower()
    text = json.dumps([kind, [repr(o) for o in options]])
    return f"{name}|{hashlib.sha1(text.encode()).hexdigest()[:12]}"


def _token_of(dist: BaseDistribution, options: list, value) -> int:
    """The option a (fixed, not sampled) value stands for: its index, or the nearest point."""
    if isinstance(dist, CategoricalDistribution):
        return int(dist.to_internal_repr(value))
    log = getattr(dist, "log", False) and float(dist.low) > 0

    def key(o):
        return math.log(o) if log else float(o)
    v = key(max(float(value), float(dist.low)) if log else value)
    return min(range(len(options)), key=lambda i: abs(key(options[i]) - v))


def _mask(logits: torch.Tensor, masked: Sequence[int]) -> torch.Tensor:
    """The logits with the masked options at -inf (probability 0)."""
    if not masked:
        return logits
    return logits.index_fill(0, torch.tensor(list(masked), dtype=torch.long), float("-inf"))


# -- the samples tried so far --------------------------------------------------------------------

PATH = "netspec.rl:path"      # a trial's decisions in the order they were made (system attribute)
REWARD = "netspec.rl:reward"  # the reward a trial's update used, for the priority queue


class _Node:
    """A prefix of decisions in the tree of the study's finished samples."""

    __slots__ = ("children", "options", "end", "_done")

    def __init__(self):
        self.children: dict[str, dict[int, _Node]] = {}   # next decision -> token -> node
        self.options: dict[str, int] = {}                  # next decision -> number of options
        self.end = False                                   # a sample ended here
        self._done: bool | None = None

    def child(self, name: str, token: int, n: int) -> _Node:
        self.options[name] = n
        return self.children.setdefault(name, {}).setdefault(token, _Node())

    def exhausted(self) -> bool:
        """Every completion of this prefix was tried: a sample ended here and nothing follows,
        or every option of the decision that follows is exhausted."""
        if self._done is None:
            if not self.children:
                self._done = self.end
            else:
                self._done = any(len(kids) == self.options[name] and
                                 all(k.exhausted() for k in kids.values())
                                 for name, kids in self.children.items())
        return self._done

    def masked(self, name: str) -> tuple[int, ...]:
        """The options of decision ``name`` whose every completion was tried already."""
        kids = self.children.get(name, {})
        banned = tuple(sorted(t for t, k in kids.items() if k.exhausted()))
        return banned if len(banned) < self.options.get(name, 0) else ()


# -- the network -------------------------------------------------------------------------------------

class _Decision(nn.Module):
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


class _Controller(nn.Module):
    def __init__(self, hidden: int, embed: int, generator: torch.Generator):
        super().__init__()
        self.hidden, self.embed_dim = hidden, embed
        self.start = nn.Parameter(torch.zeros(embed))
        self.cell = nn.LSTMCell(embed, hidden)
        self.decisions = nn.ModuleList()
        with torch.no_grad():
            for p in self.cell.parameters():
                p.uniform_(-0.1, 0.1, generator=generator)
            self.start.uniform_(-0.1, 0.1, generator=generator)

    def initial(self):
        z = torch.zeros(1, self.hidden)
        return self.start, (z, z.clone())

    def step(self, index: int, x: torch.Tensor, hc, temperature: float, tanh: float | None):
        """One decision: the logits of decision ``index`` given the previous token's embedding."""
        d = self.decisions[index]
        h, c = self.cell((x + d.query)[None], hc)
        logits = d.head(h)[0] / temperature
        if tanh:
            logits = tanh * torch.tanh(logits / tanh)
        return logits, (h, c)

    def feed(self, index: int, token: int) -> torch.Tensor:
        return self.decisions[index].embed.weight[token]


@dataclass
class _TrialContext:
    """A trial being sampled: its decisions so far and the LSTM state after the last one."""

    generator: torch.Generator
    x: torch.Tensor
    hc: tuple
    names: list = field(default_factory=list)       # parameter names, in order
    steps: list = field(default_factory=list)       # (vocabulary entry, token, masked), in order
    state_id: str | None = None
    node: _Node | None = None                       # where the decisions so far lead in the tree


# -- the sampler -------------------------------------------------------------------------------------

class ReinforceSampler(optuna.samplers.BaseSampler):
    """Zoph & Le's REINFORCE controller (LSTM, EMA baseline, entropy bonus) as an Optuna sampler.

    Args:
        seed: fixes the initial weights and each trial's draws.
        hidden, embed: the LSTM's hidden size and the token embedding size.
        lr: Adam's learning rate (one step per finished trial).
        baseline_decay: the EMA decay of the reward baseline.
        entropy_weight: the weight of the entropy bonus (summed over a trial's decisions).
        normalize: divide the advantage by the running RMS of past advantages.
        temperature: the softmax temperature of every decision.
        tanh_constant: logits are squashed to C * tanh(logits / C) (Bello et al. 2017, ENAS),
            which bounds how sure the controller gets: the likeliest option is at most e^(2C)
            times likelier than any other, so it keeps exploring. None: no bound.
        grad_clip: the gradient norm is clipped to this.
        bins: points of a discretized float range (and of an int range too long for its grid).
        max_int_options: an int range with at most this many grid values uses its grid.
        target_macs, w, macs_attr: MnasNet's reward ACC x (MACs / target_macs) ** w, the MACs
            from the trial's user attribute ``macs_attr``.
        reject_reward: the reward of a pruned trial with no value (rejected before training):
            a number, "min" (the lowest reward seen so far) or None (no update).
        fail_reward: the same for a failed trial (default None: no update).
        unique: never repeat a finished trial's sample while the space has untried ones.
        top_k, imitation_weight: the priority queue of the best completed trials whose
            log-probability each update raises (0: plain REINFORCE).
        study: load the state saved in this study now (otherwise on the first trial).
    """

    def __init__(self, seed: int | None = None, *, hidden: int = 32, embed: int = 32,
                 lr: float = 0.02, baseline_decay: float = 0.9, entropy_weight: float = 0.1,
                 normalize: bool = True, temperature: float = 1.0,
                 tanh_constant: float | None = None, grad_clip: float = 5.0,
                 bins: int = 10, max_int_options: int = 32,
                 target_macs: float | None = None, w: float = -0.07, macs_attr: str = "macs",
                 reject_reward: float | str | None = "min", fail_reward: float | str | None = None,
                 unique: bool = True, top_k: int = 5, imitation_weight: float = 0.5,
                 study: optuna.Study | None = None):
        for what, v in (("reject_reward", reject_reward), ("fail_reward", fail_reward)):
            if isinstance(v, str) and v != "min":
                raise StrategyError(f"strategy=rl: {what} is a number, 'min' or null, not {v!r}")
        if target_macs is not None and not float(target_macs) > 0:
            raise StrategyError(f"strategy=rl: target_macs must be > 0, got {target_macs!r}")
        if int(bins) < 2:
            raise StrategyError(f"strategy=rl: bins must be at least 2, got {bins!r}")
        if not float(temperature) > 0:
            raise StrategyError(f"strategy=rl: temperature must be > 0, got {temperature!r}")
        self.seed = int(seed) if seed is not None else int.from_bytes(os.urandom(4), "little")
        self.hidden, self.embed = int(hidden), int(embed)
        self.lr = float(lr)
        self.baseline_decay = float(baseline_decay)
        self.entropy_weight = float(entropy_weight)
        self.normalize = bool(normalize)
        self.temperature = float(temperature)
        self.tanh_constant = None if tanh_constant is None else float(tanh_constant)
        self.grad_clip = float(grad_clip)
        self.bins, self.max_int_options = int(bins), int(max_int_options)
        self.target_macs = None if target_macs is None else float(target_macs)
        self.w = float(w)
        self.macs_attr = macs_attr
        self.reject_reward, self.fail_reward = reject_reward, fail_reward
        if int(top_k) < 0:
            raise StrategyError(f"strategy=rl: top_k must be >= 0, got {top_k!r}")
        self.top_k, self.imitation_weight = int(top_k), float(imitation_weight)
        self.unique = bool(unique)
        self._lock = threading.RLock()
        self._contexts: OrderedDict[int, _TrialContext] = OrderedDict()
        self._warned_macs = False
        self._fresh()
        if study is not None:
            self.load(study)

    # -- the controller's state ------------------------------------------------------------------
    def _fresh(self) -> None:
        g = torch.Generator().manual_seed(self.seed)
        self.model = _Controller(self.hidden, self.embed, g)
        self.vocab: list[dict] = []              # [{"key", "name", "n"}], order of first appearance
        self._index: dict[str, int] = {}         # signature -> decision index
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.lr)
        self.baseline: float | None = None
        self.adv_sq: float | None = None         # running mean of the squared advantage
        self.min_reward: float | None = None
        self.updates = 0
        self.state_id: str | None = None         # the id of the saved state this one is

    def _decision(self, name: str, dist: BaseDistribution) -> tuple[int, list]:
        """The index of the decision of ``name`` with these options (created at first sight)."""
        options = options_of(dist, self.bins, self.max_int_options)
        key = _signature(name, dist, options)
        return self._add({"key": key, "name": name, "n": len(options)}), options

    def _add(self, entry: dict) -> int:
        """The index of a vocabulary entry ``{key, name, n}``; a new one gets a fresh decision."""
        index = self._index.get(entry["key"])
        if index is None:
            g = torch.Generator().manual_seed(
                (self.seed * 1_000_003 + zlib.crc32(entry["key"].encode())) % 2**63)
            d = _Decision(int(entry["n"]), self.model.hidden, self.model.embed_dim, g)
            self.model.decisions.append(d)
            self.optimizer.add_param_group({"params": list(d.parameters())})
            index = len(self.vocab)
            self.vocab.append(dict(entry))
            self._index[entry["key"]] = index
        return index

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
                          f"{self.hidden}, embed={self.embed})", stacklevel=2)
        g = torch.Generator().manual_seed(self.seed)
        model = _Controller(int(state["hidden"]), int(state["embed"]), g)
        optimizer = torch.optim.Adam(model.parameters(), lr=self.lr)
        for v in state["vocab"]:
            d = _Decision(int(v["n"]), model.hidden, model.embed_dim, g)
            model.decisions.append(d)
            optimizer.add_param_group({"params": list(d.parameters())})
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        for group in optimizer.param_groups:     # this run's learning rate
            group["lr"] = self.lr
        self.model, self.optimizer = model, optimizer
        self.vocab = [dict(v) for v in state["vocab"]]
        self._index = {v["key"]: i for i, v in enumerate(self.vocab)}
        self.baseline, self.adv_sq = state["baseline"], state["adv_sq"]
        self.min_reward, self.updates = state["min_reward"], int(state["updates"])

    # -- in the study ----------------------------------------------------------------------------
    def save(self, study: optuna.Study, attempts: int = 5) -> None:
        """Write the controller into the study's system attributes: the chunks into the slot the
        header does not point to, read back and checked, then the header."""
        buf = io.BytesIO()
        torch.save(self.state_dict(), buf)
        text = base64.b64encode(buf.getvalue()).decode("ascii")
        sha = hashlib.sha256(text.encode()).hexdigest()
        chunks = [text[i:i + CHUNK] for i in range(0, len(text), CHUNK)] or [""]
        storage, sid = study._storage, study._study_id
        for attempt in range(attempts):
            header = storage.get_study_system_attrs(sid).get(KEY) or {}
            slot = 1 - int(header.get("slot", 1))
            for i, chunk in enumerate(chunks):
                storage.set_study_system_attr(sid, f"{KEY}:{slot}:{i}", chunk)
            if self._read(storage.get_study_system_attrs(sid), slot, len(chunks)) == sha:
                break
            # another worker wrote the same slot at the same moment: write again, a bit later
            time.sleep(0.02 * (attempt + 1) * (1 + random.random()))
        else:
            warnings.warn("strategy=rl: could not write the controller state consistently (other "
                          "workers kept writing at the same moment); this update is not saved",
                          stacklevel=2)
            return
        self.state_id = uuid.uuid4().hex
        storage.set_study_system_attr(sid, KEY, {
            "slot": slot, "chunks": len(chunks), "sha256": sha, "id": self.state_id,
            "updates": self.updates, "format": FORMAT})

    @staticmethod
    def _read(attrs: dict, slot: int, chunks: int, text: list | None = None) -> str | None:
        """The SHA-256 of a slot's chunks as stored (None if some are missing)."""
        try:
            joined = "".join(attrs[f"{KEY}:{slot}:{i}"] for i in range(int(chunks)))
        except KeyError:
            return None
        if text is not None:
            text.append(joined)
        return hashlib.sha256(joined.encode()).hexdigest()

    def load(self, study: optuna.Study, attempts: int = 5) -> bool:
        """Continue from the state saved in the study, if there is one newer than ours."""
        storage, sid = study._storage, study._study_id
        for attempt in range(attempts):
            attrs = storage.get_study_system_attrs(sid)
            header = attrs.get(KEY)
            if not header or header.get("id") == self.state_id:
                return False
            text: list = []
            if self._read(attrs, header["slot"], header["chunks"], text) == header["sha256"]:
                state = torch.load(io.BytesIO(base64.b64decode(text[0])), weights_only=True)
                self.load_state_dict(state)
                self.state_id = header["id"]
                return True
            time.sleep(0.02 * (attempt + 1))     # a writer is between chunks and header
        warnings.warn(f"strategy=rl: the controller state in the study does not match its "
                      f"header ({KEY}) after {attempts} reads; going on with this worker's own "
                      f"state (the next update rewrites it)", stacklevel=2)
        return False

    # -- Optuna's sampler interface --------------------------------------------------------------
    def infer_relative_search_space(self, study, trial) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(self, study, trial, search_space) -> dict[str, Any]:
        return {}

    def _check(self, study) -> None:
        n = len(study.directions)
        if n > 1:
            raise StrategyError(MULTI_OBJECTIVE.format(n=n))
        if self.target_macs is not None and study.direction != StudyDirection.MAXIMIZE:
            raise StrategyError("strategy=rl: target_macs (MnasNet's reward ACC x (MACs/T)^w) needs "
                             "a maximized accuracy, and this study minimizes its objective")

    def before_trial(self, study, trial: FrozenTrial) -> None:
        self._check(study)
        with self._lock:
            self.load(study)
            self._context(trial, study)

    def _tree(self, study) -> _Node:
        """The tree of every finished trial's decisions (in the order they were made)."""
        root = _Node()
        for t in study.get_trials(deepcopy=False, states=_FINISHED):
            node = root
            for name in t.system_attrs.get(PATH) or list(t.params):
                dist = t.distributions.get(name)
                if dist is None or dist.single():
                    continue
                options = options_of(dist, self.bins, self.max_int_options)
                node = node.child(name, _token_of(dist, options, t.params[name]), len(options))
            node.end = True
        return root

    def _context(self, trial: FrozenTrial, study=None) -> _TrialContext:
        ctx = self._contexts.get(trial._trial_id)
        if ctx is None:
            g = torch.Generator().manual_seed((self.seed * 1_000_003 + trial.number * 7919 + 1)
                                              % 2**63)
            x, hc = self.model.initial()
            ctx = _TrialContext(g, x.detach(), tuple(t.detach() for t in hc),
                                state_id=self.state_id,
                                node=self._tree(study) if self.unique and study else None)
            self._contexts[trial._trial_id] = ctx
            while len(self._contexts) > 256:      # trials that never finished
                self._contexts.popitem(last=False)
        return ctx

    def _advance(self, ctx: _TrialContext, index: int, token: int | None):
        """One LSTM step for decision ``index``; samples a token unless one is given, among the
        options that still lead to an untried sample."""
        name = self.vocab[index]["name"]
        masked = ctx.node.masked(name) if ctx.node is not None and token is None else ()
        with torch.no_grad():
            logits, hc = self.model.step(index, ctx.x, ctx.hc, self.temperature, self.tanh_constant)
            if token is None:
                probs = torch.softmax(_mask(logits, masked), dim=-1)
                token = int(torch.multinomial(probs, 1, generator=ctx.generator))
            ctx.x, ctx.hc = self.model.feed(index, token).detach(), hc
        if ctx.node is not None:
            ctx.node = ctx.node.children.get(name, {}).get(token)
        ctx.steps.append((dict(self.vocab[index]), token, masked))
        return token

    def _teacher_force(self, ctx: _TrialContext, trial: FrozenTrial) -> None:
        """Feed the trial's parameters the controller did not sample (enqueued, fixed)."""
        for name, dist in trial.distributions.items():
            if name in ctx.names or dist.single():
                continue
            index, options = self._decision(name, dist)
            self._advance(ctx, index, _token_of(dist, options, trial.params[name]))
            ctx.names.append(name)

    def sample_independent(self, study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        self._check(study)
        with self._lock:
            ctx = self._context(trial, study)
            with one_thread():
                self._teacher_force(ctx, trial)
            index, options = self._decision(param_name, param_distribution)
            with one_thread():
                token = self._advance(ctx, index, None)
            ctx.names.append(param_name)
            value = options[token]
            if isinstance(param_distribution, IntDistribution):
                value = int(value)
            elif isinstance(param_distribution, FloatDistribution):
                value = float(value)
            return value

    # -- learning ----------------------------------------------------------------------------------
    def reward(self, study, trial: FrozenTrial, state: TrialState,
               values: Sequence[float] | None) -> float | None:
        """The trial's reward, or None when it teaches the controller nothing."""
        if state in (TrialState.COMPLETE, TrialState.PRUNED) and values:
            value = float(values[0])
            if not math.isfinite(value):
                return self._penalty(self.fail_reward)
            if study.direction == StudyDirection.MINIMIZE:
                return -value
            if self.target_macs is not None:
                macs = trial.user_attrs.get(self.macs_attr)
                if macs is None or not float(macs) > 0:
                    if not self._warned_macs:
                        warnings.warn(f"strategy=rl: target_macs is set but trial {trial.number} "
                                      f"has no user attribute '{self.macs_attr}': rewarding its "
                                      f"value alone", stacklevel=2)
                        self._warned_macs = True
                    return value
                return value * (float(macs) / self.target_macs) ** self.w
            return value
        if state == TrialState.PRUNED:
            return self._penalty(self.reject_reward)
        if state == TrialState.FAIL:
            return self._penalty(self.fail_reward)
        return None

    def _penalty(self, how) -> float | None:
        if how is None:
            return None
        if how == "min":
            return self.min_reward
        return float(how)

    def _sequence(self, trial: FrozenTrial, ctx: _TrialContext | None) -> list[tuple]:
        """The trial's decisions in order, as (vocabulary entry, token, masked options): as
        sampled, plus any parameters set otherwise (entries, not indices: a reload may renumber
        the vocabulary)."""
        steps = list(ctx.steps) if ctx is not None else []
        seen = set(ctx.names) if ctx is not None else set()
        for name, dist in trial.distributions.items():
            if name in seen or dist.single():
                continue
            index, options = self._decision(name, dist)
            steps.append((dict(self.vocab[index]), _token_of(dist, options, trial.params[name]), ()))
        return steps

    def after_trial(self, study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        if len(study.directions) > 1:
            return
        with self._lock:
            ctx = self._contexts.pop(trial._trial_id, None)
            steps = self._sequence(trial, ctx)
            if steps:                          # the order of the decisions, for _tree
                study._storage.set_trial_system_attr(trial._trial_id, PATH,
                                                     [entry["name"] for entry, _, _ in steps])
            self.load(study)                   # the latest controller learns from this trial
            reward = self.reward(study, trial, state, values)
            if reward is None or not steps:
                return
            study._storage.set_trial_system_attr(trial._trial_id, REWARD, reward)
            elite = self._elite(study, trial, state, reward)
            # a decision that a concurrent writer's state lacks is added back (fresh)
            indexed = lambda seq: [(self._add(e), token, m) for e, token, m in seq]  # noqa: E731
            with one_thread():
                self.update(indexed(steps), reward, [indexed(seq) for seq in elite])
            self.save(study)

    def _elite(self, study, trial: FrozenTrial, state: TrialState, reward: float) -> list:
        """The decisions of the ``top_k`` completed trials of highest reward (this one included):
        the priority queue of Abolafia et al. (2018), read from the study, so that every worker
        and a resumed run imitate the same trials."""
        if self.top_k <= 0:
            return []
        scored = [(reward, trial.number, trial)] if state == TrialState.COMPLETE else []
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            r = t.system_attrs.get(REWARD)
            if t.number != trial.number and r is not None:
                scored.append((float(r), t.number, t))
        scored.sort(key=lambda x: (-x[0], x[1]))    # ties: the earlier trial
        return [self._sequence(t, None) for _, _, t in scored[:self.top_k]]

    def _log_prob(self, steps: list[tuple]):
        """The log-probability of a sequence of decisions ``(index, token[, masked])`` under the
        distributions it was drawn from (masked options excluded) and the sum of their
        entropies."""
        x, hc = self.model.initial()
        log_prob = torch.zeros(())
        entropy = torch.zeros(())
        for index, token, *masked in steps:
            logits, hc = self.model.step(index, x, hc, self.temperature, self.tanh_constant)
            masked = masked[0] if masked else ()
            logp = torch.log_softmax(_mask(logits, masked), dim=-1)
            log_prob = log_prob + logp[token]
            if masked:     # 0 * log 0 would be NaN, in the gradient too: the allowed options only
                logp = logp[[i for i in range(logp.numel()) if i not in masked]]
            entropy = entropy - (logp.exp() * logp).sum()
            x = self.model.feed(index, token)
        return log_prob, entropy

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
        log_prob, entropy = self._log_prob(steps)
        loss = -advantage * log_prob - self.entropy_weight * entropy
        if elite and self.imitation_weight:
            imitation = torch.stack([self._log_prob(seq)[0] for seq in elite]).mean()
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
        with self._lock, torch.no_grad():
            x, hc = self.model.initial()
            out = {}
            for i, v in enumerate(self.vocab):
                if names is not None and v["name"] not in names:
                    continue
                logits, hc = self.model.step(i, x, hc, self.temperature, self.tanh_constant)
                p = torch.softmax(logits, dim=-1)
                out[v["name"]] = [round(float(q), 4) for q in p]
                x = self.model.feed(i, int(p.argmax()))
            return out
