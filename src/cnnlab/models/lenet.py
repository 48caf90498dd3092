"""LeNet-5 (LeCun, Bottou, Bengio & Haffner 1998, "Gradient-based learning applied to document
recognition", Proc. IEEE 86(11)).

``lenet5`` is the modern variant the seed (001 §3) trains: ReLU and average pooling, on 28x28
MNIST padded by 2 so that C1 sees the paper's 32x32. Its "3 conv layers, Dense 120, Dense 84" are
C1 (6@5x5), C3 (16@5x5) and C5 (120@5x5, which on a 5x5 map is a 120-unit dense layer), then F6
(84) and the 10-way output: 61,706 parameters.
"""
from __future__ import annotations

from collections import OrderedDict

from torch import nn

from .base import ImageClassifier, register_model


class LeNet5(ImageClassifier):
    """LeNet-5, ReLU / average-pool variant.

    Input ``(N, in_chans, 28, 28)`` (or 32x32 with ``pad=0``) float; output logits
    ``(N, num_classes)``.
    """

    def __init__(self, num_classes: int = 10, in_chans: int = 1, input_size=(28, 28)):
        super().__init__()
        h, w = input_size
        pad = (32 - h) // 2 if h < 32 else 0
        if (h + 2 * pad, w + 2 * pad) != (32, 32):
            raise ValueError(f"LeNet-5 takes 28x28 or 32x32 inputs, got {h}x{w}")
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
def lenet5(**kw) -> LeNet5:
    return LeNet5(**kw)
