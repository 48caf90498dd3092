"""AlexNet (Krizhevsky, Sutskever & Hinton 2012, "ImageNet classification with deep convolutional
neural networks", NeurIPS 25).

``alexnet`` is torchvision's layout, so its published ImageNet weights load as they are (same
state_dict keys and shapes; 61,100,840 parameters at 1000 classes). That layout is a one-tower
AlexNet with 64-192-384-256-256 filters (cuda-convnet2's one-GPU configuration; Krizhevsky 2014,
"One weird trick for parallelizing convolutional neural networks", arXiv:1404.5997, gives
64-192-384-384-256) instead of the paper's 96-256-384-384-256 split over two GPUs, and no local
response normalisation; five convs, three overlapping 3x3/2 max-pools and three dense layers, as in
the paper. Dropout 0.5 is where torchvision puts it, on the inputs of fc6 and fc7; the paper drops
the outputs of fc6 and fc7 (the inputs of fc7 and fc8).

``alexnet-cifar`` is the 32x32 adaptation that seed 001 §4 trains on CIFAR-10 (the seed gives no
layers): five convs of the same widths (conv2 3x3 instead of 5x5, on an 8x8 map), three max-pools
and the same two 4096-wide dense layers with dropout on their inputs, with the 11x11/4 stem (which
would leave nothing of a 32x32 image) replaced by a 3x3/2 conv and the pools by 2x2/2, so the maps
go 32 -> 16 -> 8 -> 4 -> 2. 23,272,266 parameters, 90%
of them in the dense layers: the seed reports train 91.07% vs validation 53.24% (it overfits).
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from .base import ImageClassifier, register_model
from .layers import Dropout


class AlexNet(ImageClassifier):
    """AlexNet, torchvision layout (keys ``features.{0,3,6,8,10}``, ``classifier.{1,4,6}``).
    Source: Krizhevsky, Sutskever & Hinton 2012, 'ImageNet classification with deep convolutional
    neural networks', NeurIPS 25; the layout of torchvision (Krizhevsky 2014, arXiv:1404.5997).

    The adaptive 6x6 average pool before the dense layers (torchvision's) makes any input of at
    least 63x63 work; at 224x224 it is the identity on the 6x6 maps. Input ``(N, in_chans, H, W)``
    float, 224x224 for the published weights; output logits ``(N, num_classes)``.
    """

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.5):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, 64, kernel_size=11, stride=4, padding=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2))
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            Dropout(dropout), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(inplace=True),
            Dropout(dropout), nn.Linear(4096, 4096), nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Feature maps float ``(N, 256, H', W')`` -> 6x6 adaptive average pool -> flatten ->
        dense layers -> logits float ``(N, num_classes)``."""
        return self.classifier(torch.flatten(self.avgpool(features), 1))


class AlexNetCifar(ImageClassifier):
    """AlexNet adapted to 32x32 images (see the module docstring), layers named by role.

    Input ``(N, in_chans, 32, 32)`` float; output logits ``(N, num_classes)``.
    """

    def __init__(self, num_classes: int = 10, in_chans: int = 3, dropout: float = 0.5):
        super().__init__()
        self.features = nn.Sequential(OrderedDict(
            conv1=nn.Conv2d(in_chans, 64, 3, stride=2, padding=1), relu1=nn.ReLU(inplace=True),
            pool1=nn.MaxPool2d(2),                                          # 16 -> 8
            conv2=nn.Conv2d(64, 192, 3, padding=1), relu2=nn.ReLU(inplace=True),
            pool2=nn.MaxPool2d(2),                                          # 8 -> 4
            conv3=nn.Conv2d(192, 384, 3, padding=1), relu3=nn.ReLU(inplace=True),
            conv4=nn.Conv2d(384, 256, 3, padding=1), relu4=nn.ReLU(inplace=True),
            conv5=nn.Conv2d(256, 256, 3, padding=1), relu5=nn.ReLU(inplace=True),
            pool5=nn.MaxPool2d(2)))                                         # 4 -> 2
        self.classifier = nn.Sequential(OrderedDict(
            flatten=nn.Flatten(),
            dropout6=Dropout(dropout), fc6=nn.Linear(256 * 2 * 2, 4096), relu6=nn.ReLU(inplace=True),
            dropout7=Dropout(dropout), fc7=nn.Linear(4096, 4096), relu7=nn.ReLU(inplace=True),
            fc8=nn.Linear(4096, num_classes)))


@register_model("alexnet", input_size=(3, 224, 224), num_params=61_100_840,
                first_conv="features.0", classifier="classifier.6", fixed_size=False, min_size=63,
                paper="Krizhevsky, Sutskever & Hinton 2012, NeurIPS 25; torchvision layout "
                      "(Krizhevsky 2014, arXiv:1404.5997)")
def alexnet(input_size=None, **kw) -> AlexNet:
    """Registered as ``alexnet``: float (N, 3, 224, 224) -> logits float (N, num_classes).
    Source: Krizhevsky, Sutskever & Hinton 2012, NeurIPS 25; torchvision layout (Krizhevsky 2014,
    arXiv:1404.5997)."""
    return AlexNet(**kw)  # any size >= 63: the adaptive pool feeds the dense layers


@register_model("alexnet-cifar", input_size=(3, 32, 32), num_params=23_272_266,
                first_conv="features.conv1", classifier="classifier.fc8",
                paper="Krizhevsky et al. 2012, NeurIPS 25; 32x32 adaptation for seed 001 §4")
def alexnet_cifar(**kw) -> AlexNetCifar:
    """Registered as ``alexnet-cifar``: float (N, 3, 32, 32) -> logits float (N, num_classes).
    Source: Krizhevsky et al. 2012, NeurIPS 25; 32x32 adaptation for seed 001 §4."""
    return AlexNetCifar(**kw)
