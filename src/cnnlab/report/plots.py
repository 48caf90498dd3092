"""Training curves and image grids (matplotlib figures drawn with Agg: no display needed).

The figures are made without pyplot, so importing or calling this module leaves pyplot's
backend alone (a notebook's inline plots keep working after ``cnnlab.train``).
"""
from __future__ import annotations

import os

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .._io import atomic_path, image_format
from .confidence import predictions, select_predictions


def _subplots(rows: int = 1, cols: int = 1, *, figsize, dpi: int = 100, squeeze: bool = True):
    """``plt.subplots`` without pyplot: a Figure on an Agg canvas and its axes."""
    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(rows, cols, squeeze=squeeze)


def plot_history(history, path: str | os.PathLike, title: str = "") -> None:
    """Accuracy and loss per epoch, training vs validation, side by side, as one PNG.

    Raises:
        ValueError: a ``path`` suffix matplotlib cannot write.
        DiskFullError: the disk is full; ``path`` is left as it was.
    """
    epochs = history["epoch"]
    fig, axes = _subplots(1, 2, figsize=(11, 4), dpi=100)
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
    _save(fig, path)


def plot_comparison(histories: dict, path: str | os.PathLike, title: str = "") -> None:
    """Several runs' curves in one PNG (``cnnlab compare``): validation top-1 accuracy and loss per
    epoch, one line per run (its training curve, dashed, where it has no validation split).

    Args:
        histories: label -> :class:`cnnlab.training.History`.

    Raises:
        ValueError: a ``path`` suffix matplotlib cannot write.
        DiskFullError: the disk is full; ``path`` is left as it was.
    """
    fig, axes = _subplots(1, 2, figsize=(11, 4), dpi=100)
    epochs = sorted({e for h in histories.values() for e in h["epoch"]})
    for ax, key, label in ((axes[0], "accuracy", "top-1 accuracy"), (axes[1], "loss", "loss")):
        for name, h in histories.items():
            val = bool(h[f"val_{key}"])
            # markers: a run of one epoch is one point, which a line alone does not draw
            ax.plot(h["epoch"], h[f"val_{key}"] if val else h[key], "o-" if val else "o--",
                    markersize=3, label=name if val else f"{name} (training)")
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"validation {label}")
        ax.grid(alpha=0.3)
        if len(epochs) < 20:
            ax.set_xticks(epochs)
        else:  # whole epochs only
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    _save(fig, path)


def plot_predictions(images, labels, logits, classes: list[str], path: str | os.PathLike,
                     kind: str = "worst", n: int = 16, title: str = "") -> None:
    """A grid of test images with their true class, prediction and confidence.

    Args:
        images: uint8 ``(N, C, H, W)`` test images (as stored in the dataset).
        labels: int64 ``(N,)`` true classes.
        logits: float ``(N, K)``, or ``(N, 1)`` for a single sigmoid output.
        kind: ``"best"`` -- the most confident correct predictions; ``"worst"`` -- the most
            confident wrong ones (seed 003's two grids); ``"random"`` -- a seeded random sample.

    Raises:
        ValueError: an unknown ``kind`` (:func:`~cnnlab.report.confidence.select_predictions`);
            a ``path`` suffix matplotlib cannot write.
        DiskFullError: the disk is full; ``path`` is left as it was.
    """
    pred, conf, _ = predictions(logits)
    correct = pred == labels
    idx = select_predictions(labels, logits, kind, n)
    cols = min(8, max(1, len(idx)))
    rows = max(1, -(-len(idx) // cols))
    fig, axes = _subplots(rows, cols, figsize=(max(6.0, 1.6 * cols), 1.9 * rows + 0.4), dpi=100,
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, idx):
        _show(ax, images[i])
        ok = bool(correct[i])
        ax.set_title(f"true {classes[labels[i]]}\npred {classes[pred[i]]} {100 * conf[i]:.0f}%",
                     fontsize=7, color="green" if ok else "red")
    what = {"best": "most confident correct", "worst": "most confident wrong", "random": "random"}[kind]
    fig.suptitle(f"{title}: {what} test predictions" if title else f"{what} test predictions", fontsize=9)
    if not idx:
        none = {"worst": "every test image is predicted correctly",
                "best": "no test image is predicted correctly", "random": "the test split is empty"}
        fig.text(0.5, 0.5, f"none: {none[kind]}", ha="center")
    _save(fig, path)


def plot_confusion_matrix(matrix, classes: list[str], path: str | os.PathLike, title: str = "") -> None:
    """The test split's confusion matrix as a PNG: rows the true class, columns the predicted one,
    each cell's count written in it and coloured by its share of the row (the per-class recall on
    the diagonal), as fastai's ``plot_confusion_matrix`` and scikit-learn's display draw it.

    Args:
        matrix: ``(K, K)`` counts (a nested list or an integer array), ``matrix[true][predicted]``.
        classes: the ``K`` class names.

    Raises:
        ValueError: ``matrix`` not ``(K, K)`` for the ``K`` classes; a ``path``
            suffix matplotlib cannot write.
        DiskFullError: the disk is full; ``path`` is left as it was.
    """
    import numpy as np
    cm = np.asarray(matrix, dtype=np.int64)
    k = len(classes)
    if cm.shape != (k, k):
        raise ValueError(f"confusion matrix of shape {cm.shape} for {k} classes")
    share = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    side = min(12.0, max(4.0, 0.55 * k + 2.5))
    fig, ax = _subplots(figsize=(side + 1.2, side), dpi=100)
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    ax.set_xticks(range(k), classes, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(k), classes, fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if k <= 30:  # beyond that the numbers would not fit in their cells
        for i in range(k):
            for j in range(k):
                ax.text(j, i, f"{cm[i, j]:,}", ha="center", va="center", fontsize=7 if k > 12 else 8,
                        color="white" if share[i, j] > 0.5 else "black")
    acc = np.trace(cm) / max(cm.sum(), 1)
    ax.set_title(f"{title + ': ' if title else ''}test confusion matrix "
                 f"(top-1 {100 * acc:.2f}%, {cm.sum():,} images)", fontsize=9)
    _save(fig, path)


def plot_lr_find(result, path: str | os.PathLike, title: str = "", recipe_lr: float | None = None) -> None:
    """The learning-rate range test as a PNG: smoothed training loss against the learning rate
    (log scale), the raw batch losses faint behind it, and vertical lines at the suggestion
    (minimum/10), the steepest fall and, where given, the recipe's learning rate.

    Args:
        result: a :class:`cnnlab.training.lr_find.LRFinderResult`.

    Raises:
        ValueError: a ``path`` suffix matplotlib cannot write.
        DiskFullError: the disk is full; ``path`` is left as it was.
    """
    fig, ax = _subplots(figsize=(7, 4.5), dpi=100)
    ax.plot(result.lrs, result.raw_losses, color="0.8", lw=0.8, label="batch loss")
    ax.plot(result.lrs, result.losses, color="C0", lw=1.8, label="smoothed loss")
    marks = [(result.suggestion, "C2", f"minimum/10: {result.suggestion:.2g}"),
             (result.steepest, "C1", f"steepest fall: {result.steepest:.2g}")]
    if recipe_lr is not None:
        marks.append((recipe_lr, "C3", f"recipe's lr: {recipe_lr:g}"))
    for lr, color, label in marks:
        ax.axvline(lr, color=color, ls="--", lw=1.2, label=label)
    ax.set_xscale("log")
    import numpy as np
    low = min(min(result.losses), float(np.percentile(result.raw_losses, 5)))
    high = max(result.losses[0], low * 1.5)
    ax.set_ylim(low - 0.1 * (high - low) - 1e-3, high + 0.25 * (high - low) + 1e-3)
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    end = " (stopped where the loss diverged)" if result.stopped == "diverged" else ""
    ax.set_title(f"{title + ': ' if title else ''}learning-rate range test, {len(result.lrs)} steps{end}",
                 fontsize=9)
    _save(fig, path)


def _save(fig, path: str | os.PathLike) -> None:
    """Lay out ``fig``, write it atomically (a complete file or none; PNG, or the format the
    suffix names)."""
    fig.tight_layout()
    fmt = image_format(fig, path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt)


def _show(ax, img) -> None:
    """An uint8 ``(C, H, W)`` image on ``ax``: grayscale for one channel, RGB for three."""
    if img.shape[0] == 1:
        ax.imshow(img[0].numpy(), cmap="gray", vmin=0, vmax=255)
    else:
        ax.imshow(img.permute(1, 2, 0).numpy())


def plot_grad_cam(images, labels, logits, cams, classes: list[str], path: str | os.PathLike,
                  title: str = "") -> None:
    """Each image above its Grad-CAM heatmap overlaid on it (``cnnlab explain``).

    Args:
        images: uint8 ``(N, C, H, W)``; labels: int64 ``(N,)`` true classes.
        logits: float ``(N, K)`` or ``(N, 1)`` (one sigmoid output).
        cams: float ``(N, H, W)`` in [0, 1] (:func:`cnnlab.explain.grad_cam`), for the predicted class.

    Raises:
        ValueError: a ``path`` suffix matplotlib cannot write.
        DiskFullError: the disk is full; ``path`` is left as it was.
    """
    pred, conf, _ = predictions(logits)
    n = len(images)
    cols = min(8, n)
    rows = -(-n // cols)
    fig, axes = _subplots(2 * rows, cols, figsize=(max(6.0, 1.6 * cols), 3.4 * rows + 0.5), dpi=100,
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i in range(n):
        top, bottom = axes[2 * (i // cols), i % cols], axes[2 * (i // cols) + 1, i % cols]
        _show(top, images[i])
        ok = bool(pred[i] == labels[i])
        top.set_title(f"true {classes[labels[i]]}\npred {classes[pred[i]]} {100 * conf[i]:.0f}%",
                      fontsize=7, color="green" if ok else "red")
        _show(bottom, images[i])
        bottom.imshow(cams[i].numpy(), cmap="jet", alpha=0.45, vmin=0, vmax=1)
        if float(cams[i].max()) == 0:  # ReLU(sum alpha_k A_k) <= 0 everywhere
            bottom.set_title("no positive evidence\nat this layer", fontsize=6)
    fig.suptitle(title or "Grad-CAM of the predicted class", fontsize=9)
    _save(fig, path)


def plot_filters(weights, path: str | os.PathLike, title: str = "", max_filters: int = 64) -> None:
    """The first convolution's filters as small images (``cnnlab explain``).

    Args:
        weights: float ``(out_channels, in_channels, kh, kw)``. Filters with 3 input channels are
            shown in colour, others by their first input channel in grayscale; each is scaled to
            its own min-max range. At most ``max_filters`` are drawn.

    Raises:
        ValueError: a ``path`` suffix matplotlib cannot write.
        DiskFullError: the disk is full; ``path`` is left as it was.
    """
    import torch
    w = weights[:max_filters].float()
    n = len(w)
    cols = min(16, n)
    rows = -(-n // cols)
    fig, axes = _subplots(rows, cols, figsize=(max(4.0, 0.7 * cols), 0.7 * rows + 0.6), dpi=100,
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i in range(n):
        f = w[i] if w.shape[1] == 3 else w[i, :1]
        lo, hi = f.min(), f.max()
        f = ((f - lo) / torch.clamp(hi - lo, min=1e-12) * 255).round().to(torch.uint8)
        ax = axes.flat[i]
        if f.shape[0] == 1:
            ax.imshow(f[0].numpy(), cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        else:
            ax.imshow(f.permute(1, 2, 0).numpy(), interpolation="nearest")
    shown = "RGB" if w.shape[1] == 3 else ("grayscale" if w.shape[1] == 1 else "input channel 0 of "
                                            f"{w.shape[1]}")
    fig.suptitle(f"{title}\n{n} of {len(weights)} filters, {weights.shape[2]}x{weights.shape[3]}, "
                 f"{shown}, each scaled to its own range", fontsize=8)
    _save(fig, path)


def plot_feature_maps(image, maps: list, path: str | os.PathLike, title: str = "",
                      max_maps: int = 32) -> None:
    """One image and its feature maps at some layers, one row block per layer (``cnnlab explain``).

    Args:
        image: uint8 ``(C, H, W)``.
        maps: ``[(layer_name, float (C', h, w)), ...]``; the first ``max_maps`` channels of each
            layer (the title says how many of how many), each map scaled to its own range (viridis).

    Raises:
        ValueError: a ``path`` suffix matplotlib cannot write.
        DiskFullError: the disk is full; ``path`` is left as it was.
    """
    cols = 16
    blocks = [(name, m[:max_maps], len(m)) for name, m in maps]
    rows = 1 + sum(-(-len(m) // cols) for _, m, _ in blocks)
    fig, axes = _subplots(rows, cols, figsize=(0.8 * cols, 0.85 * rows + 0.6), dpi=100, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    _show(axes[0, 0], image)
    axes[0, 0].set_title("input", fontsize=7)
    r = 1
    for name, m, channels in blocks:
        shown = f"{len(m)} of {channels} channels" if len(m) < channels else f"{channels} channels"
        for i in range(len(m)):
            ax = axes[r + i // cols, i % cols]
            ax.imshow(m[i].numpy(), cmap="viridis", interpolation="nearest")
            if i == 0:  # out of the layout: as a title, tight_layout shrank every column to fit it
                ax.text(0, 1.05, f"{name}: {shown}, {m.shape[1]}x{m.shape[2]}", fontsize=7,
                        transform=ax.transAxes, ha="left", va="bottom").set_in_layout(False)
        r += -(-len(m) // cols)
    fig.suptitle(title, fontsize=8)
    _save(fig, path)
