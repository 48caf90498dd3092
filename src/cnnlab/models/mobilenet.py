"""MobileNetV2 (Sandler, Howard, Zhu, Zhmoginov & Chen 2018, "MobileNetV2: Inverted residuals and
linear bottlenecks", arXiv:1801.04381, CVPR 2018).

The building block inverts the usual bottleneck: a 1x1 conv expands the channels t-fold, a 3x3
depthwise conv filters each channel, and a 1x1 conv projects back down *without* a ReLU (a
ReLU on the narrow projection destroys information, the paper's "linear bottleneck"); the
residual joins the narrow ends. The body is the paper's Table 2, one row per stage. State_dict
keys and shapes are torchvision's (``features.<i>``, ``classifier.1``); 3,504,872 parameters at
1000 classes, width 1.0.
"""
from __future__ import annotations

import torch
from torch import nn

from .base import ImageClassifier, register_model
from .layers import Dropout, torchvision_init

# Table 2: expansion t, output channels c, repeats n, stride s of the first repeat
SETTINGS = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]


def make_divisible(v: float, divisor: int = 8) -> int:
    """Round a width to a multiple of ``divisor`` (hardware-friendly), never below 90% of ``v``."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


class ConvBNReLU6(nn.Sequential):
    """conv (no bias) -> BN -> ReLU6; keys ``0.weight``, ``1.*`` like torchvision's
    ``Conv2dNormActivation``. ``groups=cin`` makes it depthwise."""

    def __init__(self, cin: int, cout: int, kernel_size: int = 3, stride: int = 1, groups: int = 1):
        super().__init__(
            nn.Conv2d(cin, cout, kernel_size, stride, (kernel_size - 1) // 2, groups=groups,
                      bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    """Expand (1x1, unless t = 1) -> depthwise 3x3 (stride) -> linear 1x1 projection + BN, with
    a residual when stride is 1 and the channels match. ``(N, cin, H, W) -> (N, cout, H/s, W/s)``."""

    def __init__(self, cin: int, cout: int, stride: int, expand_ratio: int):
        super().__init__()
        hidden = int(round(cin * expand_ratio))
        self.use_res_connect = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNReLU6(cin, hidden, kernel_size=1))
        layers += [ConvBNReLU6(hidden, hidden, stride=stride, groups=hidden),
                   nn.Conv2d(hidden, cout, 1, bias=False),  # linear bottleneck: no ReLU
                   nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Float ``(N, cin, H, W)`` -> ``(N, cout, H', W')`` (``H / stride``), plus ``x`` when stride is
        1 and ``cin == cout``."""
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(ImageClassifier):
    """MobileNetV2 (Sandler et al. 2018, 'MobileNetV2: Inverted residuals and linear bottlenecks',
    arXiv:1801.04381): 3x3/2 conv (32) -> 17 inverted residual blocks (Table 2) -> 1x1 conv
    (1280) -> global average pool -> Dropout 0.2 -> Linear.

    Input ``(N, in_chans, H, W)`` float, 224x224 for the published weights; any size from 32x32
    (the total stride) up is accepted; output logits ``(N, num_classes)``.
    """

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, width_mult: float = 1.0,
                 dropout: float = 0.2):
        super().__init__()
        cin = make_divisible(32 * width_mult)
        last = make_divisible(1280 * max(1.0, width_mult))
        layers: list[nn.Module] = [ConvBNReLU6(in_chans, cin, stride=2)]
        for t, c, n, s in SETTINGS:
            cout = make_divisible(c * width_mult)
            for i in range(n):
                layers.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        layers.append(ConvBNReLU6(cin, last, kernel_size=1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(Dropout(dropout), nn.Linear(last, num_classes))
        torchvision_init(self)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Feature maps float ``(N, 1280, H', W')`` (at width 1.0) -> global average pool -> Dropout ->
        Linear -> logits float ``(N, num_classes)``."""
        return self.classifier(torch.flatten(nn.functional.adaptive_avg_pool2d(features, 1), 1))


@register_model("mobilenet_v2", input_size=(3, 224, 224), num_params=3_504_872,
                first_conv="features.0.0", classifier="classifier.1", fixed_size=False, min_size=32,
                paper="Sandler et al. 2018, 'MobileNetV2: Inverted residuals and linear "
                      "bottlenecks', arXiv:1801.04381 (CVPR 2018); torchvision layout")
def mobilenet_v2(input_size=None, **kw) -> MobileNetV2:
    """Registered as ``mobilenet_v2``: float (N, 3, 224, 224) -> logits float (N, num_classes).
    Source: Sandler et al. 2018, 'MobileNetV2: Inverted residuals and linear bottlenecks',
    arXiv:1801.04381 (CVPR 2018); torchvision layout."""
    return MobileNetV2(**kw)  # global pool: any size >= 32
