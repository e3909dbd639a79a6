"""What a one-shot search leaves: a trial search's files, where ``acc`` is the supernet's screening
estimate, ``rescored_acc`` its estimate on all validation batches (the oneshot.rescore best) and
``standalone_acc`` the retrained accuracy; the best is the best retrained candidate when any was
retrained, else the best estimate; estimates.png plots estimate against retrained accuracy."""
from __future__ import annotations

import json
from pathlib import Path

from ..figures import plot_estimates, plot_history
from ..results import copy_spec, train_command, write_trials_csv


def best_candidate(search):
    ranked = search.ranked()
    if search.standalone:
        retrained = [t for t in ranked if t.number in search.standalone]
        return max(retrained, key=lambda t: (search.standalone[t.number], -t.number))
    return ranked[0] if ranked else None


def retrained(search) -> list[tuple]:
    """(estimate, standalone accuracy, trial number) of every retrained candidate."""
    return [(search.estimate_of(t), search.standalone[t.number], t.number) for t in search.ranked()
            if t.number in search.standalone]


def kendall_tau(search) -> tuple[float | None, int]:
    """Kendall's tau between estimated and standalone accuracy over the retrained candidates."""
    pairs = [(est, acc) for est, acc, _ in retrained(search)]
    if len(pairs) < 2:
        return None, len(pairs)
    from scipy.stats import kendalltau
    tau = kendalltau(*zip(*pairs)).statistic
    return (None if tau != tau else float(tau)), len(pairs)


def write_oneshot_results(search, final: bool = False) -> dict:
    out: Path = search.out
    files: dict = {"trials_csv": write_trials_csv(
        search, out / "trials.csv", {"rescored_acc": dict(search.rescored),
                                     "standalone_acc": dict(search.standalone)})}
    best = best_candidate(search)
    files["best_trials"] = [best] if best is not None else []
    if best is not None:
        standalone = search.standalone.get(best.number)
        estimate = search.estimate_of(best)
        note = (f"accuracy estimated on the supernet {estimate:.4f}" +
                (f", retrained standalone {standalone:.4f}" if standalone is not None else ""))
        path = copy_spec(search, best, out / "best.yaml", "the best network", note)
        if path is not None:
            files["best"] = path
            tau, n = kendall_tau(search)
            info = {"study": search.study_name, "storage": search.url, "trial": best.number,
                    "strategy": search.cfg.strategy.name,
                    "values": {"acc": estimate}, "estimated_acc": estimate,
                    "screening_acc": best.value,
                    "standalone_acc": standalone, "params": best.params,
                    "macs": best.user_attrs.get("macs"), "n_params": best.user_attrs.get("params"),
                    "command": train_command(search, best, path),
                    "supernet": search.supernet.describe(),
                    "supernet_train_loss": [round(v, 4) for _, v in
                                            sorted(search.supernet_losses.items())],
                    "kendall_tau": tau, "retrained": n,
                    "cpu_seconds": {k: round(v, 1) for k, v in search.cpu_seconds().items()}}
            (out / "best.json").write_text(json.dumps(info, indent=2, default=str) + "\n")
    if final:
        files["history"] = plot_history(search, out / "history.png")
        if search.standalone:
            points = retrained(search)
            files["estimates"] = plot_estimates(search.study_name, points, kendall_tau(search)[0],
                                                out / "estimates.png")
    return files
