"""What a training run writes about itself besides checkpoints: the per-epoch history and its curves."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from fer_models.checkpoint import write_json
from fer_synth.core.atomic import atomic_file, write_bytes


def write_history(out: Path, history: list[dict]) -> None:
    """metrics.csv and metrics.json, one row per epoch."""
    write_json(out / "metrics.json", history)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(history[0]))
    writer.writeheader()
    writer.writerows(history)
    write_bytes(out / "metrics.csv", buffer.getvalue().encode())


def plot_curves(path: Path, history: list[dict]) -> None:
    """Loss and accuracy per epoch, train and val, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = np.array([r["epoch"] for r in history])
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, [r["train_loss"] for r in history], label="train loss")
    ax_loss.plot(epochs, [r["val_nll"] for r in history], label="val NLL")
    ax_acc.plot(epochs, [r["train_accuracy"] for r in history], label="train")
    ax_acc.plot(epochs, [r["val_accuracy"] for r in history], label="val")
    ax_acc.plot(epochs, [r["val_balanced_accuracy"] for r in history], label="val balanced")
    for ax, title in ((ax_loss, "loss"), (ax_acc, "accuracy")):
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_file(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def epoch_line(row: dict, improved: bool) -> str:
    """One line of the training log for an epoch's history row."""
    return (f"epoch {row['epoch']:>3}  lr {row['lr']:.2e}  loss {row['train_loss']:.4f}  "
            f"train acc {row['train_accuracy']:.4f}  val acc {row['val_accuracy']:.4f}  "
            f"val bal acc {row['val_balanced_accuracy']:.4f}  {row['images_per_s']:.0f} img/s"
            f"{'  *best*' if improved else ''}")
