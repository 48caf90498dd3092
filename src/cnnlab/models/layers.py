"""Building blocks shared by several model families."""
from __future__ import annotations

import torch
from torch import nn


def dropout_mask(x: torch.Tensor, p: float) -> torch.Tensor:
    """Inverted-dropout multiplier shaped, strided and typed like ``x``: 0 with probability ``p``,
    ``1 / (1 - p)`` otherwise.

    Why not ``torch.rand_like(x) < p``: the generator's cost is per element produced, so we draw
    one full-range int64 per four elements and read it as four independent uniform int16 values.
    ``p`` is thereby quantised to a multiple of 1/65536 (error below 8e-6). The multiplier is in
    ``x``'s dtype because a same-dtype multiply is the fastest way to apply it, forward and
    backward (``masked_fill_`` and ``where`` are 4-10x slower on CPU).
    """
    n = x.numel()
    raw = torch.empty((n + 3) // 4, dtype=torch.int64, device=x.device).random_(-2 ** 63, None)
    bits = raw.view(torch.int16)[:n].as_strided(x.shape, x.stride())  # same memory layout as x
    keep = bits >= round(p * 65536) - 32768
    return keep.to(x.dtype).mul_(1.0 / (1.0 - p))


class Dropout(nn.Module):
    """Inverted dropout (Srivastava et al. 2014, JMLR 15) with a fast CPU mask.

    Same semantics as ``nn.Dropout(p)``: in training, each element is zeroed with probability
    ``p`` and the survivors are scaled by ``1 / (1 - p)``; in eval mode it is the identity.
    Shape, dtype and memory format are kept. Why not ``nn.Dropout``: on CPU its ``bernoulli_``
    kernel runs single-threaded (about 82 M elements/s on the benchmark machine, 23-41% of a whole
    training step of the small MNIST CNN); :func:`dropout_mask` and one multiply forward and
    backward are several times faster.
    """

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        return x * dropout_mask(x, self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class FlattenNHWC(nn.Module):
    """Flatten ``(N, C, H, W)`` to ``(N, H * W * C)`` in channel-last order, as Keras' ``Flatten``.

    For a dense layer after a convolutional base the order is only a fixed permutation of its
    weights, but this one is a free view of a channels_last tensor, where ``nn.Flatten``'s
    (C, H, W) order forces a copy forward and a layout conversion of the gradient backward (10-20%
    of a training step of the seed MNIST CNNs). It also matches Keras' order, so a Keras model's
    dense weights map over without permutation. Used by the models translated from Keras seeds;
    torchvision-compatible models keep ``nn.Flatten`` for their published weights.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 2, 3, 1).flatten(1) if x.dim() == 4 else x.flatten(1)


def conv3x3(cin: int, cout: int, stride: int = 1, bias: bool = True) -> nn.Conv2d:
    """3x3 convolution with 'same' padding for stride 1 (Keras ``padding='same'``)."""
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=bias)
