"""Training curves and image grids (matplotlib, Agg backend: no display needed)."""
from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

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
        else:  # whole epochs only
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def plot_predictions(images, labels, logits, classes: list[str], path: str | os.PathLike,
                     kind: str = "worst", n: int = 16, title: str = "") -> None:
    """A grid of test images with their true class, prediction and confidence.

    Args:
        images: uint8 ``(N, C, H, W)`` test images (as stored in the dataset).
        labels: int64 ``(N,)`` true classes.
        logits: float ``(N, K)``, or ``(N, 1)`` for a single sigmoid output.
        kind: ``"best"`` -- the most confident correct predictions; ``"worst"`` -- the most
            confident wrong ones (seed 003's two grids); ``"random"`` -- a seeded random sample.
    """
    import torch
    if logits.shape[1] == 1:
        p1 = torch.sigmoid(logits[:, 0].float())
        probs = torch.stack([1 - p1, p1], 1)
    else:
        probs = torch.softmax(logits.float(), 1)
    conf, pred = probs.max(1)
    correct = pred == labels
    if kind == "best":
        idx = torch.nonzero(correct).flatten()
        idx = idx[conf[idx].argsort(descending=True)]
    elif kind == "worst":
        idx = torch.nonzero(~correct).flatten()
        idx = idx[conf[idx].argsort(descending=True)]
    elif kind == "random":
        idx = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    else:
        raise ValueError(f"kind must be best, worst or random, got {kind!r}")
    idx = idx[:n].tolist()
    cols = min(8, max(1, len(idx)))
    rows = max(1, -(-len(idx) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(max(6.0, 1.6 * cols), 1.9 * rows + 0.4), dpi=100,
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, idx):
        img = images[i]
        if img.shape[0] == 1:
            ax.imshow(img[0].numpy(), cmap="gray", vmin=0, vmax=255)
        else:
            ax.imshow(img.permute(1, 2, 0).numpy())
        ok = bool(correct[i])
        ax.set_title(f"true {classes[labels[i]]}\npred {classes[pred[i]]} {100 * conf[i]:.0f}%",
                     fontsize=7, color="green" if ok else "red")
    what = {"best": "most confident correct", "worst": "most confident wrong", "random": "random"}[kind]
    fig.suptitle(f"{title}: {what} test predictions" if title else f"{what} test predictions", fontsize=9)
    if not idx:
        fig.text(0.5, 0.5, "none: every test image is predicted correctly", ha="center")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
