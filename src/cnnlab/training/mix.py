"""MixUp and CutMix: training images mixed in pairs, the loss mixed in the same proportion.

* MixUp (Zhang, Cisse, Dauphin & Lopez-Paz 2018, "mixup: Beyond Empirical Risk Minimization"):
  ``x = lam * x_i + (1 - lam) * x_j`` with ``lam ~ Beta(alpha, alpha)``.
* CutMix (Yun et al. 2019, "CutMix: Regularization Strategy to Train Strong Classifiers with
  Localizable Features"): a box of ``x_j`` pasted into ``x_i``, its area ``1 - lam`` of the image
  (``lam ~ Beta(alpha, alpha)``, then set to the share of ``x_i`` left after the box is clipped
  at the border).

The loss is ``lam * loss(logits, y_i) + (1 - lam) * loss(logits, y_j)``, which for cross-entropy
(label smoothing included) equals the loss against the mixed one-hot targets. As timm's ``Mixup``
in its default batch mode, one ``lam`` is drawn per batch and each image is paired with the one
at the mirrored position of the (shuffled) batch, ``x.flip(0)``; where both are on, each mixed
batch is MixUp or CutMix with even odds. Validation and test images are never mixed.
"""
from __future__ import annotations

import math
import random

import torch


class BatchMix:
    """MixUp (Zhang, Cisse, Dauphin & Lopez-Paz 2018, "mixup: Beyond Empirical Risk
    Minimization") and/or CutMix (Yun et al. 2019, "CutMix: Regularization Strategy to Train
    Strong Classifiers with Localizable Features") of a training batch (see the module docstring).

    Args:
        mixup_alpha: Beta(alpha, alpha) of MixUp's ``lam``; 0 turns MixUp off (0.2-0.4 is usual
            for CIFAR/ImageNet, timm's ImageNet recipes use 0.8).
        cutmix_alpha: Beta(alpha, alpha) of CutMix's ``lam``; 0 turns it off (1.0 in the paper).
        prob: share of the batches that are mixed, in [0, 1].
        seed: seeds the draws; :meth:`set_epoch` makes every epoch's draws reproducible (a
            resumed run mixes as the uninterrupted one would).

    Raises:
        ValueError: a negative alpha, both alphas 0, or ``prob`` outside [0, 1].
    """

    def __init__(self, mixup_alpha: float = 0.0, cutmix_alpha: float = 0.0, prob: float = 1.0,
                 seed: int = 0):
        if mixup_alpha < 0 or cutmix_alpha < 0 or mixup_alpha == cutmix_alpha == 0:
            raise ValueError(f"mixup_alpha {mixup_alpha} and cutmix_alpha {cutmix_alpha}: both must be "
                             ">= 0 and at least one > 0")
        if not 0 <= prob <= 1:
            raise ValueError(f"prob must be in [0, 1], got {prob}")
        self.mixup_alpha, self.cutmix_alpha, self.prob, self.seed = mixup_alpha, cutmix_alpha, prob, seed
        self.rng = random.Random()  # scalars per batch: Python's generator, seeded, on the CPU
        self.set_epoch(0)

    def __repr__(self) -> str:
        return (f"BatchMix(mixup_alpha={self.mixup_alpha}, cutmix_alpha={self.cutmix_alpha}, "
                f"prob={self.prob})")

    def set_epoch(self, epoch: int, rank: int = 0) -> None:
        """Re-seed the draws for ``epoch`` (0-based) on process ``rank`` of a torchrun job."""
        self.rng.seed((self.seed * 1_000_003 + epoch) * 65_537 + rank)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
        """Mix a batch.

        Args:
            x: float ``(B, C, H, W)`` (CutMix) or ``(B, C, ...)`` (MixUp), any device and memory
                format; not modified.
            y: int64 labels ``(B,)``.

        Returns:
            ``(x_mixed, y_other, lam)``: the mixed images (same shape, dtype, device and memory
            format), the labels of the images mixed in (``y.flip(0)``) and the share ``lam`` of
            the original images, a float; ``(x, y, 1.0)`` for a batch left unmixed.

        Raises:
            ValueError: CutMix on input that is not ``(B, C, H, W)``.
        """
        if self.rng.random() >= self.prob:
            return x, y, 1.0
        cutmix = self.cutmix_alpha > 0 and (self.mixup_alpha == 0 or self.rng.random() < 0.5)
        alpha = self.cutmix_alpha if cutmix else self.mixup_alpha
        lam = self.rng.betavariate(alpha, alpha)
        other = x.flip(0)
        if not cutmix:
            return torch.lerp(other, x, lam), y.flip(0), lam
        if x.dim() != 4:
            raise ValueError(f"CutMix needs images (B, C, H, W), got shape {tuple(x.shape)}; "
                             "use mixup_alpha for other inputs")
        h, w = x.shape[-2:]
        cut = math.sqrt(1.0 - lam)
        ch, cw = int(h * cut), int(w * cut)
        cy, cx = self.rng.randrange(h), self.rng.randrange(w)
        y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
        x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
        mixed = x.clone(memory_format=torch.preserve_format)
        mixed[:, :, y0:y1, x0:x1] = other[:, :, y0:y1, x0:x1]
        return mixed, y.flip(0), 1.0 - (y1 - y0) * (x1 - x0) / (h * w)


def mixed_loss(loss_fn, logits: torch.Tensor, y: torch.Tensor, y_other: torch.Tensor, lam: float) -> torch.Tensor:
    """The loss of a batch mixed by :class:`BatchMix`: ``lam * loss(y) + (1 - lam) * loss(y_other)``
    (timm's mixed soft targets, label smoothing included, for a loss linear in its target);
    ``loss_fn(logits, y)`` alone for an unmixed batch (``lam == 1``).

    Args:
        loss_fn: ``(logits, labels int64 (B,)) -> scalar``.
        logits: ``(B, K)`` (or ``(B,)`` for one sigmoid logit); y, y_other: int64 ``(B,)``, as
            :meth:`BatchMix.__call__` returns them with ``lam``.
    """
    loss = loss_fn(logits, y)
    return loss if lam == 1.0 else lam * loss + (1.0 - lam) * loss_fn(logits, y_other)
