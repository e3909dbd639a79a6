"""The search's figures: history.png (accuracy per trial, the best so far, the rejected and failed
trials), estimates.png (a one-shot search's estimates against the retrained accuracies) and,
for multi-objective runs, pareto.png (Optuna's Pareto-front plot, accuracy against the
cost, each Pareto-optimal trial numbered as in pareto/trial_NNNN.yaml)."""
from __future__ import annotations

import math
import warnings
from pathlib import Path

import optuna
from optuna.trial import TrialState

COST_UNITS = {"macs": "MACs", "params": "params", "latency": "latency (ms)"}


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_history(search, path: Path) -> Path | None:
    study = search.study
    trials = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    if not done:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    xs = [t.number for t in done]
    ys = [t.values[0] for t in done]
    ax.scatter(xs, ys, s=18, label="completed", color="tab:blue", zorder=3)
    pruned = [(t.number, t.user_attrs["acc"]) for t in trials
              if t.state == TrialState.PRUNED and "acc" in t.user_attrs]
    if pruned:
        ax.scatter(*zip(*pruned), marker="x", color="gray", s=18, label="pruned", zorder=2)
    rejected = [t.number for t in trials if t.state == TrialState.PRUNED and
                "rejected" in t.user_attrs]
    failed = [t.number for t in trials if t.state == TrialState.FAIL]
    best, run = [], -math.inf
    for t in sorted(done, key=lambda t: t.number):
        run = max(run, t.values[0])
        best.append((t.number, run))
    ax.step(*zip(*best), where="post", color="tab:orange", label="best so far", zorder=4)
    low = min(ys)
    for nums, label, color in ((rejected, "rejected (constraint)", "tab:purple"),
                               (failed, "failed", "tab:red")):
        if nums:
            ax.scatter(nums, [low] * len(nums), marker="|", s=60, color=color, label=label)
    ax.set_xlabel("trial")
    ax.set_ylabel("validation accuracy")
    ax.set_title(f"{search.study_name}: {len(done)} completed of {len(trials)} trials")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_estimates(title: str, points: list[tuple], tau: float | None, path: Path) -> Path | None:
    """A one-shot search's standalone (retrained) accuracy against the supernet's estimate:
    ``points`` are (estimate, standalone, trial number)."""
    if not points:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 4))
    xs, ys, _ = zip(*points)
    ax.scatter(xs, ys, s=22, color="tab:blue", zorder=3)
    for x, y, n in points:
        ax.annotate(f"#{n}", (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("accuracy estimated on the supernet")
    ax.set_ylabel("standalone validation accuracy")
    ax.set_title(f"{title}: {len(points)} retrained" +
                 (f", Kendall tau {tau:.2f}" if tau is not None else ""))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_pareto(search, path: Path) -> Path | None:
    study = search.study
    done = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    if not done:
        return None
    cost = COST_UNITS.get(search.objectives[1], search.objectives[1])
    plt = _plt()
    from optuna.visualization.matplotlib import plot_pareto_front
    with plt.rc_context(), warnings.catch_warnings():   # the plot sets its own style sheet
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        ax = plot_pareto_front(
            study, targets=lambda t: (t.values[1], t.values[0]),
            target_names=[cost, "validation accuracy"])
        for t in study.best_trials:
            ax.annotate(f"#{t.number}", (t.values[1], t.values[0]), fontsize=7,
                        textcoords="offset points", xytext=(3, 3))
        if all(t.values[1] > 0 for t in done):
            ax.set_xscale("log")
        ax.set_title(f"{search.study_name}: accuracy against {cost}")
        fig = ax.figure
        fig.set_size_inches(7, 4.5)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
    return path
