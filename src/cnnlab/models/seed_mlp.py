"""The seeds' non-CNN models: the notMNIST MLP (seed 000 §1.1) and the iris Conv1D (seed 004).

Both are written out layer by layer like ``seed_cnns.py``. The MLP's ``features`` are its hidden
layers (the learned representation) and its ``classifier`` the output layer, so the usual head swap
and freezing work on it as on a CNN.
"""
from __future__ import annotations

from collections import OrderedDict

from torch import nn

from .base import ImageClassifier, register_model
from .layers import Dropout


class NotMnistMlp(ImageClassifier):
    """Seed 000 §1.1's notMNIST MLP::

        Flatten -> [Dense 256 relu x2 -> BN -> Dropout .2] -> [Dense 128 relu x2 -> BN ->
        Dropout .2] -> [Dense 64 relu x2 -> BN -> Dropout] -> Dense 10

    The last Dropout's rate is not given in the seed; 0.2, the rate of the other two, is used.
    330,122 parameters at 28x28x1 (Keras: 331,018, with the BN moving statistics).

    Input ``(N, in_chans, H, W)`` float (28x28x1 letters A-J by default); output logits
    ``(N, num_classes)``.
    """

    def __init__(self, num_classes: int = 10, in_chans: int = 1, input_size=(28, 28),
                 dropout=(0.2, 0.2, 0.2)):
        super().__init__()
        h, w = input_size
        blocks, cin = OrderedDict(flatten=nn.Flatten()), in_chans * h * w
        for i, (width, p) in enumerate(zip((256, 128, 64), dropout), start=1):
            blocks[f"block{i}"] = nn.Sequential(OrderedDict(
                fc1=nn.Linear(cin, width), relu1=nn.ReLU(inplace=True),
                fc2=nn.Linear(width, width), relu2=nn.ReLU(inplace=True),
                bn=nn.BatchNorm1d(width), dropout=Dropout(p)))
            cin = width
        self.features = nn.Sequential(blocks)
        self.classifier = nn.Linear(64, num_classes)


class IrisConv1d(ImageClassifier):
    """Seed 004's 1-D convolution on tabular data: Keras ``Conv1D(4, 3, activation='relu',
    input_shape=(4, 1))`` on the four iris measurements, then a classifier (the seed says no more:
    Flatten and one Dense softmax layer, the smallest classifier, are used). 43 parameters.

    The four features are read as a length-4 signal with one channel: input ``(N, in_chans, L)``
    float, ``(N, 1, 4)`` by default (Keras' ``(4, 1)`` is length x channels); the kernel of 3
    slides over neighbouring features, giving ``(N, 4, 2)``. Output logits ``(N, num_classes)``,
    3 iris species by default.

    Raises:
        ValueError: an ``input_size`` that is not ``(length,)``, or a length under 3 (the kernel).
    """

    def __init__(self, num_classes: int = 3, in_chans: int = 1, input_size=(4,)):
        super().__init__()
        if len(input_size) != 1:
            raise ValueError(f"iris-conv1d takes 1-D signals (N, C, L): input_size is (length,), "
                             f"got {tuple(input_size)}")
        (length,) = input_size
        if length < 3:
            raise ValueError(f"iris-conv1d needs signals of length 3 or more, got {length}")
        self.features = nn.Sequential(OrderedDict(
            conv1=nn.Conv1d(in_chans, 4, 3), relu1=nn.ReLU(inplace=True)))
        self.classifier = nn.Sequential(OrderedDict(
            flatten=nn.Flatten(), fc=nn.Linear(4 * (length - 2), num_classes)))


@register_model("notmnist-mlp", input_size=(1, 28, 28), num_params=330_122,
                classifier="classifier",
                paper="seed 000 §1.1: notMNIST small MLP with BatchNorm and Dropout (no score given)")
def notmnist_mlp(input_size=(28, 28), **kw) -> NotMnistMlp:
    """Registered as ``notmnist-mlp``: float (N, 1, 28, 28) -> logits float (N, num_classes).
    Source: seed 000 §1.1: notMNIST small MLP with BatchNorm and Dropout (no score given)."""
    return NotMnistMlp(input_size=input_size, **kw)


@register_model("iris-conv1d", input_size=(1, 4), num_params=43, first_conv="features.conv1",
                classifier="classifier.fc",
                paper="seed 004: Keras Conv1D(4, 3, relu) on iris' 4 features (no score given)")
def iris_conv1d(input_size=(4,), **kw) -> IrisConv1d:
    """Registered as ``iris-conv1d``: float (N, 1, 4) -> logits float (N, num_classes).
    Source: seed 004: Keras Conv1D(4, 3, relu) on iris' 4 features (no score given)."""
    return IrisConv1d(input_size=input_size, **kw)
