"""LeNet-5 (LeCun, Bottou, Bengio & Haffner 1998, "Gradient-based learning applied to document
recognition", Proc. IEEE 86(11)).

``lenet5`` is the modern variant the seed (001 §3) trains: ReLU and average pooling, on 28x28
MNIST padded by 2 so that C1 sees the paper's 32x32. Its "3 conv layers, Dense 120, Dense 84" are
C1 (6@5x5), C3 (16@5x5) and C5 (120@5x5, which on a 5x5 map is a 120-unit dense layer), then F6
(84) and the 10-way output: 61,706 parameters.

``lenet5-original`` is the network as published: scaled tanh, trainable subsampling, C3's partial
connection table and the Euclidean RBF output (see :class:`LeNet5Original`).
"""
from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from .base import ImageClassifier, register_model


class LeNet5(ImageClassifier):
    """LeNet-5, ReLU / average-pool variant.

    Input ``(N, in_chans, 28, 28)`` float (any square input up to 32x32 with an even side: the
    first convolution zero-pads it to LeNet-5's 32x32, by 2 for MNIST's 28x28); output logits
    ``(N, num_classes)``.

    Raises:
        ValueError: an input size that does not pad to 32x32.
    """

    def __init__(self, num_classes: int = 10, in_chans: int = 1, input_size=(28, 28)):
        super().__init__()
        h, w = input_size
        pad = (32 - h) // 2 if h < 32 else 0
        if (h + 2 * pad, w + 2 * pad) != (32, 32):
            raise ValueError(f"LeNet-5 takes square inputs up to 32x32 with an even side (padded to "
                             f"32x32 in c1), got {h}x{w}")
        self.features = nn.Sequential(OrderedDict(
            c1=nn.Conv2d(in_chans, 6, 5, padding=pad), relu1=nn.ReLU(inplace=True),
            s2=nn.AvgPool2d(2),
            c3=nn.Conv2d(6, 16, 5), relu3=nn.ReLU(inplace=True),
            s4=nn.AvgPool2d(2),
            c5=nn.Conv2d(16, 120, 5), relu5=nn.ReLU(inplace=True)))
        self.classifier = nn.Sequential(OrderedDict(
            flatten=nn.Flatten(), f6=nn.Linear(120, 84), relu6=nn.ReLU(inplace=True),
            output=nn.Linear(84, num_classes)))


@register_model("lenet5", input_size=(1, 28, 28), num_params=61_706, first_conv="features.c1",
                classifier="classifier.output",
                paper="LeCun et al. 1998, Proc. IEEE 86(11); ReLU/avg-pool variant of seed 001 §3")
def lenet5(input_size=(28, 28), **kw) -> LeNet5:
    """Registered as ``lenet5``: float (N, 1, 28, 28) -> logits float (N, num_classes).
    Source: LeCun et al. 1998, Proc. IEEE 86(11); ReLU/avg-pool variant of seed 001 §3."""
    return LeNet5(input_size=input_size, **kw)


# --- LeNet-5 as published --------------------------------------------------------------------

# Table I of the paper: which of S2's 6 maps each of C3's 16 maps reads. Maps 0-5 read 3
# neighbouring maps, 6-11 four neighbouring maps, 12-14 four non-neighbouring maps, 15 all six.
# Why not all 96 connections: "to keep the number of connections within reasonable bounds" and to
# "force a break of symmetry in the network", so different C3 maps extract different features.
C3_TABLE = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (4, 5, 0), (5, 0, 1),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (3, 4, 5, 0), (4, 5, 0, 1), (5, 0, 1, 2),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)


class ScaledTanh(nn.Module):
    """The paper's squashing function ``f(a) = A tanh(S a)`` with A = 1.7159, S = 2/3 (Appendix
    A): chosen so that f(1) = 1 and f(-1) = -1, i.e. a gain of about 1 in normal operation, and
    |f''| peaks at ±1, which the paper says improves convergence late in training."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``1.7159 * tanh(2 x / 3)`` elementwise: any shape, same shape and dtype out."""
        return 1.7159 * torch.tanh(x * (2.0 / 3.0))


class Subsampling(nn.Module):
    """LeNet's trainable subsampling (S2, S4): each 2x2 window's four inputs are added, multiplied
    by a trainable coefficient and shifted by a trainable bias, one pair per feature map (the
    squashing follows as a separate layer). ``(N, C, H, W) -> (N, C, H/2, W/2)``; 2 * C params."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Float ``(N, C, H, W)`` -> ``(N, C, H // 2, W // 2)``: each 2x2 window's sum times the
        map's ``weight`` plus its ``bias``."""
        s = 4.0 * F.avg_pool2d(x, 2)  # the sum of the 2x2 window
        return s * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)

    def extra_repr(self) -> str:
        """The layer's settings, shown by ``print(model)``."""
        return f"channels={self.weight.numel()}"


class PartialConv2d(nn.Module):
    """A 5x5 convolution where output map ``j`` sees only the input maps ``table[j]`` (C3).

    Only the connected kernels are parameters: ``weight`` is ``(connections, k, k)`` (60 x 5 x 5
    for Table I) and ``bias`` ``(out_channels,)``, so the count is the paper's 1,516, not the
    2,416 of a full 6->16 conv. The forward pass scatters them into a dense kernel (zeros where
    there is no connection) and runs one ``conv2d``: one kernel call instead of 16.
    """

    def __init__(self, in_channels: int, table, kernel_size: int = 5):
        super().__init__()
        self.in_channels, self.out_channels, self.kernel_size = in_channels, len(table), kernel_size
        self.table = tuple(tuple(inputs) for inputs in table)
        mask = [[i in inputs for i in range(in_channels)] for inputs in self.table]
        self.register_buffer("mask", torch.tensor(mask), persistent=False)  # fixed by the table
        connections = sum(len(inputs) for inputs in self.table)
        self.weight = nn.Parameter(torch.empty(connections, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(len(table)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Float ``(N, in_channels, H, W)`` -> ``(N, out_channels, H - k + 1, W - k + 1)`` (valid conv,
        each output map reading only its ``table`` entries)."""
        k = self.kernel_size
        dense = self.weight.new_zeros(self.out_channels, self.in_channels, k, k)
        dense[self.mask] = self.weight  # row-major over (out, in): the order of `weight`
        return F.conv2d(x, dense, self.bias)

    def fan_in(self) -> list[int]:
        """Inputs of each output map's units: ``len(table[j]) * k * k``."""
        return [len(inputs) * self.kernel_size ** 2 for inputs in self.table]

    def extra_repr(self) -> str:
        """The layer's settings, shown by ``print(model)``."""
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"connections={self.weight.shape[0]}")


class EuclideanRBF(nn.Module):
    """LeNet-5's output layer: one radial basis function unit per class,
    ``y_i = sum_j (x_j - w_ij)^2``, the squared distance from F6's 84-vector to class i's
    prototype. Returns ``-y`` so that larger is better and the result is usable as logits
    (argmax = nearest prototype; softmax cross-entropy on ``-y``).

    The paper draws the prototypes by hand as stylised 7x12 bitmaps of the characters, ±1 each,
    and keeps them fixed. MNIST digits have no such bitmaps here; the paper notes they "could
    have been chosen at random with equal probabilities for +1 and -1", which is what this does.
    ``weight`` ``(num_classes, in_features)`` is a parameter with ``requires_grad=False``: fixed
    as in the paper, saved with the model, and trainable by ``requires_grad_(True)`` if wanted.
    """

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        signs = torch.randint(0, 2, (out_features, in_features)).float() * 2 - 1
        self.weight = nn.Parameter(signs, requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Float ``(N, in_features)`` -> ``(N, out_features)``: minus the squared Euclidean distance
        to each class prototype (usable as logits)."""
        # (x - w)^2 summed = |x|^2 - 2 x.w + |w|^2, as a matmul (no (N, classes, 84) temporary)
        return -((x * x).sum(1, keepdim=True) - 2 * x @ self.weight.t()
                 + (self.weight * self.weight).sum(1))

    def extra_repr(self) -> str:
        """The layer's settings, shown by ``print(model)``."""
        return f"in_features={self.in_features}, out_features={self.out_features}"


class LeNet5Original(ImageClassifier):
    """LeNet-5 as in LeCun et al. 1998 (Proc. IEEE 86(11), Fig. 2, Section II-B, Appendix A)::

        C1 6@5x5 (28x28) -> S2 trainable 2x2 subsampling (14x14) -> C3 16@5x5 partially connected
        by Table I (10x10) -> S4 subsampling (5x5) -> C5 120@5x5 (1x1) -> F6 84 -> output

    every layer up to F6 followed by the scaled tanh ``1.7159 tanh(2a/3)``. Trainable parameters:
    156 + 12 + 1,516 + 32 + 48,120 + 10,164 = 60,000, the paper's count. The output is either
    the paper's Euclidean RBF layer (``output="rbf"``, the default: 10 x 84 fixed ±1 prototypes,
    returned as negative squared distances, see :class:`EuclideanRBF`; 60,840 parameters in all,
    840 of them frozen) or a plain ``Linear(84, num_classes)`` (``output="linear"``; 60,850),
    which trains more easily with cross-entropy. Training differs from the paper's either way:
    the paper minimises the RBF penalty of the correct class plus a MAP term, cnnlab uses
    softmax cross-entropy on the logits.

    Weights start uniform in ±2.4 / fan-in (Appendix A). Inputs: 32x32 as in the paper, or 28x28
    MNIST digits, padded by 2 inside C1 (the paper pads the 28x28 digits to 32x32 too).
    Input ``(N, in_chans, H, W)`` float; output logits ``(N, num_classes)``.

    Raises:
        ValueError: an ``input_size`` that does not pad to 32x32, or ``output`` not ``"rbf"`` or
            ``"linear"``.
    """

    def __init__(self, num_classes: int = 10, in_chans: int = 1, input_size=(28, 28),
                 output: str = "rbf"):
        super().__init__()
        h, w = input_size
        pad = (32 - h) // 2 if h < 32 else 0
        if (h + 2 * pad, w + 2 * pad) != (32, 32):
            raise ValueError(f"LeNet-5 takes square inputs up to 32x32 with an even side (padded to "
                             f"32x32 in c1), got {h}x{w}")
        if output not in ("rbf", "linear"):
            raise ValueError(f"output must be 'rbf' or 'linear', got {output!r}")
        self.features = nn.Sequential(OrderedDict(
            c1=nn.Conv2d(in_chans, 6, 5, padding=pad), act1=ScaledTanh(),
            s2=Subsampling(6), act2=ScaledTanh(),
            c3=PartialConv2d(6, C3_TABLE, 5), act3=ScaledTanh(),
            s4=Subsampling(16), act4=ScaledTanh(),
            c5=nn.Conv2d(16, 120, 5), act5=ScaledTanh()))
        head = EuclideanRBF(84, num_classes) if output == "rbf" else nn.Linear(84, num_classes)
        self.classifier = nn.Sequential(OrderedDict(
            flatten=nn.Flatten(), f6=nn.Linear(120, 84), act6=ScaledTanh(), output=head))
        self._init_lecun98()

    @torch.no_grad()
    def _init_lecun98(self) -> None:
        # Appendix A: "weights were initialized with random values using a uniform distribution
        # between -2.4/F_i and 2.4/F_i where F_i is the number of inputs (fan-in) of the unit"
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                bound = 2.4 / (m.weight[0].numel())
                nn.init.uniform_(m.weight, -bound, bound)
                nn.init.uniform_(m.bias, -bound, bound)
            elif isinstance(m, PartialConv2d):  # the fan-in differs between C3's maps
                fan_in = m.fan_in()
                per_kernel = [2.4 / f for f, inputs in zip(fan_in, m.table) for _ in inputs]
                m.weight.uniform_(-1, 1).mul_(torch.tensor(per_kernel).view(-1, 1, 1))
                m.bias.uniform_(-1, 1).mul_(torch.tensor([2.4 / f for f in fan_in]))
            elif isinstance(m, Subsampling):  # fan-in 4: the window's four inputs
                nn.init.uniform_(m.weight, -0.6, 0.6)
                nn.init.uniform_(m.bias, -0.6, 0.6)

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the output layer (RBF prototypes or Linear) by a fresh one of the same kind."""
        old = self.classifier.output
        if isinstance(old, EuclideanRBF):
            p = old.weight
            self.classifier.output = EuclideanRBF(old.in_features, num_classes).to(p.device, p.dtype)
        else:
            super().reset_classifier(num_classes)


@register_model("lenet5-original", input_size=(1, 28, 28), num_params=60_840,
                first_conv="features.c1", classifier="classifier.output",
                paper="LeCun, Bottou, Bengio & Haffner 1998, 'Gradient-based learning applied to "
                      "document recognition', Proc. IEEE 86(11); 60,000 trainable + 840 fixed RBF")
def lenet5_original(input_size=(28, 28), output: str = "rbf", **kw) -> LeNet5Original:
    """Registered as ``lenet5-original``: float (N, 1, 28, 28) -> logits float (N, num_classes).
    Source: LeCun, Bottou, Bengio & Haffner 1998, 'Gradient-based learning applied to document
    recognition', Proc. IEEE 86(11); 60,000 trainable + 840 fixed RBF."""
    return LeNet5Original(input_size=input_size, output=output, **kw)
