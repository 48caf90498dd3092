"""airbench94 (Jordan 2024, "94% on CIFAR-10 in 3.29 seconds on a single GPU", arXiv:2404.00498;
github.com/KellerJordan/cifar10-airbench, ``legacy/airbench94.py``).

An 8-layer convnet built for fast training rather than for depth::

    whiten  2x2 conv, 2 * C * 4 filters, valid   (3 -> 24 channels, 32x32 -> 31x31) -> GELU
    block1  conv 3x3 -> max-pool 2 -> BN -> GELU -> conv 3x3 -> BN -> GELU   (64,  31 -> 15)
    block2  the same                                                       (256, 15 -> 7)
    block3  the same                                                       (256,  7 -> 3)
    head    global max-pool (3x3 -> 1x1) -> dense without bias -> x 1/9

1,972,792 parameters at 32x32x3 (the BatchNorm scales, frozen at 1, included).

What makes it train fast, and what this file keeps:

* **Patch-whitening stem.** The first conv is initialised from the training images so that its
  output is whitened 2x2 patches: one filter per eigenvector ``v_i`` of the patches' covariance,
  scaled by ``1 / sqrt(lambda_i + eps)``, plus its negation (the GELU after it would otherwise
  throw half of each direction away), then frozen. Airbench computes it from 5,000 training
  images before training; here :class:`PatchWhitening` computes it from the **first training
  batch** it sees (a batch of 512 holds 490,000 patches, plenty for a 12x12 covariance), so no
  trainer change is needed and a run resumed from a checkpoint keeps its whitening (a buffer
  records that it is done). ``whiten=False`` makes it an ordinary learned conv.
* **Identity init.** Each 3x3 conv's first ``in_channels`` filters start as the identity (Dirac),
  so a square conv (``conv2`` of every block) starts as a pass-through.
* **BatchNorm with bias only.** Scales frozen at 1, eps 1e-12, running-stat momentum 0.4
  (airbench's Keras-style 0.6); the dense head has no bias and its logits are scaled by 1/9,
  which keeps the initial softmax nearly uniform.

The airbench *training script*'s tricks are recipe fields of cnnlab's trainer (see
``cnnlab.recipes.cifar10``): its Lookahead (``lookahead``, :class:`cnnlab.training.Lookahead`), the
64x learning rate for the BatchNorm biases (``norm_bias_lr_scale``), alternating flips
(``augment.alternate_flip``) and its test-time augmentation, flip + one-pixel translate
(``tta="flip-shift"``), and training the stem's bias for the first 3 epochs only
(``freeze_after={"features.whiten.bias": 3}``, :class:`cnnlab.training.FreezeAfter`). The loss is a
mean, not a sum (the recipes rescale the learning rate). The architecture itself is
the published one.

Input ``(N, in_chans, H, W)`` float, 32x32 by default; any size from 9x9 up works (the stem takes
one pixel, three pools halve), e.g. 28x28 MNIST (28 -> 27 -> 13 -> 6 -> 3). Output logits
``(N, num_classes)``.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from .. import distributed
from .base import ImageClassifier, register_model


class PatchWhitening(nn.Conv2d):
    """A ``k x k`` valid conv with ``2 * C * k * k`` filters, set to whiten ``k x k`` patches.

    Until :meth:`init_from` has run, the first forward pass in training mode calls it on its own
    input (the first training batch, already normalised and augmented). The weights are then
    frozen (``requires_grad=False``); the bias stays trainable. ``initialised`` (a bool buffer)
    travels with the state_dict, so loaded weights are never overwritten.

    Args:
        in_chans: input channels C. kernel_size: patch side k (2 in airbench).
        eps: added to each eigenvalue before the inverse square root (airbench's 5e-4), which
            keeps the noise directions of near-zero variance from being blown up.
        learned: False (default): data-dependent, frozen. True: an ordinary trainable conv.
    """

    def __init__(self, in_chans: int, kernel_size: int = 2, eps: float = 5e-4, learned: bool = False):
        super().__init__(in_chans, 2 * in_chans * kernel_size ** 2, kernel_size, bias=True)
        nn.init.zeros_(self.bias)  # as airbench's Conv.reset_parameters (PyTorch draws it uniform)
        self.eps, self.learned = eps, learned
        self.register_buffer("initialised", torch.tensor(learned))
        self._checked = learned  # Python copy of the buffer: no device sync on every step
        if not learned:
            self.weight.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Float ``(N, C, H, W)`` -> ``(N, 2 * C * k * k, H - k + 1, W - k + 1)``. The first call in
        training mode sets the filters from ``x`` (:meth:`init_from`) unless they are already set."""
        if self.training and not self._checked and not x.is_meta:
            if not bool(self.initialised):
                self.init_from(x)
            self._checked = True
        return super().forward(x)

    @torch.no_grad()
    def init_from(self, images: torch.Tensor) -> None:
        """Set the filters from the patch covariance of ``images`` float ``(N, C, H, W)``
        (normalised as the network sees them); computed in fp32 even under autocast."""
        c, k = self.in_channels, self.kernel_size[0]
        with torch.autocast(images.device.type, enabled=False):
            # (N, C, H', W', k, k) -> one row of C*k*k values per patch, in the weight's order
            patches = images.float().unfold(2, k, 1).unfold(3, k, 1)
            patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, c * k * k)
            cov = patches.T @ patches / len(patches)
            # in a torchrun job each process sees its part of the batch: average the covariances
            # (equal parts), so every process gets the whitening of the whole batch
            cov = distributed.all_reduce_sum(cov) / distributed.world_size()
            evals, evecs = torch.linalg.eigh(cov)  # ascending; airbench lists the largest first
            filters = (evecs.T / (evals + self.eps).sqrt()[:, None]).flip(0).view(-1, c, k, k)
        self.weight.copy_(torch.cat([filters, -filters]).to(self.weight.dtype))
        self.initialised.fill_(True)

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        self._checked = False  # re-read the loaded buffer at the next training step

    def extra_repr(self) -> str:
        """The layer's settings, shown by ``print(model)``."""
        return super().extra_repr() + (", learned" if self.learned else ", patch-whitening init")


def _batchnorm(c: int) -> nn.BatchNorm2d:
    # airbench: momentum 0.6 in Keras' convention (weight of the old running value) is PyTorch's
    # 0.4; eps 1e-12; the scale is frozen at 1, only the shift learns
    bn = nn.BatchNorm2d(c, eps=1e-12, momentum=0.4)
    bn.weight.requires_grad_(False)
    return bn


def _conv(cin: int, cout: int) -> nn.Conv2d:
    conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
    if not conv.weight.is_meta:
        with torch.no_grad():  # identity init of the first cin filters (PyTorch's default elsewhere)
            nn.init.dirac_(conv.weight[:min(cin, cout)])
    return conv


class ConvGroup(nn.Sequential):
    """conv -> max-pool 2 -> BN -> GELU -> conv -> BN -> GELU: halves the map, ``cin -> cout``."""

    def __init__(self, cin: int, cout: int):
        super().__init__(OrderedDict(
            conv1=_conv(cin, cout), pool=nn.MaxPool2d(2), bn1=_batchnorm(cout), act1=nn.GELU(),
            conv2=_conv(cout, cout), bn2=_batchnorm(cout), act2=nn.GELU()))


class Scale(nn.Module):
    """Multiply by a constant (airbench's logit scale 1/9); no parameters."""

    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x * factor``: any shape, same shape and dtype out."""
        return x * self.factor

    def extra_repr(self) -> str:
        """The layer's settings, shown by ``print(model)``."""
        return f"factor={self.factor:.4g}"


class AirbenchNet(ImageClassifier):
    """airbench94's network (see the module docstring), layers named by role.

    Args:
        widths: output channels of block1..3 (airbench94: 64, 256, 256).
        logit_scale: factor on the logits (1/9).
        whiten: True: patch-whitening stem initialised from the first training batch and frozen;
            False: an ordinary learned 2x2 conv.

    Input ``(N, in_chans, H, W)`` float, H, W >= 9; output logits ``(N, num_classes)``.
    """

    def __init__(self, num_classes: int = 10, in_chans: int = 3, widths=(64, 256, 256),
                 logit_scale: float = 1 / 9, whiten: bool = True):
        super().__init__()
        stem = PatchWhitening(in_chans, learned=not whiten)
        w1, w2, w3 = widths
        self.features = nn.Sequential(OrderedDict(
            whiten=stem, act=nn.GELU(),
            block1=ConvGroup(stem.out_channels, w1), block2=ConvGroup(w1, w2),
            block3=ConvGroup(w2, w3)))
        self.classifier = nn.Sequential(OrderedDict(
            pool=nn.AdaptiveMaxPool2d(1), flatten=nn.Flatten(),
            fc=nn.Linear(w3, num_classes, bias=False), scale=Scale(logit_scale)))


@register_model("airbench94", input_size=(3, 32, 32), num_params=1_972_792,
                first_conv="features.whiten", classifier="classifier.fc", fixed_size=False,
                min_size=9,
                paper="Jordan 2024, '94% on CIFAR-10 in 3.29 seconds on a single GPU', "
                      "arXiv:2404.00498 (airbench94 network)")
def airbench94(input_size=None, **kw) -> AirbenchNet:
    """Registered as ``airbench94``: float (N, 3, 32, 32) -> logits float (N, num_classes).
    Source: Jordan 2024, '94% on CIFAR-10 in 3.29 seconds on a single GPU', arXiv:2404.00498
    (airbench94 network)."""
    return AirbenchNet(**kw)  # global max-pool: any input of 9x9 or more
