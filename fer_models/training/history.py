"""What a training run writes about itself besides checkpoints: the per-epoch history and its curves."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from fer_models.checkpoint import write_json
from fer_synth.core.atomic import write_bytes
from fer_synth.ui.plots import pyplot, save


def write_history(out: Path, history: list[dict]) -> None:
    """metrics.csv and metrics.json, one row per epoch."""
    write_json(out / "metrics.json", history)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(history[0]))
    writer.writeheader()
    writer.writerows(history)
    write_bytes(out / "metrics.csv", buffer.getvalue().encode())


def plot_curves(path: Path, history: list[dict], title: str = "") -> None:
    """Loss and accuracy per epoch, train and val, as a PNG."""
    plt = pyplot()
    epochs = np.array([r["epoch"] for r in history])
    style = {"marker": "o", "markersize": 4} if len(epochs) <= 20 else {}  # a point per epoch while they are few
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(7.8, 3.4))
    ax_loss.plot(epochs, [r["train_loss"] for r in history], label="train loss", **style)
    ax_loss.plot(epochs, [r["val_nll"] for r in history], label="val NLL", **style)
    ax_acc.plot(epochs, [r["train_accuracy"] for r in history], label="train", **style)
    ax_acc.plot(epochs, [r["val_accuracy"] for r in history], label="val", **style)
    ax_acc.plot(epochs, [r["val_balanced_accuracy"] for r in history], label="val balanced", **style)
    for ax, panel in ((ax_loss, "loss"), (ax_acc, "accuracy")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(panel)
        ax.set_title(panel)
        if len(epochs) <= 20:
            ax.set_xticks(epochs)
            ax.set_xlim(epochs.min() - 0.5, epochs.max() + 0.5)
        else:
            ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontweight="bold")
    save(fig, path)


def epoch_line(row: dict, improved: bool) -> str:
    """One line of the training log for an epoch's history row."""
    return (
        f"epoch {row['epoch']:>3}  lr {row['lr']:.2e}  loss {row['train_loss']:.4f}  "
        f"train acc {row['train_accuracy']:.4f}  val acc {row['val_accuracy']:.4f}  "
        f"val bal acc {row['val_balanced_accuracy']:.4f}  {row['images_per_s']:.0f} img/s"
        f"{'  *best*' if improved else ''}"
    )
