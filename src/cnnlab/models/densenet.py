"""DenseNet-121 (Huang, Liu, van der Maaten & Weinberger 2017, "Densely connected convolutional
networks", arXiv:1608.06993, CVPR 2017).

Inside a dense block every layer receives the concatenation of all earlier layers' maps and adds
``growth_rate`` (32) new ones, so features are reused instead of re-learned; each layer is
BN-ReLU-1x1 conv (to 4 x 32 channels, the "bottleneck") - BN-ReLU-3x3 conv. Transitions between
blocks halve the channels (compression 0.5) and the map (2x2 average pool). DenseNet-121: blocks
of 6, 12, 24, 16 layers (Table 1, DenseNet-BC). State_dict keys and shapes are torchvision's
(``features.denseblock1.denselayer1.norm1.weight`` ...); 7,978,856 parameters at 1000 classes.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from .base import ImageClassifier, register_model
from .layers import torchvision_init


class DenseLayer(nn.Module):
    """BN-ReLU-1x1 conv (bn_size * growth) - BN-ReLU-3x3 conv (growth).
    A list of ``(N, C_i, H, W)`` maps in -> ``(N, growth, H, W)`` new maps out."""

    def __init__(self, cin: int, growth_rate: int, bn_size: int, drop_rate: float):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(cin)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(cin, bn_size * growth_rate, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bn_size * growth_rate, growth_rate, 3, padding=1, bias=False)
        self.drop_rate = drop_rate

    def forward(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        """A list of float ``(N, C_i, H, W)`` maps, concatenated along channels -> the new maps
        float ``(N, growth_rate, H, W)`` (dropout ``drop_rate`` in training)."""
        x = torch.cat(inputs, 1)
        x = self.conv1(self.relu1(self.norm1(x)))
        x = self.conv2(self.relu2(self.norm2(x)))
        return F.dropout(x, self.drop_rate, self.training) if self.drop_rate else x


class DenseBlock(nn.ModuleDict):
    """``num_layers`` dense layers, each seeing all earlier maps; ``(N, C, H, W) ->
    (N, C + num_layers * growth, H, W)``. Keys ``denselayer1`` .. as torchvision."""

    def __init__(self, num_layers: int, cin: int, growth_rate: int, bn_size: int, drop_rate: float):
        super().__init__()
        for i in range(num_layers):
            self[f"denselayer{i + 1}"] = DenseLayer(cin + i * growth_rate, growth_rate, bn_size,
                                                    drop_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Float ``(N, C, H, W)`` -> ``(N, C + num_layers * growth_rate, H, W)``: the input and every
        layer's new maps, concatenated along channels."""
        maps = [x]
        for layer in self.values():
            maps.append(layer(maps))
        return torch.cat(maps, 1)


class Transition(nn.Sequential):
    """BN-ReLU-1x1 conv (compress channels) - 2x2 average pool (halve the map)."""

    def __init__(self, cin: int, cout: int):
        super().__init__(OrderedDict(
            norm=nn.BatchNorm2d(cin), relu=nn.ReLU(inplace=True),
            conv=nn.Conv2d(cin, cout, 1, bias=False), pool=nn.AvgPool2d(2, stride=2)))


class DenseNet(ImageClassifier):
    """DenseNet-BC for ImageNet (Huang, Liu, van der Maaten & Weinberger 2017, 'Densely connected
    convolutional networks', arXiv:1608.06993): 7x7/2 conv (64) -> BN-ReLU -> 3x3/2 max-pool ->
    dense blocks with transitions -> BN (``norm5``) -> ReLU (``relu5``) -> global average pool -> Linear.

    Input ``(N, in_chans, H, W)`` float, 224x224 for the published weights; any size from 32x32
    (the total stride) up is accepted: the three 2x2 transitions need at least 8x8 maps after
    the 4x stem; output logits ``(N, num_classes)``.
    """

    def __init__(self, growth_rate: int = 32, block_config=(6, 12, 24, 16),
                 num_init_features: int = 64, bn_size: int = 4, drop_rate: float = 0.0,
                 num_classes: int = 1000, in_chans: int = 3):
        super().__init__()
        layers = OrderedDict(
            conv0=nn.Conv2d(in_chans, num_init_features, 7, stride=2, padding=3, bias=False),
            norm0=nn.BatchNorm2d(num_init_features), relu0=nn.ReLU(inplace=True),
            pool0=nn.MaxPool2d(3, stride=2, padding=1))
        c = num_init_features
        for i, n in enumerate(block_config, start=1):
            layers[f"denseblock{i}"] = DenseBlock(n, c, growth_rate, bn_size, drop_rate)
            c += n * growth_rate
            if i != len(block_config):
                layers[f"transition{i}"] = Transition(c, c // 2)
                c //= 2
        # torchvision applies this ReLU in forward; a module (no parameters: the state_dict is the
        # same) makes the features end activated, the map Grad-CAM's default layer should be
        layers["norm5"], layers["relu5"] = nn.BatchNorm2d(c), nn.ReLU(inplace=True)
        self.features = nn.Sequential(layers)
        self.classifier = nn.Linear(c, num_classes)
        torchvision_init(self, conv_mode="fan_in", linear_std=None)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Feature maps float ``(N, C, H', W')`` (``relu5``'s output) -> global average pool ->
        logits float ``(N, num_classes)``."""
        x = F.adaptive_avg_pool2d(features, 1)
        return self.classifier(torch.flatten(x, 1))


@register_model("densenet121", input_size=(3, 224, 224), num_params=7_978_856,
                first_conv="features.conv0", classifier="classifier", fixed_size=False, min_size=32,
                paper="Huang, Liu, van der Maaten & Weinberger 2017, 'Densely connected "
                      "convolutional networks', arXiv:1608.06993 (CVPR 2017); torchvision layout")
def densenet121(input_size=None, **kw) -> DenseNet:
    """Registered as ``densenet121``: float (N, 3, 224, 224) -> logits float (N, num_classes).
    Source: Huang, Liu, van der Maaten & Weinberger 2017, 'Densely connected convolutional
    networks', arXiv:1608.06993 (CVPR 2017); torchvision layout."""
    return DenseNet(32, (6, 12, 24, 16), 64, **kw)
