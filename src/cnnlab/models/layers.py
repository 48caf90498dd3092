"""Building blocks shared by several model families."""
from __future__ import annotations

import torch
from torch import nn


class _DropoutFn(torch.autograd.Function):
    """y = x * scale with the dropped elements zeroed; the backward pass applies the same mask."""

    @staticmethod
    def forward(ctx, x, drop, scale):
        ctx.save_for_backward(drop)
        ctx.scale = scale
        return x.mul(scale).masked_fill_(drop, 0)

    @staticmethod
    def backward(ctx, grad):
        (drop,) = ctx.saved_tensors
        return grad.mul(ctx.scale).masked_fill_(drop, 0), None, None


def dropout_mask(x: torch.Tensor, p: float) -> torch.Tensor:
    """Bool mask shaped and strided like ``x``, True (drop) with probability ``p``.

    Why not ``torch.rand_like(x) < p``: the generator's cost is per element produced, so we draw
    one full-range int64 per four elements and read it as four independent uniform int16 values.
    ``p`` is thereby quantised to a multiple of 1/65536 (error below 8e-6).
    """
    n = x.numel()
    raw = torch.empty((n + 3) // 4, dtype=torch.int64, device=x.device).random_(-2 ** 63, None)
    bits = raw.view(torch.int16)[:n].as_strided(x.shape, x.stride())  # same memory layout as x
    return bits < round(p * 65536) - 32768


class Dropout(nn.Module):
    """Inverted dropout (Srivastava et al. 2014, JMLR 15) with a fast CPU mask.

    Same semantics as ``nn.Dropout(p)``: in training, each element is zeroed with probability
    ``p`` and the survivors are scaled by ``1 / (1 - p)``; in eval mode it is the identity.
    Shape, dtype and memory format are kept. Why not ``nn.Dropout``: on CPU its ``bernoulli_``
    kernel runs single-threaded (about 82 M elements/s on the benchmark machine, 23-41% of a whole
    training step of the small MNIST CNN); :func:`dropout_mask` plus one fused multiply-and-fill
    forward and backward is about 3x faster and saves only a 1-byte mask for the backward pass.
    """

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        return _DropoutFn.apply(x, dropout_mask(x, self.p), 1.0 / (1.0 - self.p))

    def extra_repr(self) -> str:
        return f"p={self.p}"


def conv3x3(cin: int, cout: int, stride: int = 1, bias: bool = True) -> nn.Conv2d:
    """3x3 convolution with 'same' padding for stride 1 (Keras ``padding='same'``)."""
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=bias)
