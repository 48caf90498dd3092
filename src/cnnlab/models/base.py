"""The common model interface and the model registry.

Every cnnlab model is an :class:`ImageClassifier`: a ``features`` submodule (the convolutional
base, NCHW in, feature maps out) and a ``classifier`` submodule (features in, logits out), plus
:class:`ModelInfo` metadata. Transfer learning (replace the classifier, freeze the features),
Grad-CAM (hook the last activated map of at least 4x4, :func:`cnnlab.explain.cam_layer`) and the
summary table therefore need no per-model code (where ``features`` and ``classifier`` are views
over torchvision-named modules, as in the ResNets, their tensors are found by identity). Builders
are registered by name with :func:`register_model`, in the style of timm.
"""
from __future__ import annotations

import contextlib
import dataclasses
import inspect
import typing
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from torch import nn

from ..registry import Registry, check_options


@dataclass(frozen=True)
class ModelInfo:
    """Metadata of a registered model.

    Attributes:
        name: registry name (``"mnist-cnn-small"``).
        input_size: default input (channels, height, width) for images, or (channels, length) for
            1-D signals (``iris-conv1d``); the number of entries is the input's rank minus one.
        paper: the source: a paper citation or a seed document.
        num_params: the published / seed parameter count at the default size, or None.
        first_conv: dotted name of the first convolution (for changing input channels), or None.
        classifier: dotted name of the last ``nn.Linear``/conv producing the logits.
        fixed_size: True if the network only accepts exactly ``input_size`` (Flatten into Linear).
        min_size: smallest height/width accepted: by any size when ``fixed_size`` is False, and
            by ``create_model(input_size=...)`` for a fixed-size network built for another size.
    """

    name: str
    input_size: tuple[int, ...]
    paper: str
    num_params: int | None = None
    first_conv: str | None = None
    classifier: str = "classifier"
    fixed_size: bool = True
    min_size: int = 1


class ImageClassifier(nn.Module):
    """Base class: ``logits = classifier(features(x))``.

    Subclasses set ``self.features`` and ``self.classifier``; they may override
    :meth:`forward_features` / :meth:`forward_head` when there is something in between (a global
    pool, a flatten). ``forward`` takes float images ``(N, C, H, W)`` and returns logits
    ``(N, num_classes)`` (float32, or bfloat16 under autocast).
    """

    info: ModelInfo  # set by create_model

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images float ``(N, C, H, W)`` -> the convolutional base's output, the input of
        :meth:`forward_head`: float ``(N, C', H', W')`` feature maps for most models (already
        pooled or flattened, ``(N, D)``, where a model pools inside ``features``); the dtype of
        the computation (float32, bfloat16 under autocast). What feature extraction trains on."""
        return self.features(x)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """:meth:`forward_features`' output -> logits float ``(N, num_classes)``."""
        return self.classifier(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images float ``(N, C, H, W)`` (signals ``(N, C, L)``) -> logits float ``(N, num_classes)``.

        Raises:
            ValueError: the input's channels or size do not fit the model (the message says which).
        """
        info = getattr(self, "info", None)
        if info is not None and x.dim() >= 3:
            _check_input(info, tuple(x.shape[1:]), self.in_chans)
        return self.forward_head(self.forward_features(x))

    @property
    def in_chans(self) -> int:
        """Input channels ``C`` the first layer takes (1 for the MNIST models, 3 for RGB)."""
        conv = self.get_submodule(self.info.first_conv) if self.info.first_conv else None
        return getattr(conv, "in_channels", getattr(conv, "in_features", self.info.input_size[0]))

    @property
    def num_classes(self) -> int | None:
        """Number of logits the final layer gives (1 for a single-sigmoid two-class model); None
        for a final layer that is neither linear nor convolutional."""
        head = self.get_submodule(self.info.classifier)
        return getattr(head, "out_features", getattr(head, "out_channels", None))

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the final layer by a freshly initialised one with ``num_classes`` outputs.

        The replacement keeps the old layer's input size, device and dtype; everything before it
        (including hidden dense layers) is kept. This is the usual transfer-learning head swap.

        Raises:
            TypeError: a final layer that is neither ``nn.Linear`` nor ``nn.Conv2d``.
        """
        old = self.get_submodule(self.info.classifier)
        p = next(old.parameters())
        if isinstance(old, nn.Linear):
            new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
        elif isinstance(old, nn.Conv2d):
            new = nn.Conv2d(old.in_channels, num_classes, old.kernel_size, old.stride, old.padding,
                            bias=old.bias is not None)
        else:
            raise TypeError(f"cannot reset classifier of type {type(old).__name__}")
        new = new.to(device=p.device, dtype=p.dtype)
        parent_name, _, child = self.info.classifier.rpartition(".")
        parent = self.get_submodule(parent_name) if parent_name else self
        setattr(parent, child, new)


def _size_str(size) -> str:
    """``(28, 28)`` -> ``"28x28"``; ``(4,)`` -> ``"length-4"`` (1-D signals)."""
    return "x".join(map(str, size)) if len(size) > 1 else f"length-{size[0]}"


def _check_input(info: ModelInfo, shape: tuple[int, ...], in_chans: int) -> None:
    # shape is one sample's (C, H, W), or (C, L) for 1-D models; other ranks are left to the layers
    if len(shape) != len(info.input_size):
        return
    size, expected = tuple(shape[1:]), tuple(info.input_size[1:])
    if shape[0] != in_chans:
        raise ValueError(f"model {info.name!r} expects {in_chans} input channel(s), got input of "
                         f"shape (N, {', '.join(map(str, shape))}); build it with in_chans={shape[0]} "
                         "or convert the images")
    if info.fixed_size and size != expected:
        raise ValueError(f"model {info.name!r} takes {_size_str(expected)} inputs only (its Flatten "
                         f"feeds a fixed-size dense layer); got {_size_str(size)}. Resize the images "
                         f"to {_size_str(expected)} or pick a model with global pooling")
    if not info.fixed_size and min(size) < info.min_size:
        least = _size_str((info.min_size,) * len(size))
        raise ValueError(f"model {info.name!r} needs inputs of at least {least}; got "
                         f"{_size_str(size)}")


@dataclass(frozen=True)
class ModelEntry:
    """A registered builder and its metadata."""

    builder: Callable[..., ImageClassifier]
    info: ModelInfo


MODELS: Registry[ModelEntry] = Registry("model")


def register_model(name: str, *, input_size: tuple[int, ...], paper: str,
                   num_params: int | None = None, first_conv: str | None = None,
                   classifier: str = "classifier", fixed_size: bool = True, min_size: int = 1):
    """Decorator registering ``builder(num_classes=..., in_chans=..., **kw)`` under ``name``.

    Raises:
        ValueError: if ``name`` is already registered.
    """
    info = ModelInfo(name, input_size, paper, num_params, first_conv, classifier, fixed_size, min_size)

    def deco(builder):
        MODELS.register(name, ModelEntry(builder, info))
        return builder
    return deco


def create_model(name: str, num_classes: int | None = None, in_chans: int | None = None,
                 input_size: tuple[int, ...] | None = None, **kwargs) -> ImageClassifier:
    """Build the registered model ``name``.

    Args:
        name: registry name; ``cnnlab list models`` shows them.
        num_classes: number of logits; default: the model's own (usually 10).
        in_chans: input channels; default: the model's own (1 for MNIST models, 3 for RGB).
        input_size: (height, width) for models that take a size at build time (a Flatten into a
            dense layer sized from it), or (length,) for 1-D models; ignored by size-agnostic
            models.
        kwargs: builder-specific options (dropout rates, BatchNorm on/off, ...).

    Raises:
        UnknownNameError: unknown name, with close matches.
        ValueError: an input size or channel count the architecture cannot take, or an option
            (``kwargs`` key) the model does not have (with close matches and its options).
    """
    entry = MODELS.get(name)
    check_options("model", name, kwargs, model_options(name))
    kw = dict(kwargs)
    if num_classes is not None:
        kw["num_classes"] = num_classes
    if in_chans is not None:
        kw["in_chans"] = in_chans
    if input_size is not None:
        spatial = len(entry.info.input_size) - 1
        if len(input_size) != spatial:
            raise ValueError(f"input_size of {name!r} is {'(height, width)' if spatial == 2 else '(length,)'}, "
                             f"without the channels (in_chans); got {tuple(input_size)}")
        if tuple(input_size) != tuple(entry.info.input_size[1:]):
            if entry.info.fixed_size and "input_size" not in entry.builder.__code__.co_varnames:
                raise ValueError(f"model {name!r} is built for {_size_str(entry.info.input_size[1:])} "
                                 f"inputs only; got {_size_str(tuple(input_size))}")
            kw["input_size"] = tuple(input_size)
        if min(input_size) < entry.info.min_size:  # a Flatten model built for a size, too
            least = _size_str((entry.info.min_size,) * len(input_size))
            raise ValueError(f"model {name!r} needs inputs of at least {least}; got "
                             f"{_size_str(tuple(input_size))}")
    model = entry.builder(**kw)
    c = in_chans if in_chans is not None else entry.info.input_size[0]
    hw = tuple(input_size) if input_size is not None else entry.info.input_size[1:]
    model.info = dataclasses.replace(entry.info, input_size=(c, *hw))
    # what the architecture keeps fixed (LeNet-5's RBF prototypes, airbench's BatchNorm scales):
    # freezing and unfreezing for transfer learning leave these alone
    model.fixed_parameters = frozenset(n for n, p in model.named_parameters() if not p.requires_grad)
    return model


_BUILT_IN = ("num_classes", "in_chans", "input_size")


def model_options(name: str) -> list[str] | None:
    """The builder-specific options (``create_model`` keyword arguments besides ``num_classes``,
    ``in_chans`` and ``input_size``) the model ``name`` takes, sorted; ``None`` where they cannot
    be read from the signatures (nothing is checked then).

    A builder that passes ``**kwargs`` on to its model class also takes those arguments of the
    class's ``__init__`` (found through the builder's return annotation) that have a default and
    that the builder does not fix itself (``depth`` of ``resnet20``: a variable of its closure).

    Raises:
        UnknownNameError: unknown model name.
    """
    builder = MODELS.get(name).builder
    params = inspect.signature(builder).parameters.values()
    names = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    if any(p.kind is p.VAR_KEYWORD for p in params):
        try:
            cls = typing.get_type_hints(builder).get("return")
        except Exception:  # an annotation that does not resolve: do not guess
            return None
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            return None
        init = inspect.signature(cls.__init__).parameters.values()
        if any(p.kind is p.VAR_KEYWORD for p in init):
            return None
        names |= {p.name for p in init if p.default is not p.empty} - set(builder.__code__.co_freevars)
    return sorted(names - set(_BUILT_IN))


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Every module of ``model`` in inference mode (``eval()``) inside the block; afterwards each
    module's own mode is restored, not just the model's: a BatchNorm frozen in eval mode inside a
    model that trains (fine-tuning with a frozen base) stays frozen after an evaluation, a
    Grad-CAM or a summary.
    """
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, training in modes:
            m.training = training


def param_dtype(model: nn.Module) -> torch.dtype:
    """The dtype of the model's first floating-point parameter (``torch.float32`` if it has none):
    what its input must be (a bfloat16 or float64 model refuses float32 input)."""
    return next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (elements), all or only those with ``requires_grad``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
