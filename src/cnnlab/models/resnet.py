"""ResNet (He, Zhang, Ren & Sun 2015, "Deep residual learning for image recognition",
arXiv:1512.03385, CVPR 2016).

Two families from the paper:

* ImageNet, Table 1: ``resnet18``, ``resnet34`` (basic blocks of two 3x3 convs) and ``resnet50``
  (bottleneck blocks 1x1-3x3-1x1), 224x224, projection shortcuts (1x1 conv + BN, the paper's
  option B) where the shape changes. State_dict keys and shapes are torchvision's, so its weights
  load as they are; torchvision puts the stride of a bottleneck's downsampling on the 3x3 conv
  ("ResNet v1.5") rather than on the first 1x1 as the paper does: same parameters, slightly better
  accuracy. 11,689,512 / 21,797,672 / 25,557,032 parameters at 1000 classes.
* CIFAR-10, Section 4.2: ``resnet20`` / 32 / 44 / 56 / 110, depth 6n + 2: a 3x3 conv with 16
  filters, three stages of n basic blocks with 16, 32, 64 filters on 32x32, 16x16, 8x8 maps, global
  average pool, 10-way dense. "We use identity shortcuts in all cases (i.e., option A), so our
  residual models have exactly the same depth, width, and number of parameters as the plain
  counterparts": where a stage halves the map and doubles the filters, the identity is subsampled
  (stride 2) and padded with zero channels, which has no parameters. That gives 269,722 /
  464,154 / 658,586 / 853,018 / 1,727,962 parameters, the paper's (Table 6) "0.27M, 0.46M,
  0.66M, 0.85M, 1.7M". ``shortcut="B"`` uses 1x1 conv + BN projections at the two
  downsampling blocks instead (option B), adding 16*32 + 2*32 + 32*64 + 2*64 = 2,752
  parameters: 272,474 / 466,906 / 661,338 / 855,770 / 1,730,714, the counts often quoted for
  "ResNet-20 .. 110" (they round to the same M figures, but they are not option A).

Both keep torchvision's top-level names (``conv1``, ``bn1``, ``layer1``.. , ``fc``). ``features``
and ``classifier`` are therefore views, not registered containers: ``features`` is an
``nn.Sequential`` over the same modules (conv1 .. last layer), ``classifier`` is ``fc``. Freezing
(``model.features.requires_grad_(False)``), hooks and ``reset_classifier`` work as for every
other model, and the state_dict has no ``features.`` prefix.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from .base import ImageClassifier, register_model
from .layers import DropPath, torchvision_init


class TopLevelLayout(ImageClassifier):
    """An :class:`ImageClassifier` whose layers are attributes of the model itself (torchvision's
    ResNet layout) rather than of ``features`` / ``classifier`` containers.

    Subclasses list the attribute names of the convolutional base in ``_feature_names`` and keep
    the final dense layer as ``fc``. ``features`` returns an unregistered ``nn.Sequential`` view of
    those modules: the same objects, so freezing or hooking it acts on the model, but the
    state_dict keys stay ``conv1.weight``, not ``features.conv1.weight``. The view is cached (so a
    hook on ``model.features`` itself fires in ``forward``) and rebuilt if a module is replaced.
    """

    _feature_names: tuple[str, ...] = ()

    @property
    def features(self) -> nn.Sequential:
        """The convolutional base as an ``nn.Sequential`` view of the top-level modules (their
        own names, as torchvision's), rebuilt when one of them is replaced."""
        mods = [(n, getattr(self, n)) for n in self._feature_names]
        view = self.__dict__.get("_features_view")
        if view is None or any(view._modules.get(n) is not m for n, m in mods):
            view = nn.Sequential(OrderedDict(mods))
            self.__dict__["_features_view"] = view  # plain attribute: not a registered submodule
        return view

    @property
    def classifier(self) -> nn.Module:
        """The final ``nn.Linear`` (``fc``, torchvision's name): pooled features -> logits."""
        return self.fc

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Feature maps float ``(N, C, H', W')`` -> ``avgpool`` (global) -> flatten -> ``fc`` -> logits
        float ``(N, num_classes)``."""
        return self.fc(torch.flatten(self.avgpool(features), 1))


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)  # BN follows: no bias


class BasicBlock(nn.Module):
    """Two 3x3 convs with BN, ``relu(x + F(x))``. ``(N, cin, H, W) -> (N, cout, H/s, W/s)``.

    ``shortcut`` maps x to the output's shape when it changes: ``downsample`` (a 1x1 conv + BN,
    option B, torchvision's key name) or a parameter-free :class:`PadShortcut` (option A).
    ``drop_path``: the stochastic-depth probability of the residual branch (no parameters).
    """

    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 drop_path: float = 0.0):
        super().__init__()
        self.conv1 = _conv3x3(cin, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.drop_path = DropPath(drop_path) if drop_path else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Float ``(N, cin, H, W)`` -> ``(N, planes, H / stride, W / stride)``:
        ``relu(F(x) + shortcut(x))``."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(self.drop_path(out) + identity)


class Bottleneck(nn.Module):
    """1x1 reduce -> 3x3 (stride here, v1.5) -> 1x1 expand x4, BN after each, ``relu(x + F(x))``.
    ``(N, cin, H, W) -> (N, 4 * planes, H/s, W/s)``."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Float ``(N, cin, H, W)`` -> ``(N, 4 * planes, H / stride, W / stride)``:
        ``relu(F(x) + shortcut(x))``."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class PadShortcut(nn.Module):
    """Option A shortcut: take every ``stride``-th pixel and pad the channels with zeros up to
    ``cout`` (half the new channels before, half after, as the common CIFAR implementations do).
    No parameters: the CIFAR nets' identity shortcuts stay identities."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.cin, self.cout, self.stride = cin, cout, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Float ``(N, cin, H, W)`` -> ``(N, cout, ceil(H / stride), ceil(W / stride))``: every
        ``stride``-th pixel, the new channels zero."""
        x = x[:, :, ::self.stride, ::self.stride]
        extra = self.cout - self.cin
        return F.pad(x, (0, 0, 0, 0, extra // 2, extra - extra // 2))

    def extra_repr(self) -> str:
        """The layer's settings, shown by ``print(model)``."""
        return f"{self.cin}, {self.cout}, stride={self.stride}"


class ResNet(TopLevelLayout):
    """ImageNet ResNet (He, Zhang, Ren & Sun 2015, arXiv:1512.03385, Table 1), torchvision layout::

        conv1 7x7/2, 64 -> bn1 -> relu -> maxpool 3x3/2 -> layer1 (64) -> layer2 (128, /2) ->
        layer3 (256, /2) -> layer4 (512, /2) -> avgpool (global) -> fc

    Input ``(N, in_chans, H, W)`` float, 224x224 for the published weights; any size from 32x32
    up is accepted (32 is the total stride: smaller inputs would reach the last stage as 1x1
    maps, so they are refused); output logits ``(N, num_classes)``.
    """

    _feature_names = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")

    def __init__(self, block: type[BasicBlock | Bottleneck], layers: tuple[int, int, int, int],
                 num_classes: int = 1000, in_chans: int = 3, zero_init_residual: bool = False):
        super().__init__()
        self.conv1 = nn.Conv2d(in_chans, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self._cin = 64
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        torchvision_init(self, linear_std=None, zero_linear_bias=False)  # fc: PyTorch's default
        if zero_init_residual:  # each block starts as the identity (Goyal et al. 2017)
            for m in self.modules():
                last_bn = getattr(m, "bn3", None) if isinstance(m, Bottleneck) else \
                    getattr(m, "bn2", None) if isinstance(m, BasicBlock) else None
                if last_bn is not None:
                    nn.init.zeros_(last_bn.weight)

    def _make_layer(self, block, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self._cin != planes * block.expansion:  # option B projection
            downsample = nn.Sequential(
                nn.Conv2d(self._cin, planes * block.expansion, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self._cin, planes, stride, downsample)]
        self._cin = planes * block.expansion
        layers += [block(self._cin, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)


class CifarResNet(TopLevelLayout):
    """CIFAR ResNet of depth 6n + 2 (Section 4.2), option A shortcuts by default::

        conv1 3x3, 16 -> bn1 -> relu -> layer1 (n blocks, 16) -> layer2 (n, 32, /2) ->
        layer3 (n, 64, /2) -> avgpool (global) -> fc

    Input ``(N, in_chans, H, W)`` float, 32x32 by default; any size from 4x4 up is accepted (the
    total stride); output logits ``(N, num_classes)``. ``drop_path_rate``: stochastic depth (Huang
    et al. 2016) with their linear rule, the i-th of the 3n blocks dropping its residual branch
    with probability ``drop_path_rate * i / (3n - 1)`` (0 for the first, the rate for the last;
    timm's ``drop_path_rate``); no parameters, the same state_dict.

    Raises:
        ValueError: ``depth`` not 6n + 2, ``shortcut`` not ``"A"`` or ``"B"``, or
            ``drop_path_rate`` outside [0, 1).
    """

    _feature_names = ("conv1", "bn1", "relu", "layer1", "layer2", "layer3")

    def __init__(self, depth: int = 20, num_classes: int = 10, in_chans: int = 3,
                 shortcut: str = "A", drop_path_rate: float = 0.0):
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n + 2 (20, 32, 44, 56, 110), got {depth}")
        if shortcut not in ("A", "B"):
            raise ValueError(f"shortcut must be 'A' (zero-padding identity) or 'B' (projection), "
                             f"got {shortcut!r}")
        if not 0.0 <= drop_path_rate < 1.0:
            raise ValueError(f"drop_path_rate must be in [0, 1), got {drop_path_rate}")
        self.shortcut = shortcut
        n = (depth - 2) // 6
        self._drop_rates = [drop_path_rate * i / max(3 * n - 1, 1) for i in range(3 * n)]
        self.conv1 = _conv3x3(in_chans, 16)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(16, 16, n, 1)
        self.layer2 = self._make_layer(16, 32, n, 2)
        self.layer3 = self._make_layer(32, 64, n, 2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(64, num_classes)
        for m in self.modules():  # "We initialize the weights as in [13]": He init, fan-in
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(self, cin: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
        shortcut = None
        if stride != 1 or cin != planes:
            shortcut = PadShortcut(cin, planes, stride) if self.shortcut == "A" else nn.Sequential(
                nn.Conv2d(cin, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes))
        rates = [self._drop_rates.pop(0) for _ in range(blocks)]
        layers = [BasicBlock(cin, planes, stride, shortcut, drop_path=rates[0])]
        layers += [BasicBlock(planes, planes, drop_path=r) for r in rates[1:]]
        return nn.Sequential(*layers)


PAPER = ("He, Zhang, Ren & Sun 2015, 'Deep residual learning for image recognition', "
         "arXiv:1512.03385 (CVPR 2016)")


@register_model("resnet18", input_size=(3, 224, 224), num_params=11_689_512, first_conv="conv1",
                classifier="fc", fixed_size=False, min_size=32,
                paper=f"{PAPER}; Table 1, torchvision layout")
def resnet18(input_size=None, **kw) -> ResNet:
    """Registered as ``resnet18``: float (N, 3, 224, 224) -> logits float (N, num_classes).
    Source: He, Zhang, Ren & Sun 2015, 'Deep residual learning for image recognition',
    arXiv:1512.03385 (CVPR 2016); Table 1, torchvision layout."""
    return ResNet(BasicBlock, (2, 2, 2, 2), **kw)  # global pool: input_size needs no change


@register_model("resnet34", input_size=(3, 224, 224), num_params=21_797_672, first_conv="conv1",
                classifier="fc", fixed_size=False, min_size=32,
                paper=f"{PAPER}; Table 1, torchvision layout")
def resnet34(input_size=None, **kw) -> ResNet:
    """Registered as ``resnet34``: float (N, 3, 224, 224) -> logits float (N, num_classes).
    Source: He, Zhang, Ren & Sun 2015, 'Deep residual learning for image recognition',
    arXiv:1512.03385 (CVPR 2016); Table 1, torchvision layout."""
    return ResNet(BasicBlock, (3, 4, 6, 3), **kw)


@register_model("resnet50", input_size=(3, 224, 224), num_params=25_557_032, first_conv="conv1",
                classifier="fc", fixed_size=False, min_size=32,
                paper=f"{PAPER}; Table 1, torchvision layout (v1.5: stride on the 3x3)")
def resnet50(input_size=None, **kw) -> ResNet:
    """Registered as ``resnet50``: float (N, 3, 224, 224) -> logits float (N, num_classes).
    Source: He, Zhang, Ren & Sun 2015, 'Deep residual learning for image recognition',
    arXiv:1512.03385 (CVPR 2016); Table 1, torchvision layout (v1.5: stride on the 3x3)."""
    return ResNet(Bottleneck, (3, 4, 6, 3), **kw)


def _cifar(depth: int, num_params: int) -> None:
    @register_model(f"resnet{depth}", input_size=(3, 32, 32), num_params=num_params,
                    first_conv="conv1", classifier="fc", fixed_size=False, min_size=4,
                    paper=f"{PAPER}; Section 4.2, CIFAR-10, depth 6n+2 = {depth}, option A")
    def builder(input_size=None, shortcut: str = "A", **kw) -> CifarResNet:
        """The CIFAR ResNet of this depth: float (N, 3, 32, 32) -> logits float (N, num_classes);
        ``shortcut`` "A" (zero-padding identity, as He et al. on CIFAR-10) or "B" (1x1 projection)."""
        return CifarResNet(depth, shortcut=shortcut, **kw)
    builder.__name__ = builder.__qualname__ = f"resnet{depth}"


# CIFAR depths and their parameter counts with option A shortcuts (the paper's 0.27M .. 1.7M)
for _depth, _n in ((20, 269_722), (32, 464_154), (44, 658_586), (56, 853_018), (110, 1_727_962)):
    _cifar(_depth, _n)
