"""ZFNet (Zeiler & Fergus 2013, "Visualizing and understanding convolutional networks",
arXiv:1311.2901, ECCV 2014).

ZFNet is AlexNet re-tuned with the paper's deconvnet visualisations: the first layer's 11x11/4
filters left aliasing artefacts and dead filters, so layer 1 becomes 7x7 with stride 2, and layer
2 uses stride 2 too; layers 3-5 are one tower (384, 384, 256), not two. Five convs, three max-pools,
contrast normalisation across maps after the first two pools, two 4096-wide dense layers with
dropout 0.5 and the output layer.

``zfnet`` is the 224x224 net of the paper's Fig. 3 (maps 110 -> 55 -> 26 -> 13 -> 13 -> 13 -> 6;
62,357,608 parameters at 1000 classes). ``zfnet-cifar`` is the "ZFNet-like" CIFAR-10 net of seed
001 §5 ("five convolutional layers, three max pooling layers, and three fully connected layers"):
the same five convs and widths with small first filters (5x5, stride 1, the paper's direction of
travel taken to 32x32 images), 2x2 pools (32 -> 16 -> 8 -> 4) and 1024-wide dense layers; 8,974,730
parameters. The seed reports about 80.7% test top-1.

Contrast normalisation is ``LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2)`` (PyTorch's,
computed faster: see models/layers.py): AlexNet's (n=5, alpha=1e-4, beta=0.75, k=2), with alpha
multiplied by 5 because PyTorch divides it by the window size n while the paper does not.
"""
from __future__ import annotations

from collections import OrderedDict

from torch import nn

from .base import ImageClassifier, register_model
from .layers import Dropout, LocalResponseNorm


def _lrn() -> LocalResponseNorm:
    return LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0)


class ZFNet(ImageClassifier):
    """ZFNet at 224x224 (Fig. 3 of the paper), layers named by role (``conv1`` .. ``fc8``).

    Padding reproduces the figure's map sizes: conv1 7x7/2 pad 1 (224 -> 110), pool 3x3/2 pad 1
    (-> 55), conv2 5x5/2 (-> 26), pool (-> 13), conv3-5 3x3 pad 1, pool 3x3/2 (-> 6), so the first
    dense layer sees 6 * 6 * 256 = 9216 values. Input ``(N, in_chans, 224, 224)`` float; output
    logits ``(N, num_classes)``.
    """

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.5):
        super().__init__()
        self.features = nn.Sequential(OrderedDict(
            conv1=nn.Conv2d(in_chans, 96, 7, stride=2, padding=1), relu1=nn.ReLU(inplace=True),
            pool1=nn.MaxPool2d(3, stride=2, padding=1), norm1=_lrn(),
            conv2=nn.Conv2d(96, 256, 5, stride=2), relu2=nn.ReLU(inplace=True),
            pool2=nn.MaxPool2d(3, stride=2, padding=1), norm2=_lrn(),
            conv3=nn.Conv2d(256, 384, 3, padding=1), relu3=nn.ReLU(inplace=True),
            conv4=nn.Conv2d(384, 384, 3, padding=1), relu4=nn.ReLU(inplace=True),
            conv5=nn.Conv2d(384, 256, 3, padding=1), relu5=nn.ReLU(inplace=True),
            pool5=nn.MaxPool2d(3, stride=2)))
        self.classifier = nn.Sequential(OrderedDict(
            flatten=nn.Flatten(),
            fc6=nn.Linear(256 * 6 * 6, 4096), relu6=nn.ReLU(inplace=True), dropout6=Dropout(dropout),
            fc7=nn.Linear(4096, 4096), relu7=nn.ReLU(inplace=True), dropout7=Dropout(dropout),
            fc8=nn.Linear(4096, num_classes)))


class ZFNetCifar(ImageClassifier):
    """ZFNet-like CIFAR net (see the module docstring): 5 convs, 3 max-pools, 3 dense layers.

    Input ``(N, in_chans, 32, 32)`` float; output logits ``(N, num_classes)``.
    """

    def __init__(self, num_classes: int = 10, in_chans: int = 3, dropout: float = 0.5,
                 hidden: int = 1024):
        super().__init__()
        self.features = nn.Sequential(OrderedDict(
            conv1=nn.Conv2d(in_chans, 96, 5, padding=2), relu1=nn.ReLU(inplace=True),
            pool1=nn.MaxPool2d(2), norm1=_lrn(),                            # 32 -> 16
            conv2=nn.Conv2d(96, 256, 5, padding=2), relu2=nn.ReLU(inplace=True),
            pool2=nn.MaxPool2d(2), norm2=_lrn(),                            # 16 -> 8
            conv3=nn.Conv2d(256, 384, 3, padding=1), relu3=nn.ReLU(inplace=True),
            conv4=nn.Conv2d(384, 384, 3, padding=1), relu4=nn.ReLU(inplace=True),
            conv5=nn.Conv2d(384, 256, 3, padding=1), relu5=nn.ReLU(inplace=True),
            pool5=nn.MaxPool2d(2)))                                         # 8 -> 4
        self.classifier = nn.Sequential(OrderedDict(
            flatten=nn.Flatten(),
            fc6=nn.Linear(256 * 4 * 4, hidden), relu6=nn.ReLU(inplace=True), dropout6=Dropout(dropout),
            fc7=nn.Linear(hidden, hidden), relu7=nn.ReLU(inplace=True), dropout7=Dropout(dropout),
            fc8=nn.Linear(hidden, num_classes)))


@register_model("zfnet", input_size=(3, 224, 224), num_params=62_357_608,
                first_conv="features.conv1", classifier="classifier.fc8",
                paper="Zeiler & Fergus 2013, 'Visualizing and understanding convolutional "
                      "networks', arXiv:1311.2901 (ECCV 2014)")
def zfnet(**kw) -> ZFNet:
    """Registered as ``zfnet``: float (N, 3, 224, 224) -> logits float (N, num_classes).
    Source: Zeiler & Fergus 2013, 'Visualizing and understanding convolutional networks',
    arXiv:1311.2901 (ECCV 2014)."""
    return ZFNet(**kw)


@register_model("zfnet-cifar", input_size=(3, 32, 32), num_params=8_974_730,
                first_conv="features.conv1", classifier="classifier.fc8",
                paper="Zeiler & Fergus 2013, arXiv:1311.2901; ZFNet-like 32x32 net of seed 001 §5")
def zfnet_cifar(**kw) -> ZFNetCifar:
    """Registered as ``zfnet-cifar``: float (N, 3, 32, 32) -> logits float (N, num_classes).
    Source: Zeiler & Fergus 2013, arXiv:1311.2901; ZFNet-like 32x32 net of seed 001 §5."""
    return ZFNetCifar(**kw)
