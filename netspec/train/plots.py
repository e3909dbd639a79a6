"""PNG figures of a run: training curves and a confusion matrix (matplotlib, headless)."""
from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402


def read_metrics(path: Path) -> dict[str, list[tuple[int, float]]]:
    """Lightning's CSV log -> {metric: [(epoch, value), ...]} with one value per epoch."""
    series: dict[str, dict[int, float]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            epoch = row.get("epoch")
            if epoch in (None, ""):
                continue
            for key, value in row.items():
                if key in ("epoch", "step") or value in (None, ""):
                    continue
                series.setdefault(key, {})[int(float(epoch))] = float(value)
    return {k: sorted(v.items()) for k, v in series.items()}


def plot_curves(history, out: Path, lrs=()) -> Path | None:
    """Loss, accuracy and learning rate per epoch, train against val. ``history``: the rows of
    summary.csv (netspec.train.report; the whole run, across resumes), or the path of a Lightning
    CSV log; ``lrs``: ``[epoch as a fraction, lr]`` points for the LR panel (else one per row)."""
    rows = _rows_of(history)
    if rows is None:
        return None
    return _save(curves_figure(rows, lrs), out)


def curves_figure(rows: list[dict], lrs=()):
    fig, (ax_loss, ax_acc, ax_lr) = plt.subplots(1, 3, figsize=(14, 4))
    for ax, keys in ((ax_loss, (("train_loss", "train"), ("val_loss", "val"))),
                     (ax_acc, (("train_acc", "train"), ("val_acc", "val"),
                               ("val_acc_top5", "val top-5")))):
        for key, label in keys:
            points = [(r["epoch"], r[key]) for r in rows if r.get(key) is not None]
            if points:
                ax.plot(*zip(*points), marker="o", label=label)
    lr_points = [tuple(p) for p in lrs] or \
        [(r["epoch"], r["lr"]) for r in rows if r.get("lr") is not None]
    if lr_points:
        ax_lr.plot(*zip(*lr_points), color="tab:green")
    for ax, title in ((ax_loss, "loss"), (ax_acc, "accuracy"), (ax_lr, "learning rate")):
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))   # epochs are whole numbers
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    return fig


def _save(fig, out: Path) -> Path:
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def _rows_of(history) -> list[dict] | None:
    """Rows with summary.csv's keys (epoch 0-based), from rows or a Lightning metrics.csv."""
    if not isinstance(history, (str, Path)):
        return list(history) if history else None
    if not Path(history).is_file():
        return None
    m = read_metrics(Path(history))
    names = {"train/loss_epoch": "train_loss", "train/acc": "train_acc", "val/loss": "val_loss",
             "val/acc": "val_acc", "val/acc_top5": "val_acc_top5"}
    lr = next((k for k in m if k.startswith("lr-")), None)
    if lr:
        names[lr] = "lr"
    rows: dict[int, dict] = {}
    for key, name in names.items():
        for epoch, value in m.get(key, []):
            rows.setdefault(epoch, {"epoch": epoch})[name] = value
    return [rows[e] for e in sorted(rows)] or None


def plot_confusion(matrix, classes: list[str], out: Path, title: str = "confusion matrix") -> Path:
    """Rows the true class, columns the predicted one; ``title`` says what was evaluated."""
    return _save(confusion_figure(matrix, classes, title), out)


def confusion_figure(matrix, classes: list[str], title: str = "confusion matrix"):
    n = len(classes)
    fig, ax = plt.subplots(figsize=(max(4, 0.5 * n + 2), max(4, 0.5 * n + 2)))
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="images")
    ax.set_title(title, fontsize=10, wrap=True)
    ax.set_xticks(range(n), classes, rotation=90 if n > 10 else 0)
    ax.set_yticks(range(n), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 20:
        top = matrix.max() if matrix.max() > 0 else 1
        for i in range(n):
            for j in range(n):
                ax.text(j, i, int(matrix[i][j]), ha="center", va="center",
                        color="white" if matrix[i][j] > top / 2 else "black", fontsize=8)
    return fig
