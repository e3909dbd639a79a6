"""PNG figures of a run: training curves and a confusion matrix (matplotlib, headless)."""
from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


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


def plot_curves(metrics_csv: Path, out: Path) -> Path | None:
    """Loss and accuracy per epoch, train against val."""
    if not Path(metrics_csv).is_file():
        return None
    m = read_metrics(metrics_csv)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in (("train/loss_epoch", "train"), ("val/loss", "val")):
        if m.get(key):
            ax_loss.plot(*zip(*m[key]), marker="o", label=label)
    for key, label in (("train/acc", "train"), ("val/acc", "val"), ("val/acc_top5", "val top-5")):
        if m.get(key):
            ax_acc.plot(*zip(*m[key]), marker="o", label=label)
    for ax, title in ((ax_loss, "loss"), (ax_acc, "accuracy")):
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def plot_confusion(matrix, classes: list[str], out: Path) -> Path:
    n = len(classes)
    fig, ax = plt.subplots(figsize=(max(4, 0.5 * n + 2), max(4, 0.5 * n + 2)))
    ax.imshow(matrix, cmap="Blues")
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
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
