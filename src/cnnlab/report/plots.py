"""Training curves and image grids (matplotlib, Agg backend: no display needed)."""
from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .._io import atomic_path  # noqa: E402


def plot_history(history, path: str | os.PathLike, title: str = "") -> None:
    """Accuracy and loss per epoch, training vs validation, side by side, as one PNG."""
    epochs = history["epoch"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), dpi=100)
    for ax, key, label in ((axes[0], "accuracy", "top-1 accuracy"), (axes[1], "loss", "loss")):
        ax.plot(epochs, history[key], "o-", label=f"training {label}")
        if history[f"val_{key}"]:
            ax.plot(epochs, history[f"val_{key}"], "s-", label=f"validation {label}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
        if len(epochs) < 20:
            ax.set_xticks(epochs)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
