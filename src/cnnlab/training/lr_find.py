"""The learning-rate range test: train briefly while the learning rate grows exponentially, and
see where the loss falls fastest and where it blows up (Smith 2017, "Cyclical learning rates for
training neural networks", arXiv:1506.01186, Section 3.3; fastai's ``lr_find``).

The model and optimizer are used up by the test: build fresh ones for the real run (``cnnlab
lr-find`` does all of this on a copy of the recipe's setup and writes nothing but its plot).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable

import torch
from torch import nn

from ..device import autocast
from ..transfer import frozen_norms_eval
from .loop import NonFiniteLossError
from .mix import mixed_loss


@dataclass
class LRFinderResult:
    """What :func:`lr_find` measured.

    Attributes:
        lrs: the learning rate of each step (of the first parameter group).
        losses: the training loss after each step, exponentially smoothed and bias-corrected.
        raw_losses: the batch losses as measured.
        stopped: why the test ended: ``"steps"`` (all done) or ``"diverged"`` (the smoothed loss
            passed ``diverge`` times its minimum, or was not finite).
    """

    lrs: list[float]
    losses: list[float]
    raw_losses: list[float]
    stopped: str

    @property
    def lr_min(self) -> float:
        """The learning rate where the smoothed loss was lowest."""
        return self.lrs[min(range(len(self.losses)), key=self.losses.__getitem__)]

    @property
    def suggestion(self) -> float:
        """``lr_min / 10``: a rate still safely on the falling slope (fastai's "minimum/10")."""
        return self.lr_min / 10

    @property
    def steepest(self) -> float:
        """The learning rate where the smoothed loss fell fastest per decade of learning rate,
        before its minimum (fastai's "steep")."""
        end = min(range(len(self.losses)), key=self.losses.__getitem__)
        if end < 2:
            return self.lrs[0]
        slopes = [(self.losses[i + 1] - self.losses[i]) / math.log10(self.lrs[i + 1] / self.lrs[i])
                  for i in range(end)]
        return self.lrs[min(range(len(slopes)), key=slopes.__getitem__)]


def check_range(start_lr: float, end_lr: float, steps: int) -> None:
    """Check the range-test settings of :func:`lr_find` (learning rates, steps).

    Raises:
        ValueError: unless ``0 < start_lr < end_lr`` and ``steps >= 2``.
    """
    if not 0 < start_lr < end_lr:
        raise ValueError(f"the range must satisfy 0 < start_lr < end_lr, got {start_lr}, {end_lr}")
    if steps < 2:
        raise ValueError(f"steps must be at least 2, got {steps}")


def lr_find(model: nn.Module, optimizer: torch.optim.Optimizer,
            loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], batches: Iterable, *,
            start_lr: float = 1e-7, end_lr: float = 10.0, steps: int = 100, precision: str = "fp32",
            device: torch.device | str = "cpu", smoothing: float | None = None,
            diverge: float = 4.0, clip_grad_norm: float | None = None, mix=None) -> LRFinderResult:
    """Run the learning-rate range test (Smith 2017, "Cyclical learning rates for training neural
    networks", arXiv:1506.01186): ``steps`` training steps, the learning rate going from
    ``start_lr`` to ``end_lr`` geometrically; stop early once the loss diverges.

    Args:
        model: the network in training mode; float ``(N, C, H, W)`` -> logits ``(N, K)``.
        optimizer: its optimizer; each parameter group keeps its ratio to the first group's rate
            (e.g. airbench's BatchNorm-bias multiplier). Its state is changed: use a fresh one
            for training.
        loss_fn: ``(logits, labels int64 (N,)) -> scalar``, as training uses it.
        batches: ``(images, labels)`` batches on ``device``, as training draws them (augmented);
            iterated again from the start when it runs out before ``steps``.
        start_lr, end_lr: the first and last rate; ``end_lr > start_lr > 0``.
        steps: number of steps (at least 2).
        precision: ``"fp32"`` or ``"bf16"`` (autocast), as training.
        smoothing: the loss's exponential smoothing factor, bias-corrected. Default: the factor
            that averages over 0.8 of a decade of learning rate, ``1 - 1 / (0.8 * steps per
            decade)`` (0.9 at the default 100 steps over 8 decades, about 10 steps; 0.67 at 30
            steps), so that the smoothed curve does not lag the rates; fastai's 0.98 (about 50
            steps) lags it by four decades at 100 steps.
        diverge: stop when the smoothed loss exceeds this many times its minimum.
        clip_grad_norm, mix: the gradient clipping and MixUp/CutMix
            (:class:`cnnlab.training.mix.BatchMix`) of training, as :class:`cnnlab.training.Trainer`
            applies them; None: off.

    Returns:
        :class:`LRFinderResult` with the rates and losses; ``suggestion`` is minimum/10.

    Raises:
        ValueError: a bad range or step count, a precision other than fp32 / bf16, no batches,
            or ``mix`` doing CutMix on inputs that are not ``(B, C, H, W)``.
        NonFiniteLossError: the first step's loss is NaN or infinite (no rate to suggest).
    """
    check_range(start_lr, end_lr, steps)
    autocast(torch.device(device), precision)  # raises ValueError for anything but fp32 / bf16
    if smoothing is None:
        per_decade = steps / math.log10(end_lr / start_lr)
        smoothing = min(0.98, max(0.0, 1 - 1 / (0.8 * per_decade)))
    groups = optimizer.param_groups
    base = [g.get("max_lr", g.get("initial_lr", g["lr"])) for g in groups]  # before any schedule
    ratios = [b / base[0] for b in base]
    device = torch.device(device)
    lrs, losses, raw = [], [], []
    avg, best, stopped = 0.0, math.inf, "steps"
    model.train()
    frozen_norms_eval(model)  # as the trainer: frozen BatchNorms keep their running statistics
    it = iter(batches)
    for step in range(steps):
        lr = start_lr * (end_lr / start_lr) ** (step / (steps - 1))
        for g, r in zip(groups, ratios):
            g["lr"] = lr * r
        try:
            x, y = next(it)
        except StopIteration:
            it = iter(batches)
            try:
                x, y = next(it)
            except StopIteration:
                raise ValueError("lr_find got no batches") from None
        y_other, lam = y, 1.0
        if mix is not None:
            x, y_other, lam = mix(x, y)
        with autocast(device, precision):
            loss = mixed_loss(loss_fn, model(x), y, y_other, lam)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip_grad_norm is not None:
            nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
        optimizer.step()
        value = float(loss.detach())  # one sync per step: the test needs each loss at once
        avg = smoothing * avg + (1 - smoothing) * value
        smoothed = avg / (1 - smoothing ** (step + 1))
        lrs.append(lr)
        raw.append(value)
        losses.append(smoothed)
        best = min(best, smoothed)
        if not math.isfinite(smoothed) and step == 0:
            raise NonFiniteLossError(f"lr_find: the loss is {value} at the first step (lr {lr:.2g}), before "
                                     "the rate can matter: check the data, the model and the precision")
        if not math.isfinite(smoothed) or smoothed > diverge * best:
            stopped = "diverged"
            break
    if stopped == "diverged" and len(lrs) > 1:  # the last point is past the blow-up: not plotted
        lrs, losses, raw = lrs[:-1], losses[:-1], raw[:-1]
    return LRFinderResult(lrs, losses, raw, stopped)
