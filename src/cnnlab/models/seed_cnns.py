"""The small CNNs of the seed notebooks (``../shared/SEEDS.md``), written out layer by layer.

Each class mirrors the Keras model its seed printed: same layers, same parameter counts, Keras
'same' padding as ``padding=1`` for 3x3 kernels. Layer names follow their role (``conv1``,
``fc1``, ``block2.conv1``) so the summary table reads like the seed's.

Parameter counts: PyTorch counts a BatchNorm's learned scale and shift (2 per channel) as
parameters and its running mean and variance as buffers; Keras' ``model.summary()`` counts all four
(the moving statistics as "non-trainable params"). So a Keras total is ``count_params(model)``
plus ``2 * C`` per BatchNorm; the tests check both.

Two Keras defaults are not copied, so training differs from the seeds' in these details (not in
architecture or parameter count): BatchNorm keeps PyTorch's eps 1e-5 and momentum 0.1 (Keras:
eps 1e-3, momentum 0.99, i.e. PyTorch's 0.01): eps enters the normalisation itself, so channels
of tiny variance (after a ReLU) are scaled up more here, and the running statistics used for
validation and test follow the last batches more closely; and weights keep PyTorch's default
initialisation (uniform within 1/sqrt(fan_in), biases too) where Keras draws Glorot-uniform
weights and zero biases. The recipes add two more (README, "Recipes and results"): inputs are
standardised per channel, where the Keras seeds rescale by 1/255, and Adam keeps PyTorch's eps
1e-8 (Keras: 1e-7).
"""
from __future__ import annotations

from collections import OrderedDict

from torch import nn

from .base import ImageClassifier, register_model
from .layers import Conv2dReLU, Dropout, FlattenNHWC, conv3x3, conv3x3_relu


class MnistCnnSmall(ImageClassifier):
    """Seed 003's MNIST CNN: Conv32 -> Conv64 -> MaxPool -> Dropout -> Flatten -> Dropout ->
    Dense128 -> Dense10. 1,625,866 parameters at 28x28x1, as the seed's Keras table.

    Input ``(N, in_chans, H, W)`` float; output logits ``(N, num_classes)``.
    Source: seed 003 (carl-221b/deeplearning); its table gives no dropout rates, so they are
    those of the author's ``CNN_mnist`` (``mnist.py``): 0.3 after the pool, 0.5 after flattening.
    """

    def __init__(self, num_classes: int = 10, in_chans: int = 1, input_size=(28, 28),
                 dropout1: float = 0.3, dropout2: float = 0.5):
        super().__init__()
        h, w = input_size
        self.features = nn.Sequential(OrderedDict(
            conv1=conv3x3_relu(in_chans, 32),
            # ReLU after the pool: max and ReLU commute (same outputs and gradients), and the
            # ReLU then runs on 4x fewer elements
            conv2=conv3x3(32, 64), pool=nn.MaxPool2d(2), relu2=nn.ReLU(inplace=True),
            dropout=Dropout(dropout1)))
        self.classifier = nn.Sequential(OrderedDict(
            flatten=FlattenNHWC(), dropout=Dropout(dropout2),
            fc1=nn.Linear(64 * (h // 2) * (w // 2), 128), relu=nn.ReLU(inplace=True),
            fc2=nn.Linear(128, num_classes)))


class MnistCnnTorch(ImageClassifier):
    """The CNN of PyTorch's own MNIST example (pytorch/examples ``mnist/main.py``): Conv32 3x3
    valid -> Conv64 3x3 valid -> MaxPool -> Dropout .25 -> Flatten -> Dense128 -> Dropout .5 ->
    Dense10, ReLU after each conv and the hidden dense layer. 1,199,882 parameters at 28x28x1.

    Seed 001 §1 and §2 give no layers, only test lines in the style that script prints ("Average
    loss: 0.0296, Accuracy 9793/10000 (98%)"): cnnlab assumes this network behind them.

    Input ``(N, in_chans, H, W)`` float; output logits ``(N, num_classes)``.
    """

    def __init__(self, num_classes: int = 10, in_chans: int = 1, input_size=(28, 28),
                 dropout1: float = 0.25, dropout2: float = 0.5):
        super().__init__()
        h, w = input_size
        self.features = nn.Sequential(OrderedDict(
            conv1=Conv2dReLU(in_chans, 32, 3),
            # ReLU after the pool: max and ReLU commute (same outputs and gradients)
            conv2=nn.Conv2d(32, 64, 3), pool=nn.MaxPool2d(2), relu2=nn.ReLU(inplace=True),
            dropout=Dropout(dropout1)))
        self.classifier = nn.Sequential(OrderedDict(
            flatten=FlattenNHWC(), fc1=nn.Linear(64 * ((h - 4) // 2) * ((w - 4) // 2), 128),
            relu=nn.ReLU(inplace=True), dropout=Dropout(dropout2), fc2=nn.Linear(128, num_classes)))


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
            conv1=conv3x3_relu(in_chans, 128),
            # ReLU after each pool: max and ReLU commute, and the ReLU then touches 4x fewer elements
            conv2=conv3x3(128, 128), pool1=nn.MaxPool2d(2), relu2=nn.ReLU(inplace=True),
            conv3=conv3x3_relu(128, 64),
            conv4=conv3x3(64, 64), pool2=nn.MaxPool2d(2), relu4=nn.ReLU(inplace=True)))
        self.classifier = nn.Sequential(OrderedDict(
            flatten=FlattenNHWC(), fc1=nn.Linear(64 * (h // 4) * (w // 4), 128),
            relu=nn.ReLU(inplace=True), fc2=nn.Linear(128, num_classes)))


@register_model("mnist-cnn-small", input_size=(1, 28, 28), num_params=1_625_866, min_size=2,
                first_conv="features.conv1", classifier="classifier.fc2",
                paper="seed 003: Keras MNIST CNN, 99.2% test top-1 after 10 epochs")
def mnist_cnn_small(input_size=(28, 28), **kw) -> MnistCnnSmall:
    """Registered as ``mnist-cnn-small``: float (N, 1, 28, 28) -> logits float (N, num_classes).
    Source: seed 003: Keras MNIST CNN, 99.2% test top-1 after 10 epochs."""
    return MnistCnnSmall(input_size=input_size, **kw)


@register_model("mnist-cnn-torch", input_size=(1, 28, 28), num_params=1_199_882, min_size=6,
                first_conv="features.conv1", classifier="classifier.fc2",
                paper="pytorch/examples mnist/main.py's Net (seed 001 §1, §2 name no layers)")
def mnist_cnn_torch(input_size=(28, 28), **kw) -> MnistCnnTorch:
    """Registered as ``mnist-cnn-torch``: float (N, 1, 28, 28) -> logits float (N, num_classes).
    Source: pytorch/examples' MNIST network, assumed behind seed 001 §1 and §2's test lines."""
    return MnistCnnTorch(input_size=input_size, **kw)


@register_model("mnist-cnn-wide", input_size=(1, 28, 28), num_params=662_410, min_size=4,
                first_conv="features.conv1", classifier="classifier.fc2",
                paper="seed 000 §1.2 'My_First_CNN': 98.97% test top-1")
def mnist_cnn_wide(input_size=(28, 28), **kw) -> MnistCnnWide:
    """Registered as ``mnist-cnn-wide``: float (N, 1, 28, 28) -> logits float (N, num_classes).
    Source: seed 000 §1.2 'My_First_CNN': 98.97% test top-1."""
    return MnistCnnWide(input_size=input_size, **kw)


def _keras_same_s2(n: int) -> int:
    """Output length of a stride-2 'same' convolution: ceil(n / 2), as Keras computes it."""
    return (n + 1) // 2


class FashionCnnBn(ImageClassifier):
    """Seed 000 §1.3 "CNN_exercise 1" for Fashion-MNIST: [Conv32 relu -> BN] x2 -> MaxPool ->
    Dropout .25 -> [Conv64 relu -> BN] x2 -> MaxPool -> Dropout .25 -> Flatten -> Dense512 relu ->
    BN -> Dense10. 1,677,674 parameters at 28x28x1 (Keras: 1,679,082 with the BN moving stats).

    The seed lists each BatchNormalization after a Conv2D that has ``activation=relu``, so the
    order is conv -> ReLU -> BN. Input ``(N, in_chans, H, W)`` float, H and W multiples of 4
    (28x28 by default); output logits ``(N, num_classes)``. Reported: 92.63% test top-1.
    """

    def __init__(self, num_classes: int = 10, in_chans: int = 1, input_size=(28, 28),
                 dropout: float = 0.25):
        super().__init__()
        h, w = input_size
        self.features = nn.Sequential(OrderedDict(
            block1=nn.Sequential(OrderedDict(
                conv1=conv3x3_relu(in_chans, 32), bn1=nn.BatchNorm2d(32),
                conv2=conv3x3_relu(32, 32), bn2=nn.BatchNorm2d(32),
                pool=nn.MaxPool2d(2), dropout=Dropout(dropout))),
            block2=nn.Sequential(OrderedDict(
                conv1=conv3x3_relu(32, 64), bn1=nn.BatchNorm2d(64),
                conv2=conv3x3_relu(64, 64), bn2=nn.BatchNorm2d(64),
                pool=nn.MaxPool2d(2), dropout=Dropout(dropout)))))
        self.classifier = nn.Sequential(OrderedDict(
            flatten=FlattenNHWC(), fc1=nn.Linear(64 * (h // 4) * (w // 4), 512),
            relu=nn.ReLU(inplace=True), bn=nn.BatchNorm1d(512), fc2=nn.Linear(512, num_classes)))


class Cifar10CnnBn(ImageClassifier):
    """Seed 000 §1.4 "CNN_exercise 2" for CIFAR-10: Conv32 x2 -> BN -> MaxPool -> Dropout .25 ->
    Conv64 x2 -> BN -> MaxPool -> Dropout .25 -> Flatten -> Dense1024 relu -> BN -> Dropout .35 ->
    Dense10; ReLU in every conv. 4,273,386 parameters at 32x32x3 (Keras: 4,275,626).

    Input ``(N, in_chans, H, W)`` float, H and W multiples of 4 (32x32 by default); output logits
    ``(N, num_classes)``. Reported: 79.27% test top-1.
    """

    def __init__(self, num_classes: int = 10, in_chans: int = 3, input_size=(32, 32),
                 dropout_conv: float = 0.25, dropout_fc: float = 0.35):
        super().__init__()
        h, w = input_size
        self.features = nn.Sequential(OrderedDict(
            block1=nn.Sequential(OrderedDict(
                conv1=conv3x3_relu(in_chans, 32),
                conv2=conv3x3_relu(32, 32), bn=nn.BatchNorm2d(32),
                pool=nn.MaxPool2d(2), dropout=Dropout(dropout_conv))),
            block2=nn.Sequential(OrderedDict(
                conv1=conv3x3_relu(32, 64),
                conv2=conv3x3_relu(64, 64), bn=nn.BatchNorm2d(64),
                pool=nn.MaxPool2d(2), dropout=Dropout(dropout_conv)))))
        self.classifier = nn.Sequential(OrderedDict(
            flatten=FlattenNHWC(), fc1=nn.Linear(64 * (h // 4) * (w // 4), 1024),
            relu=nn.ReLU(inplace=True), bn=nn.BatchNorm1d(1024), dropout=Dropout(dropout_fc),
            fc2=nn.Linear(1024, num_classes)))


class Cifar10Cnn3Block(ImageClassifier):
    """Seed 003's CIFAR-10 CNN: three blocks of [Conv, Conv, BN, MaxPool, Dropout] with 32/64/128
    filters -> Flatten (2048) -> Dense128 relu -> Dropout -> Dense10. 551,018 parameters at
    32x32x3; the seed's Keras table, which also counts the BN moving mean/variance, gives
    896, 9,248, 128 | 18,496, 36,928, 256 | 73,856, 147,584, 512 | 262,272, 1,290 = 551,466.

    Dropout rates 0.2 / 0.3 / 0.4 after the blocks and 0.5 before the output are the seed
    author's (carl-221b/deeplearning ``lab4_2.py``); ReLU is in every conv (Keras
    ``activation='relu'``), so BN sees post-activation maps. Input ``(N, in_chans, H, W)`` float,
    H and W multiples of 8 (32x32 by default); output logits ``(N, num_classes)``.
    Reported: 86.87% test top-1 after 100 epochs.
    """

    def __init__(self, num_classes: int = 10, in_chans: int = 3, input_size=(32, 32),
                 dropout=(0.2, 0.3, 0.4, 0.5)):
        super().__init__()
        h, w = input_size
        blocks, cin = OrderedDict(), in_chans
        for i, (cout, p) in enumerate(zip((32, 64, 128), dropout[:3]), start=1):
            blocks[f"block{i}"] = nn.Sequential(OrderedDict(
                conv1=conv3x3_relu(cin, cout),
                conv2=conv3x3_relu(cout, cout), bn=nn.BatchNorm2d(cout),
                pool=nn.MaxPool2d(2), dropout=Dropout(p)))
            cin = cout
        self.features = nn.Sequential(blocks)
        self.classifier = nn.Sequential(OrderedDict(
            flatten=FlattenNHWC(), fc1=nn.Linear(128 * (h // 8) * (w // 8), 128),
            relu=nn.ReLU(inplace=True), dropout=Dropout(dropout[3]),
            fc2=nn.Linear(128, num_classes)))


class MnistCnnBn403k(ImageClassifier):
    """Seed 002 §1 (mrmoxon/Deep-Image-Learning), the [99.72, 98.93] MNIST model: an all-conv
    net that downsamples with stride-2 5x5 convolutions instead of pooling::

        conv1 32@3x3 valid (26x26) -> BN -> conv2 32@3x3 valid (24x24) -> BN ->
        conv3 32@5x5 s2 same (12x12) -> Dropout ->
        conv4 64@3x3 valid (10x10) -> BN -> conv5 64@3x3 valid (8x8) -> BN ->
        conv6 64@5x5 s2 same (4x4) -> Dropout -> conv7 128@5x5 s2 same (2x2) ->
        Flatten (512) -> Dense 10

    Parameter count, and the seed table's typo. The table prints 9,216 and 18,432 / 36,864 for the
    3x3 convs that feed a BatchNorm (3*3*32*32 and so on: no bias, the BN's shift replaces it)
    and weights + bias for the 5x5 stride-2 convs (25,632 = 5*5*32*32 + 32). By that rule the
    first conv has 3*3*1*32 = 288 weights, but the table prints 128 (which no 3x3 conv on one
    channel has: 9*32 = 288 without bias, 320 with), and its total 403,562 is the column sum with
    128. So the architecture here is the faithful one, with 288 in the first conv, and
    ``count_params == 403,338``: Keras' 403,562 - 128 + 288 = 403,722 counts the BN moving
    mean/variance too (2 * C per BN: 64 + 64 + 128 + 128), PyTorch keeps those as buffers
    (403,722 - 384 = 403,338). Every other layer matches the table exactly.

    Assumptions where the seed is silent (documented, not guessed silently): ReLU inside every
    conv (no Activation rows in the table), before the BN; dropout rate 0.4 (the rate of the
    Kaggle "MNIST 99.75%" all-conv design this table resembles). 'same' padding of a stride-2 5x5
    conv is ``padding=2`` (Keras pads 1 before and 2 after on even sizes: the same output size,
    shifted by one pixel; irrelevant unless porting Keras weights).

    Input ``(N, in_chans, H, W)`` float, 28x28 by default; output logits ``(N, num_classes)``.

    Raises:
        ValueError: an ``input_size`` under 13x13 (the stride-2 convs would leave no map).
    """

    def __init__(self, num_classes: int = 10, in_chans: int = 1, input_size=(28, 28),
                 dropout: float = 0.4):
        super().__init__()
        h, w = input_size
        for _ in range(2):  # the size after one block: valid, valid, stride-2 'same'
            h, w = _keras_same_s2(h - 4), _keras_same_s2(w - 4)
        h, w = _keras_same_s2(h), _keras_same_s2(w)
        if min(h, w) < 1:
            raise ValueError(f"mnist-cnn-bn-403k needs inputs of at least 13x13, got {input_size}")

        def conv_bn(cin, cout):  # 3x3 valid, no bias: the BN's shift is the bias
            return [nn.Conv2d(cin, cout, 3, bias=False), nn.ReLU(inplace=True), nn.BatchNorm2d(cout)]

        def names(i):
            return (f"conv{i}", f"relu{i}", f"bn{i}")

        self.features = nn.Sequential(OrderedDict(
            [*zip(names(1), conv_bn(in_chans, 32)), *zip(names(2), conv_bn(32, 32)),
             ("conv3", nn.Conv2d(32, 32, 5, stride=2, padding=2)), ("relu3", nn.ReLU(inplace=True)),
             ("dropout1", Dropout(dropout)),
             *zip(names(4), conv_bn(32, 64)), *zip(names(5), conv_bn(64, 64)),
             ("conv6", nn.Conv2d(64, 64, 5, stride=2, padding=2)), ("relu6", nn.ReLU(inplace=True)),
             ("dropout2", Dropout(dropout)),
             ("conv7", nn.Conv2d(64, 128, 5, stride=2, padding=2)), ("relu7", nn.ReLU(inplace=True))]))
        self.classifier = nn.Sequential(OrderedDict(
            flatten=FlattenNHWC(), fc=nn.Linear(128 * h * w, num_classes)))


class MnistCnn2m(ImageClassifier):
    """Seed 002 §2, the [99.65, 98.81] MNIST model of "2.2m parameters", reconstructed from its
    description ("2 sets of Conv2D layers + Batch Normalization and ReLU activation, MaxPooling2D
    after each set, Dropout .25; Flatten; 2 Dense layers with ReLU + Batch Normalization and
    dropout; output + softmax"), which gives no widths::

        block1: [conv 32@3x3 same -> BN -> ReLU] x2 -> MaxPool -> Dropout .25   (14x14)
        block2: [conv 64@3x3 same -> BN -> ReLU] x2 -> MaxPool -> Dropout .25   (7x7)
        Flatten (3136) -> [Dense 512 relu -> BN -> Dropout .25] -> [Dense 1024 relu -> BN ->
        Dropout .25] -> Dense 10

    Widths: 32/64 filters and two convs per set are the author's own pattern (the 3,136-wide
    Flatten of method 4 in the same README); 512 and 1024 dense units are the choice that lands on
    the stated size: 2,210,154 parameters (2,213,610 Keras-style, with BN moving statistics).
    The dense dropout rate is not given; 0.25, the only rate the seed names, is used.

    Input ``(N, in_chans, H, W)`` float, H and W multiples of 4 (28x28 by default); output logits
    ``(N, num_classes)``.
    """

    def __init__(self, num_classes: int = 10, in_chans: int = 1, input_size=(28, 28),
                 hidden=(512, 1024), dropout: float = 0.25):
        super().__init__()
        h, w = input_size

        def conv_set(cin, cout):
            return nn.Sequential(OrderedDict(
                conv1=conv3x3(cin, cout), bn1=nn.BatchNorm2d(cout), relu1=nn.ReLU(inplace=True),
                conv2=conv3x3(cout, cout), bn2=nn.BatchNorm2d(cout), relu2=nn.ReLU(inplace=True),
                pool=nn.MaxPool2d(2), dropout=Dropout(dropout)))

        def dense(cin, cout):
            return nn.Sequential(OrderedDict(
                fc=nn.Linear(cin, cout), relu=nn.ReLU(inplace=True), bn=nn.BatchNorm1d(cout),
                dropout=Dropout(dropout)))

        self.features = nn.Sequential(OrderedDict(
            block1=conv_set(in_chans, 32), block2=conv_set(32, 64)))
        self.classifier = nn.Sequential(OrderedDict(
            flatten=FlattenNHWC(), dense1=dense(64 * (h // 4) * (w // 4), hidden[0]),
            dense2=dense(hidden[0], hidden[1]), fc=nn.Linear(hidden[1], num_classes)))


@register_model("fashion-cnn-bn", input_size=(1, 28, 28), num_params=1_677_674, min_size=4,
                first_conv="features.block1.conv1", classifier="classifier.fc2",
                paper="seed 000 §1.3 'CNN_exercise 1' (Fashion-MNIST): 92.63% test top-1")
def fashion_cnn_bn(input_size=(28, 28), **kw) -> FashionCnnBn:
    """Registered as ``fashion-cnn-bn``: float (N, 1, 28, 28) -> logits float (N, num_classes).
    Source: seed 000 §1.3 'CNN_exercise 1' (Fashion-MNIST): 92.63% test top-1."""
    return FashionCnnBn(input_size=input_size, **kw)


@register_model("cifar10-cnn-bn", input_size=(3, 32, 32), num_params=4_273_386, min_size=4,
                first_conv="features.block1.conv1", classifier="classifier.fc2",
                paper="seed 000 §1.4 'CNN_exercise 2' (CIFAR-10): 79.27% test top-1")
def cifar10_cnn_bn(input_size=(32, 32), **kw) -> Cifar10CnnBn:
    """Registered as ``cifar10-cnn-bn``: float (N, 3, 32, 32) -> logits float (N, num_classes).
    Source: seed 000 §1.4 'CNN_exercise 2' (CIFAR-10): 79.27% test top-1."""
    return Cifar10CnnBn(input_size=input_size, **kw)


@register_model("cifar10-cnn-3block", input_size=(3, 32, 32), num_params=551_018, min_size=8,
                first_conv="features.block1.conv1", classifier="classifier.fc2",
                paper="seed 003 (carl-221b/deeplearning): Keras CIFAR-10 CNN, 86.87% test top-1")
def cifar10_cnn_3block(input_size=(32, 32), **kw) -> Cifar10Cnn3Block:
    """Registered as ``cifar10-cnn-3block``: float (N, 3, 32, 32) -> logits float (N, num_classes).
    Source: seed 003 (carl-221b/deeplearning): Keras CIFAR-10 CNN, 86.87% test top-1."""
    return Cifar10Cnn3Block(input_size=input_size, **kw)


@register_model("mnist-cnn-bn-403k", input_size=(1, 28, 28), num_params=403_338, min_size=13,
                first_conv="features.conv1", classifier="classifier.fc",
                paper="seed 002 §1 (mrmoxon/Deep-Image-Learning): 403,562 params as printed "
                      "(first conv typo'd 128 for 288); scores [99.72, 98.93]")
def mnist_cnn_bn_403k(input_size=(28, 28), **kw) -> MnistCnnBn403k:
    """Registered as ``mnist-cnn-bn-403k``: float (N, 1, 28, 28) -> logits float (N, num_classes).
    Source: seed 002 §1 (mrmoxon/Deep-Image-Learning): 403,562 params as printed (first conv typo'd
    128 for 288); scores [99.72, 98.93]."""
    return MnistCnnBn403k(input_size=input_size, **kw)


@register_model("mnist-cnn-2m", input_size=(1, 28, 28), num_params=2_210_154, min_size=4,
                first_conv="features.block1.conv1", classifier="classifier.fc",
                paper="seed 002 §2 (mrmoxon/Deep-Image-Learning): '2.2m parameters', "
                      "scores [99.65, 98.81]; widths reconstructed")
def mnist_cnn_2m(input_size=(28, 28), **kw) -> MnistCnn2m:
    """Registered as ``mnist-cnn-2m``: float (N, 1, 28, 28) -> logits float (N, num_classes).
    Source: seed 002 §2 (mrmoxon/Deep-Image-Learning): '2.2m parameters', scores [99.65, 98.81];
    widths reconstructed."""
    return MnistCnn2m(input_size=input_size, **kw)
