"""Building blocks shared by several model families."""
from __future__ import annotations

import torch
from torch import nn


class Dropout(nn.Module):
    """Inverted dropout (Srivastava et al. 2014, JMLR 15) with a fast CPU mask.

    Same semantics as ``nn.Dropout(p)``: in training, each element is zeroed with probability
    ``p`` and the survivors are scaled by ``1 / (1 - p)``; in eval mode it is the identity.
    Why not ``nn.Dropout``: on CPU its ``bernoulli_`` kernel runs single-threaded (about 82 M
    elements/s on the benchmark machine, 23-41% of a whole training step of the small MNIST CNN);
    ``rand_like(x) >= p`` is multi-threaded and about 2.7x faster. Shape and dtype are kept.
    """

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.rand_like(x) >= self.p
        return x * keep * (1.0 / (1.0 - self.p))

    def extra_repr(self) -> str:
        return f"p={self.p}"


def conv3x3(cin: int, cout: int, stride: int = 1, bias: bool = True) -> nn.Conv2d:
    """3x3 convolution with 'same' padding for stride 1 (Keras ``padding='same'``)."""
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=bias)
