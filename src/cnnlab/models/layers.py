"""Building blocks shared by several model families."""
from __future__ import annotations

import torch
from torch import nn


def dropout_mask(x: torch.Tensor, p: float) -> torch.Tensor:
    """Inverted-dropout multiplier shaped, strided and typed like ``x``: 0 with probability ``p``,
    ``1 / (1 - p)`` otherwise.

    Why not ``torch.rand_like(x) < p``: the generator's cost is per element produced, so we draw
    one full-range int64 per four elements and read it as four independent uniform int16 values.
    ``p`` is thereby quantised to a multiple of 1/65536 (error below 8e-6). The multiplier is in
    ``x``'s dtype because a same-dtype multiply is the fastest way to apply it, forward and
    backward (``masked_fill_`` and ``where`` are 4-10x slower on CPU).
    """
    n = x.numel()
    raw = torch.empty((n + 3) // 4, dtype=torch.int64, device=x.device).random_(-2 ** 63, None)
    bits = raw.view(torch.int16)[:n]
    dense = x.is_contiguous() or (x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last))
    # the same memory layout as x (NCHW or channels_last); a strided view of another tensor
    # (x[:, ::2]) gets a contiguous mask
    bits = bits.as_strided(x.shape, x.stride()) if dense else bits.view(x.shape)
    keep = bits >= round(p * 65536) - 32768
    return keep.to(x.dtype).mul_(1.0 / (1.0 - p))


class Dropout(nn.Module):
    """Inverted dropout (Srivastava et al. 2014, JMLR 15) with a fast CPU mask.

    Same semantics as ``nn.Dropout(p)``: in training, each element is zeroed with probability
    ``p`` and the survivors are scaled by ``1 / (1 - p)``; in eval mode it is the identity.
    Shape, dtype and memory format are kept. Why not ``nn.Dropout``: on CPU its ``bernoulli_``
    kernel runs single-threaded (about 82 M elements/s on the benchmark machine, 23-41% of a whole
    training step of the small MNIST CNN); :func:`dropout_mask` and one multiply forward and
    backward are several times faster.

    Raises:
        ValueError: ``p`` outside [0, 1).
    """

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` with a fraction ``p`` of its elements zeroed and the rest scaled by ``1 / (1 - p)``
        in training; ``x`` itself in evaluation. Same shape and dtype."""
        if not self.training or self.p == 0.0:
            return x
        return x * dropout_mask(x, self.p)

    def extra_repr(self) -> str:
        """The layer's settings, shown by ``print(model)``."""
        return f"p={self.p}"


class DropPath(nn.Module):
    """Stochastic depth (Huang, Sun, Liu, Sedra & Weinberger 2016, "Deep Networks with Stochastic
    Depth", ECCV; timm's ``DropPath``) for a residual branch.

    In training, the whole branch output of each sample is zeroed with probability ``p`` and the
    survivors are scaled by ``1 / (1 - p)``, so the block is the identity shortcut alone for that
    sample; in eval mode it is the identity. ``(N, ...)`` -> same shape, dtype and memory format.

    Raises:
        ValueError: ``p`` outside [0, 1).
    """

    def __init__(self, p: float = 0.0):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"drop-path probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` with each sample kept (scaled by ``1 / (1 - p)``) or zeroed whole, in training."""
        if not self.training or self.p == 0.0:
            return x
        keep = torch.rand((x.shape[0],) + (1,) * (x.dim() - 1), device=x.device) >= self.p
        return x * keep.to(x.dtype).div_(1.0 - self.p)

    def extra_repr(self) -> str:
        """The layer's settings, shown by ``print(model)``."""
        return f"p={self.p:.3g}"


class FlattenNHWC(nn.Module):
    """Flatten ``(N, C, H, W)`` to ``(N, H * W * C)`` in channel-last order, as Keras' ``Flatten``.

    For a dense layer after a convolutional base the order is only a fixed permutation of its
    weights, but this one is a free view of a channels_last tensor, where ``nn.Flatten``'s
    (C, H, W) order forces a copy forward and a layout conversion of the gradient backward (10-20%
    of a training step of the seed MNIST CNNs). It also matches Keras' order, so a Keras model's
    dense weights map over without permutation. Used by the models translated from Keras seeds;
    torchvision-compatible models keep ``nn.Flatten`` for their published weights.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` -> ``(N, H * W * C)`` in Keras' channels-last order; other ranks flatten."""
        return x.permute(0, 2, 3, 1).flatten(1) if x.dim() == 4 else x.flatten(1)


def torchvision_init(model: nn.Module, conv_mode: str = "fan_out", linear_std: float | None = 0.01,
                     zero_linear_bias: bool = True) -> None:
    """Initialise ``model`` in place as torchvision's reference models do, so that training from
    scratch matches their recipes: He et al. 2015 normal init for every conv weight (``conv_mode``
    ``"fan_out"`` or ``"fan_in"``, ReLU gain) and zero conv biases; BatchNorm weight 1, bias 0;
    dense weights ``N(0, linear_std)`` (left at PyTorch's default where ``linear_std`` is None)
    and, with ``zero_linear_bias``, zero dense biases. Modules are visited in
    ``model.modules()`` order, so a seeded run draws the same numbers as torchvision's loop.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode=conv_mode, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            if linear_std is not None:
                nn.init.normal_(m.weight, 0, linear_std)
            if zero_linear_bias:
                nn.init.zeros_(m.bias)


class LocalResponseNorm(nn.LocalResponseNorm):
    """Local response normalisation across channels (Krizhevsky et al. 2012, "ImageNet
    classification with deep convolutional neural networks", NeurIPS, §3.3), computed fast.

    Same parameters and results as ``nn.LocalResponseNorm(size, alpha, beta, k)`` (tested to match
    forward and backward): ``b_c = a_c / (k + alpha / size * sum_{c'} a_{c'}^2) ** beta``, the sum
    over channels ``c - size // 2 .. c + (size - 1) // 2`` that exist. PyTorch divides ``alpha``
    by ``size``; the paper does not.

    Why: PyTorch computes the window sum with ``avg_pool3d`` on a padded 5-D copy, which has no
    bfloat16 CPU kernel (autocast runs it in float32) and is slow forward and backward: ~260 ms for
    one 128x96x16x16 activation on one core, about a third of a ZFNet-CIFAR training step. Here the
    window sum is a 1x1 convolution with a fixed 0/1 band matrix (one GEMM in either memory
    format, bf16 under autocast), then the scale is computed in float32 (~57 ms, 4.6x faster).

    Input ``(N, C, H, W)`` (any other rank falls back to PyTorch's version); output the same shape
    and memory format, float32 under CPU bf16 autocast as PyTorch's (the next layer casts it), the
    input's dtype otherwise (a model cast to bfloat16 gets bfloat16 maps for its next conv).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Float ``(N, C, H, W)`` -> the normalised maps, same shape and memory format (float32 for a
        bfloat16 input under autocast, the input's dtype otherwise); other ranks go to
        ``nn.LocalResponseNorm``."""
        if x.dim() != 4:
            return super().forward(x)
        c = x.shape[1]
        i = torch.arange(c, device=x.device)
        offset = i[None, :] - i[:, None]  # [out, in]: in - out
        band = (offset >= -(self.size // 2)) & (offset <= (self.size - 1) // 2)
        window_sum = nn.functional.conv2d(x * x, band.to(x.dtype).view(c, c, 1, 1))
        dtype = torch.promote_types(x.dtype, torch.float32)  # bf16 -> float32, float64 stays
        scale = window_sum.to(dtype).mul_(self.alpha / self.size).add_(self.k).pow_(-self.beta)
        out = x * scale
        # outside autocast a float32 result would meet the bfloat16 weights of the next conv
        if out.dtype == x.dtype or (x.device.type != "meta" and torch.is_autocast_enabled(x.device.type)):
            return out
        return out.to(x.dtype)


def conv3x3(cin: int, cout: int, stride: int = 1, bias: bool = True) -> nn.Conv2d:
    """3x3 convolution with 'same' padding for stride 1 (Keras ``padding='same'``)."""
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=bias)


def _has_fused_conv_relu() -> bool:
    try:
        return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise")
    except (AttributeError, RuntimeError):
        return False


def _has_onednn_bf16() -> bool:
    # oneDNN's bf16 convolution needs AVX512-BW/VL/DQ or AVX-NE-CONVERT; on an AVX2-only CPU it
    # raises, while nn.Conv2d falls back to PyTorch's own (slow, emulated) bf16 kernel
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


_FUSED_CONV_RELU = _has_fused_conv_relu()
_ONEDNN_BF16 = _FUSED_CONV_RELU and _has_onednn_bf16()


class _ConvReLUFunction(torch.autograd.Function):
    """``relu(conv2d(x, w, b))`` in one oneDNN call forward (ReLU as a post-op), and the matching
    backward: ReLU's gradient from the saved output, then PyTorch's own convolution backward."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, dilation):
        y = torch.ops.mkldnn._convolution_pointwise(x, weight, bias, padding, stride, dilation, 1,
                                                     "relu", [None], None)
        ctx.save_for_backward(x, weight, y)
        ctx.conf = (stride, padding, dilation)
        return y

    @staticmethod
    def backward(ctx, grad_y):
        x, weight, y = ctx.saved_tensors
        stride, padding, dilation = ctx.conf
        g = torch.ops.aten.threshold_backward(grad_y, y, 0)
        has_bias = ctx.needs_input_grad[2]
        grad_x, grad_w, grad_b = torch.ops.aten.convolution_backward(
            g, x, weight, [weight.shape[0]] if has_bias else None, stride, padding, dilation, False,
            [0, 0], 1, [ctx.needs_input_grad[0], ctx.needs_input_grad[1], has_bias])
        return grad_x, grad_w, grad_b, None, None, None


class Conv2dReLU(nn.Conv2d):
    """``nn.Conv2d`` followed by ReLU, fused on CPU: same parameters, state-dict keys and results
    as ``nn.Sequential(conv, nn.ReLU())`` (tested to match exactly), faster to train. One
    exception: the fused ReLU maps NaN to 0 where ``nn.ReLU`` keeps NaN, so NaN weights may leave
    the loss finite; :class:`~cnnlab.training.Trainer` checks the weights after every epoch.

    Why: a separate ReLU reads and writes the whole activation once more forward; after a wide
    first layer (128 x 28 x 28 per image in ``mnist-cnn-wide``) that pass is ~8% of a bf16 training
    step. On CPU builds with oneDNN the forward runs as one convolution with a ReLU post-op; the
    backward applies ReLU's gradient from the saved output, then the stock convolution backward.
    Elsewhere (CUDA, torch.compile, ONNX export, groups, non-zero padding modes, bf16 on a CPU
    without oneDNN's bf16 convolution, i.e. without AVX-512) it is ``relu(conv(x))``.
    Under CPU autocast the input and weights are cast to the autocast dtype, as ``nn.Conv2d``'s
    would be. Input ``(N, C_in, H, W)``, output ``(N, C_out, H', W')``, non-negative; no double
    backward on the fused path.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``relu(conv(x))``: float ``(N, C_in, H, W)`` -> ``(N, C_out, H', W')``, fused where the
        class docstring says."""
        if (not _FUSED_CONV_RELU or x.device.type != "cpu" or self.weight.device.type != "cpu"
                or self.groups != 1
                or self.padding_mode != "zeros" or isinstance(self.padding, str)
                or torch.jit.is_scripting() or torch.onnx.is_in_onnx_export()
                or torch.compiler.is_compiling()):  # the compiler fuses conv + ReLU itself
            return torch.relu(super().forward(x))
        w, b = self.weight, self.bias
        if torch.is_autocast_enabled("cpu"):
            dt = torch.get_autocast_dtype("cpu")
            x, w, b = x.to(dt), w.to(dt), (b.to(dt) if b is not None else None)
        if x.dtype != torch.float32 and not (x.dtype == torch.bfloat16 and _ONEDNN_BF16):
            return torch.relu(super().forward(x))  # no oneDNN kernel for it on this CPU
        return _ConvReLUFunction.apply(x, w, b, list(self.stride), list(self.padding), list(self.dilation))


def conv3x3_relu(cin: int, cout: int, stride: int = 1, bias: bool = True) -> Conv2dReLU:
    """:func:`conv3x3` followed by ReLU, fused (:class:`Conv2dReLU`)."""
    return Conv2dReLU(cin, cout, 3, stride=stride, padding=1, bias=bias)
