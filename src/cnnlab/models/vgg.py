"""VGG (Simonyan & Zisserman 2014, "Very deep convolutional networks for large-scale image
recognition", arXiv:1409.1556, ICLR 2015).

The paper's configurations A (11 weight layers), B (13), D (16) and E (19) are one table each:
3x3 'same' convs (an integer = its filters), 2x2/2 max-pools ("M"), then three dense layers. One
loop turns a row into ``features``. ``*_bn`` adds BatchNorm after each conv (Ioffe & Szegedy 2015;
not in the paper, torchvision's variant). State_dict keys and shapes are torchvision's
(``features.<i>``, ``classifier.{0,3,6}``), so its ImageNet weights load as they are; the parameter
counts at 1000 classes are torchvision's/the paper's (vgg16: 138,357,544).

``*-cifar`` variants (``vgg16-cifar``, ``vgg16_bn-cifar``, ...) keep the conv table and shrink the
head for 32x32 images, whose maps are 1x1 after the five pools: a global average pool and 512-wide
dense layers (512 -> 512 -> 512 -> classes) instead of 7x7x512 -> 4096 -> 4096, a common CIFAR
form of VGG (the paper's head would hold 100M+ parameters for 49 copies of each 1x1 map). Same key
names, so a CIFAR VGG's ``features`` can take ImageNet conv weights.
"""
from __future__ import annotations

import torch
from torch import nn

from .base import ImageClassifier, register_model
from .layers import Dropout, torchvision_init

# the paper's Table 1, columns A, B, D, E
CFGS: dict[int, list[int | str]] = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
         512, 512, 512, 512, "M"],
}


def make_layers(cfg: list[int | str], batch_norm: bool, in_chans: int = 3) -> nn.Sequential:
    """One row of the table -> ``nn.Sequential`` of conv(-BN)-ReLU and max-pool layers, indexed
    like torchvision's (``features.0`` is the first conv)."""
    layers: list[nn.Module] = []
    cin = in_chans
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        layers.append(nn.Conv2d(cin, v, kernel_size=3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(v))
        layers.append(nn.ReLU(inplace=True))
        cin = v
    return nn.Sequential(*layers)


class VGG(ImageClassifier):
    """VGG-11/13/16/19, torchvision layout.

    ``features`` (the conv table) -> ``avgpool`` (adaptive, ``pool`` x ``pool``) -> flatten ->
    ``classifier`` (Linear, ReLU, Dropout, Linear, ReLU, Dropout, Linear). ImageNet: pool 7,
    hidden 4096; CIFAR: pool 1, hidden 512. The adaptive pool lets any input of at least 32x32
    through (five 2x2 pools). Input ``(N, in_chans, H, W)`` float, 224x224 for the published
    weights; output logits ``(N, num_classes)``. Source: Simonyan & Zisserman 2014, 'Very deep
    convolutional networks for large-scale image recognition', arXiv:1409.1556 (ICLR 2015).

    Raises:
        ValueError: ``depth`` not 11, 13, 16 or 19.
    """

    def __init__(self, depth: int = 16, batch_norm: bool = False, num_classes: int = 1000,
                 in_chans: int = 3, pool: int = 7, hidden: int = 4096, dropout: float = 0.5):
        super().__init__()
        if depth not in CFGS:
            raise ValueError(f"VGG depth must be one of {sorted(CFGS)}, got {depth}")
        self.features = make_layers(CFGS[depth], batch_norm, in_chans)
        self.avgpool = nn.AdaptiveAvgPool2d((pool, pool))
        self.classifier = nn.Sequential(
            nn.Linear(512 * pool * pool, hidden), nn.ReLU(inplace=True), Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(inplace=True), Dropout(dropout),
            nn.Linear(hidden, num_classes))
        # torchvision's initialisation (He et al. 2015 for convs), so training from scratch
        # matches its recipes; the paper initialised deep nets from a trained config A instead
        torchvision_init(self)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Feature maps float ``(N, 512, H', W')`` -> ``avgpool`` (``pool`` x ``pool``) -> flatten ->
        ``classifier`` -> logits float ``(N, num_classes)``."""
        return self.classifier(torch.flatten(self.avgpool(features), 1))


# name -> (depth, batch_norm, ImageNet head?, parameters at the default classes)
VARIANTS = {
    "vgg11": (11, False, True, 132_863_336), "vgg11_bn": (11, True, True, 132_868_840),
    "vgg13": (13, False, True, 133_047_848), "vgg13_bn": (13, True, True, 133_053_736),
    "vgg16": (16, False, True, 138_357_544), "vgg16_bn": (16, True, True, 138_365_992),
    "vgg19": (19, False, True, 143_667_240), "vgg19_bn": (19, True, True, 143_678_248),
    "vgg11-cifar": (11, False, False, 9_750_922), "vgg11_bn-cifar": (11, True, False, 9_756_426),
    "vgg13-cifar": (13, False, False, 9_935_434), "vgg13_bn-cifar": (13, True, False, 9_941_322),
    "vgg16-cifar": (16, False, False, 15_245_130), "vgg16_bn-cifar": (16, True, False, 15_253_578),
    "vgg19-cifar": (19, False, False, 20_554_826), "vgg19_bn-cifar": (19, True, False, 20_565_834),
}

PAPER = ("Simonyan & Zisserman 2014, 'Very deep convolutional networks for large-scale image "
         "recognition', arXiv:1409.1556 (ICLR 2015)")


def _register(name: str, depth: int, batch_norm: bool, imagenet: bool, num_params: int) -> None:
    head = dict(pool=7, hidden=4096) if imagenet else dict(pool=1, hidden=512)
    note = f"configuration {'ABDE'[(11, 13, 16, 19).index(depth)]}" + (", BatchNorm" if batch_norm else "")
    note += "; torchvision layout" if imagenet else "; 32x32 head (global pool, 512-wide dense)"

    @register_model(name, input_size=(3, 224, 224) if imagenet else (3, 32, 32),
                    num_params=num_params, first_conv="features.0", classifier="classifier.6",
                    fixed_size=False, min_size=32, paper=f"{PAPER}; {note}")
    def builder(num_classes: int = 1000 if imagenet else 10, input_size=None, **kw) -> VGG:
        """This VGG variant: float (N, 3, H, W), H and W >= 32 (224 for the ImageNet layout, 32 for
        the CIFAR head) -> logits float (N, num_classes). Source: Simonyan & Zisserman 2014,
        'Very deep convolutional networks for large-scale image recognition', arXiv:1409.1556."""
        # input_size is accepted and ignored: the adaptive pool takes any size >= 32
        return VGG(depth, batch_norm, num_classes=num_classes, **{**head, **kw})
    builder.__name__ = builder.__qualname__ = name.replace("-", "_")


for _name, _spec in VARIANTS.items():  # one registered builder per row of VARIANTS
    _register(_name, *_spec)
