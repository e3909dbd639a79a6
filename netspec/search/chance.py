"""Is the proxy giving any signal? A search whose trials all score at chance level (one over the
data's class count, give or take what guessing scores on a validation set of its size) ranks
its networks by noise: at budget.epochs=1 every mobile_stages trial
scored 0.10 on digits and the search returned whichever came first. Said on the console and in
best.json, with what to change."""
from __future__ import annotations

import math

from optuna.trial import TrialState

MARGIN = 0.05        # accuracy points above chance that count as learning something, at least
SIGMAS = 3           # ... or this many standard deviations of a guess's accuracy on the val set
AT_LEAST = 3         # trials trained before the search is judged


def signal_of(search, trials) -> dict | None:
    """The chance level, the best accuracy and whether every trial sits at chance (None before
    AT_LEAST trials have trained)."""
    accs = [t.values[0] for t in trials if t.state == TrialState.COMPLETE and t.values]
    if len(accs) < AT_LEAST:
        return None
    classes = int(search.data[2])
    chance = 1.0 / classes
    best = max(accs)
    n = getattr(search, "val_count", 0)
    noise = SIGMAS * math.sqrt(chance * (1 - chance) / n) if n else 0.0
    info = {"chance": round(chance, 4), "num_classes": classes, "best_acc": round(best, 4),
            "trials": len(accs), "threshold": round(chance + max(MARGIN, noise), 4),
            "at_chance": best < chance + max(MARGIN, noise)}
    if info["at_chance"]:
        info["advice"] = (
            f"all {len(accs)} trained trials score at chance level (best {best:.3f}; chance "
            f"is {chance:.3f} for {classes} classes, and guessing scores up to "
            f"{info['threshold']:.3f} on {n} validation images): the proxy gives no signal and "
            f"the 'best' "
            f"network is chosen by noise; train each trial longer (budget.epochs="
            f"{int(search.cfg.budget.epochs)} now; budget.fraction={search.cfg.budget.fraction:g}"
            f"), check optim.lr, or run one network with netspec.train first to see it learn")
    return info
