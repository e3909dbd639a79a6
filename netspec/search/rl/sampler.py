"""The REINFORCE controller as an Optuna sampler (``ReinforceSampler``, ``strategy=rl``).

**Define-by-run spaces.** Decisions arrive through ``sample_independent`` in the order the
objective asks for them; a choice met only under another choice is simply absent from other
trials' sequences. Parameters that were not sampled by the controller (enqueued or fixed values)
are fed through the LSTM as they are (teacher forcing), so later decisions see them, and they are
part of the update's sequence.

**Reward.** The trial's value (validation accuracy; its negative in a minimizing study), or with
``target_macs=T`` MnasNet's soft-constrained reward ``ACC x (MACs / T) ** w`` (Tan et al. 2019,
w = -0.07), the MACs read from the trial's user attribute ``macs`` (``macs_attr``). A pruned trial
with an intermediate value is rewarded with that value (its accuracy when it was stopped); a
pruned trial without one (a sample rejected by a static constraint) gets ``reject_reward``
("min": the lowest reward seen so far), a failed trial ``fail_reward`` (None: no update, as a
failure may be the worker's fault rather than the sample's).

**Imitating the best** (``top_k``, ``imitation_weight``). Each update also raises the
log-probability of the ``top_k`` best completed trials so far (mean over them, weighted by
``imitation_weight``): the priority queue training of Abolafia et al. (2018), which makes the
policy gradient far more sample-efficient when a search has a few dozen trials, not thousands.
The queue is read from the study (each trial's reward is kept as ``netspec.rl:reward``), so
resumed runs and parallel workers imitate the same trials. ``top_k=0`` is plain REINFORCE.

**State.** Every trial starts from the latest state in the study (``before_trial``) and every
update reloads it first (persistence.py); passing ``study=`` to the constructor loads it at once.
"""
from __future__ import annotations

import math
import os
import threading
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
import torch
from optuna.distributions import BaseDistribution, FloatDistribution, IntDistribution
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from ...errors import StrategyError
from ...threads import one_thread  # controller tensors are tiny: one thread
from .options import options_of, signature, token_of
from .persistence import load_state, save_state
from .policy import FORMAT, Policy, mnas_reward
from .tree import PATH, Node, tried_tree

REWARD = "netspec.rl:reward"  # the reward a trial's update used, for the priority queue
MULTI_OBJECTIVE = (
    "strategy=rl (the REINFORCE controller) optimizes a single objective, and this study has {n}: "
    "for accuracy against MACs give the controller the MnasNet reward instead "
    "(objectives=[acc] strategy.options.target_macs=<T>, reward ACC x (MACs/T)^-0.07), or use "
    "strategy=nsga2 for the Pareto front")


@dataclass
class TrialContext:
    """A trial being sampled: its decisions so far and the LSTM state after the last one."""

    generator: torch.Generator
    x: torch.Tensor
    hc: tuple
    names: list = field(default_factory=list)       # parameter names, in order
    steps: list = field(default_factory=list)       # (vocabulary entry, token, masked), in order
    state_id: str | None = None
    node: Node | None = None                        # where the decisions so far lead in the tree


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
        if int(top_k) < 0:
            raise StrategyError(f"strategy=rl: top_k must be >= 0, got {top_k!r}")
        self.seed = int(seed) if seed is not None else int.from_bytes(os.urandom(4), "little")
        self.bins, self.max_int_options = int(bins), int(max_int_options)
        self.target_macs = None if target_macs is None else float(target_macs)
        self.w = float(w)
        self.macs_attr = macs_attr
        self.reject_reward, self.fail_reward = reject_reward, fail_reward
        self.top_k = int(top_k)
        self.unique = bool(unique)
        self._lock = threading.RLock()
        self._contexts: OrderedDict[int, TrialContext] = OrderedDict()
        self._warned_macs = False
        self.policy = Policy(
            self.seed, hidden=int(hidden), embed=int(embed), lr=float(lr),
            baseline_decay=float(baseline_decay), entropy_weight=float(entropy_weight),
            normalize=bool(normalize), temperature=float(temperature),
            tanh_constant=None if tanh_constant is None else float(tanh_constant),
            grad_clip=float(grad_clip), imitation_weight=float(imitation_weight))
        self.state_id: str | None = None         # the id of the saved state the policy is
        if study is not None:
            self.load(study)

    def decision(self, name: str, dist: BaseDistribution) -> tuple[int, list]:
        """The index of the decision of ``name`` with these options (created at first sight)."""
        options = options_of(dist, self.bins, self.max_int_options)
        key = signature(name, dist, options)
        return self.policy.add({"key": key, "name": name, "n": len(options)}), options

    # -- in the study ----------------------------------------------------------------------------
    def save(self, study: optuna.Study, attempts: int = 5) -> None:
        """Write the controller into the study (see persistence.py)."""
        state_id = save_state(study, self.policy.state_dict(),
                              {"updates": self.policy.updates, "format": FORMAT}, attempts)
        if state_id is not None:
            self.state_id = state_id

    def load(self, study: optuna.Study, attempts: int = 5) -> bool:
        """Continue from the state saved in the study, if there is one newer than ours."""
        loaded = load_state(study, self.state_id, attempts)
        if loaded is None:
            return False
        self.policy.load_state_dict(loaded[0])
        self.state_id = loaded[1]
        return True

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
            raise StrategyError("strategy=rl: target_macs (MnasNet's reward ACC x (MACs/T)^w) "
                                "needs a maximized accuracy, and this study minimizes its objective")

    def before_trial(self, study, trial: FrozenTrial) -> None:
        self._check(study)
        with self._lock:
            self.load(study)
            self._context(trial, study)

    def _context(self, trial: FrozenTrial, study=None) -> TrialContext:
        ctx = self._contexts.get(trial._trial_id)
        if ctx is None:
            g = torch.Generator().manual_seed((self.seed * 1_000_003 + trial.number * 7919 + 1)
                                              % 2**63)
            x, hc = self.policy.model.initial()
            tree = tried_tree(study, self.bins, self.max_int_options) \
                if self.unique and study else None
            ctx = TrialContext(g, x.detach(), tuple(t.detach() for t in hc),
                               state_id=self.state_id, node=tree)
            self._contexts[trial._trial_id] = ctx
            while len(self._contexts) > 256:      # trials that never finished
                self._contexts.popitem(last=False)
        return ctx

    def _advance(self, ctx: TrialContext, index: int, token: int | None):
        """One LSTM step for decision ``index``; samples a token unless one is given, among the
        options that still lead to an untried sample."""
        name = self.policy.vocab[index]["name"]
        masked = ctx.node.masked(name) if ctx.node is not None and token is None else ()
        if token is None:
            token, ctx.x, ctx.hc = self.policy.draw(index, ctx.x, ctx.hc, ctx.generator, masked)
        else:
            with torch.no_grad():
                _, hc = self.policy.model.step(index, ctx.x, ctx.hc)
                ctx.x, ctx.hc = self.policy.model.feed(index, token).detach(), hc
        if ctx.node is not None:
            ctx.node = ctx.node.children.get(name, {}).get(token)
        ctx.steps.append((dict(self.policy.vocab[index]), token, masked))
        return token

    def _teacher_force(self, ctx: TrialContext, trial: FrozenTrial) -> None:
        """Feed the trial's parameters the controller did not sample (enqueued, fixed)."""
        for name, dist in trial.distributions.items():
            if name in ctx.names or dist.single():
                continue
            index, options = self.decision(name, dist)
            self._advance(ctx, index, token_of(dist, options, trial.params[name]))
            ctx.names.append(name)

    def sample_independent(self, study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        self._check(study)
        with self._lock:
            ctx = self._context(trial, study)
            with one_thread():
                self._teacher_force(ctx, trial)
            index, options = self.decision(param_name, param_distribution)
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
                return mnas_reward(value, macs, self.target_macs, self.w)
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
            return self.policy.min_reward
        return float(how)

    def _sequence(self, trial: FrozenTrial, ctx: TrialContext | None) -> list[tuple]:
        """The trial's decisions in order, as (vocabulary entry, token, masked options): as
        sampled, plus any parameters set otherwise (entries, not indices: a reload may renumber
        the vocabulary)."""
        steps = list(ctx.steps) if ctx is not None else []
        seen = set(ctx.names) if ctx is not None else set()
        for name, dist in trial.distributions.items():
            if name in seen or dist.single():
                continue
            index, options = self.decision(name, dist)
            token = token_of(dist, options, trial.params[name])
            steps.append((dict(self.policy.vocab[index]), token, ()))
        return steps

    def after_trial(self, study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        if len(study.directions) > 1:
            return
        with self._lock:
            ctx = self._contexts.pop(trial._trial_id, None)
            steps = self._sequence(trial, ctx)
            if steps:                          # the order of the decisions, for tried_tree
                study._storage.set_trial_system_attr(trial._trial_id, PATH,
                                                     [entry["name"] for entry, _, _ in steps])
            self.load(study)                   # the latest controller learns from this trial
            reward = self.reward(study, trial, state, values)
            if reward is None or not steps:
                return
            study._storage.set_trial_system_attr(trial._trial_id, REWARD, reward)
            elite = self.elite(study, trial, state, reward)
            # a decision that a concurrent writer's state lacks is added back (fresh)
            indexed = lambda seq: [(self.policy.add(e), token, m) for e, token, m in seq]  # noqa: E731
            with one_thread():
                self.policy.update(indexed(steps), reward, [indexed(seq) for seq in elite])
            self.save(study)

    def elite(self, study, trial: FrozenTrial, state: TrialState, reward: float) -> list:
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

    def probabilities(self, names: Sequence[str] | None = None) -> dict[str, list[float]]:
        """Each decision's softmax along the greedy (most likely) path, for inspection."""
        with self._lock:
            return self.policy.probabilities(names)
