"""The small CNNs of the seed notebooks (``../shared/SEEDS.md``), written out layer by layer.

Each class mirrors the Keras model its seed printed: same layers, same parameter counts, Keras
'same' padding as ``padding=1`` for 3x3 kernels. Layer names follow their role (``conv1``,
``fc1``) so the summary table reads like the seed's.
"""
from __future__ import annotations

from collections import OrderedDict

from torch import nn

from .base import ImageClassifier, register_model
from .layers import Dropout, conv3x3


class MnistCnnSmall(ImageClassifier):
    """Seed 003's MNIST CNN: Conv32 -> Conv64 -> MaxPool -> Dropout -> Flatten -> Dropout ->
    Dense128 -> Dense10. 1,625,866 parameters at 28x28x1, as the seed's Keras table.

    Input ``(N, in_chans, H, W)`` float; output logits ``(N, num_classes)``.
    Source: seed 003 (carl-221b/deeplearning), itself the keras-io ``mnist_convnet`` pattern.
    """

    def __init__(self, num_classes: int = 10, in_chans: int = 1, input_size=(28, 28),
                 dropout1: float = 0.25, dropout2: float = 0.5):
        super().__init__()
        h, w = input_size
        self.features = nn.Sequential(OrderedDict(
            conv1=conv3x3(in_chans, 32), relu1=nn.ReLU(inplace=True),
            conv2=conv3x3(32, 64), relu2=nn.ReLU(inplace=True),
            pool=nn.MaxPool2d(2), dropout=Dropout(dropout1)))
        self.classifier = nn.Sequential(OrderedDict(
            flatten=nn.Flatten(), dropout=Dropout(dropout2),
            fc1=nn.Linear(64 * (h // 2) * (w // 2), 128), relu=nn.ReLU(inplace=True),
            fc2=nn.Linear(128, num_classes)))


class MnistCnnWide(ImageClassifier):
    """Seed 000 §1.2 "My_First_CNN": [Conv128 x2 -> MaxPool] -> [Conv64 x2 -> MaxPool] ->
    Flatten -> Dense128 -> Dense10, ReLU after each conv and the hidden dense layer.
    662,410 parameters at 28x28x1.

    Input ``(N, in_chans, H, W)`` float; output logits ``(N, num_classes)``.
    """

    def __init__(self, num_classes: int = 10, in_chans: int = 1, input_size=(28, 28)):
        super().__init__()
        h, w = input_size
        self.features = nn.Sequential(OrderedDict(
            conv1=conv3x3(in_chans, 128), relu1=nn.ReLU(inplace=True),
            conv2=conv3x3(128, 128), relu2=nn.ReLU(inplace=True), pool1=nn.MaxPool2d(2),
            conv3=conv3x3(128, 64), relu3=nn.ReLU(inplace=True),
            conv4=conv3x3(64, 64), relu4=nn.ReLU(inplace=True), pool2=nn.MaxPool2d(2)))
        self.classifier = nn.Sequential(OrderedDict(
            flatten=nn.Flatten(), fc1=nn.Linear(64 * (h // 4) * (w // 4), 128),
            relu=nn.ReLU(inplace=True), fc2=nn.Linear(128, num_classes)))


@register_model("mnist-cnn-small", input_size=(1, 28, 28), num_params=1_625_866,
                first_conv="features.conv1", classifier="classifier.fc2",
                paper="seed 003: Keras MNIST CNN, 99.2% test top-1 after 10 epochs")
def mnist_cnn_small(**kw) -> MnistCnnSmall:
    return MnistCnnSmall(**kw)


@register_model("mnist-cnn-wide", input_size=(1, 28, 28), num_params=662_410,
                first_conv="features.conv1", classifier="classifier.fc2",
                paper="seed 000 §1.2 'My_First_CNN': 98.97% test top-1")
def mnist_cnn_wide(**kw) -> MnistCnnWide:
    return MnistCnnWide(**kw)
