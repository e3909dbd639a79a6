"""A sample's constraints: the space's ``where:`` and ``max_macs``/``max_params`` on the resolved
tree (milliseconds, before anything is built), ``max_latency_ms`` on the measured latency. A
sample that breaks one is PRUNED with its reason, and the samplers that can (TPE, NSGA-II) are
told by how much it missed."""
from __future__ import annotations

import optuna

from .formatting import si

# Optuna >= 5 sets constraints on the trial (set_constraint); before, a constraints_func reads them
TRIAL_CONSTRAINTS = hasattr(optuna.trial.Trial, "set_constraint")


def static_violations(sampler, constraints: dict, params: dict, macs: int,
                      n_params: int) -> list[tuple[float, str]]:
    """(by how much, why) for each static constraint a sample (its decisions, MACs and
    parameter count) breaks: the space's ``where:``, ``max_macs``, ``max_params``."""
    violations = []
    ok, why = sampler.where(params)
    if not ok:
        violations.append((1.0, why))
    for key, value, what in (("max_macs", macs, "MACs"), ("max_params", n_params, "params")):
        limit = constraints.get(key)
        if limit is not None and value > float(limit):
            violations.append((value / float(limit) - 1.0,
                               f"{what} {si(value)} > {key} {si(float(limit))}"))
    return violations


def latency_violations(latency: float, constraints: dict) -> list[tuple[float, str]]:
    limit = constraints.get("max_latency_ms")
    if limit is not None and latency > float(limit):
        return [(latency / float(limit) - 1.0,
                 f"latency {latency:.2f} ms > max_latency_ms {limit}")]
    return []


def reject_if_violated(trial, violations: list[tuple[float, str]]) -> None:
    """Record the total violation on the trial (0: feasible) and prune it if there is one."""
    violation = sum(v for v, _ in violations)
    trial.set_user_attr("violation", violation)
    if TRIAL_CONSTRAINTS:          # TPE and NSGA-II learn where the feasible samples are
        trial.set_constraint("static", violation)
    if violations:
        reason = "; ".join(w for _, w in violations)
        trial.set_user_attr("rejected", reason)
        raise optuna.TrialPruned(reason)


def constraint_values(trial) -> list[float]:
    """The constraints_func of Optuna < 5 (TPE, NSGA-II): > 0 where a sample broke a static
    constraint (Optuna >= 5: trial.set_constraint)."""
    return [float(trial.user_attrs.get("violation", 0.0))]
