"""Is the proxy giving any signal? A search whose trials all score at chance level (one over the
data's class count, give or take what guessing scores on a validation set of its size) ranks
its networks by noise: at budget.epochs=1 every mobile_stages trial
scored 0.10 on digits and the search returned whichever came first. Said on the console and in
best.json, with what to change. A one-shot search asks the same of its supernet's training loss
(``supernet_unlearned``)."""
from __future__ import annotations

import math

from optuna.trial import TrialState

MARGIN = 0.05        # accuracy points above chance that count as learning something, at least
SIGMAS = 3           # ... or this many standard deviations of a guess's accuracy on the val set
AT_LEAST = 3         # trials trained before the search is judged
NEAR_CHANCE = 0.9    # of ln(classes): the loss of a network that predicts every class alike


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


def supernet_unlearned(losses: dict[int, float], num_classes: int) -> str | None:
    """The one-shot search's twin of signal_of: a warning when the supernet's last training loss
    (per epoch in ``losses``) is still near chance (ln of the number of classes, whatever the
    loss's smoothing or mixing): its estimates then rank candidates by noise (the nasnet_cell
    supernet on digits in 4 epochs, README "One-shot search")."""
    if not losses or num_classes < 2:
        return None
    first, last = losses[min(losses)], losses[max(losses)]
    chance = math.log(num_classes)
    if last < NEAR_CHANCE * chance:
        return None
    return (f"warning: the supernet did not learn: its training loss went {first:.3f} -> "
            f"{last:.3f} over {len(losses)} epochs, and a network that predicts every class "
            f"alike has ln({num_classes}) = {chance:.3f}; its estimates rank the candidates by "
            f"noise. Train it longer (oneshot.epochs=), or search this space with a trial "
            f"strategy (strategy=tpe, rl, random)")
