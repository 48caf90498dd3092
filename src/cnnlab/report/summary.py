"""A Keras-style model summary: layer (type), output shape, parameter count, totals.

Counts follow Keras: BatchNorm's running mean and variance count as non-trainable parameters (so
a BatchNorm over 32 channels shows 128, as in the seeds' tables); frozen parameters count as
non-trainable too. Output shapes are PyTorch's NCHW with ``None`` for the batch dimension.
"""
from __future__ import annotations

import torch
from torch import nn

from ..models.base import eval_mode, param_dtype

_STAT_BUFFERS = ("running_mean", "running_var")


def _own_counts(m: nn.Module) -> tuple[int, int]:
    trainable = sum(p.numel() for p in m.parameters(recurse=False) if p.requires_grad)
    frozen = sum(p.numel() for p in m.parameters(recurse=False) if not p.requires_grad)
    frozen += sum(b.numel() for n, b in m.named_buffers(recurse=False) if n in _STAT_BUFFERS)
    return trainable, frozen


def _with_channels(model: nn.Module, input_size: tuple[int, ...]) -> tuple[int, ...]:
    """(H, W) -> (C, H, W) with a cnnlab model's own channels; other sizes as given."""
    own = getattr(getattr(model, "info", None), "input_size", None)
    if own is not None and len(input_size) == len(own) - 1:
        return (own[0], *input_size)
    return tuple(input_size)


def summary_rows(model: nn.Module, input_size: tuple[int, ...] | None = None
                 ) -> tuple[list[tuple[str, str, str, int]], int, int]:
    """Run one example through ``model`` and record each layer.

    Args:
        model: any ``nn.Module`` taking float ``(N, C, H, W)`` (or ``(N, C, L)``) input; the example
            is zeros in the dtype of its first floating-point parameter (float32 if none).
        input_size: (C, H, W) of one example, or (H, W) for a cnnlab model (its channels);
            default ``model.info.input_size`` (cnnlab's models).

    Returns:
        ``(rows, trainable, non_trainable)``, rows of (name, type, output shape, params), in call
        order.

    Raises:
        ValueError: no ``input_size`` for a model without cnnlab's ``info``; an ``input_size`` whose
            channels or size a cnnlab model refuses (:meth:`ImageClassifier.forward
            <cnnlab.models.base.ImageClassifier.forward>`).
        RuntimeError: another model does not accept an input of ``input_size`` (PyTorch's message).
    """
    if input_size is None:
        info = getattr(model, "info", None)
        if info is None or getattr(info, "input_size", None) is None:
            raise ValueError(f"summary of a {type(model).__name__}: give input_size, the (C, H, W) "
                             "of one example (only cnnlab's models know their own)")
        input_size = info.input_size
    input_size = _with_channels(model, input_size)
    rows, seen = [], set()
    hooks = []
    for name, m in model.named_modules():
        own = _own_counts(m)
        if name and (not list(m.children()) or sum(own)):
            def hook(mod, inp, out, name=name, own=own):
                if name in seen:  # a module called twice (shared) is listed once
                    return
                seen.add(name)
                shape = tuple(out.shape) if torch.is_tensor(out) else "?"
                shape_s = "(None, " + ", ".join(map(str, shape[1:])) + ")" if shape != "?" else "?"
                rows.append((name, type(mod).__name__, shape_s, sum(own)))
            hooks.append(m.register_forward_hook(hook))
    # the example goes where the model is, in its dtype (a bfloat16 model refuses float32 input)
    device = next(model.parameters(), torch.empty(0)).device
    dtype = param_dtype(model)
    try:
        with eval_mode(model), torch.no_grad():
            model(torch.zeros(1, *input_size, device=device, dtype=dtype))
    finally:
        for h in hooks:
            h.remove()
    # totals over the model's distinct tensors: a weight two layers share counts once
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    frozen += sum(b.numel() for n, b in model.named_buffers() if n.rsplit(".", 1)[-1] in _STAT_BUFFERS)
    return rows, trainable, frozen


def summary(model: nn.Module, input_size: tuple[int, ...] | None = None, width: int = 80) -> str:
    """The summary table as text (what ``cnnlab summary MODEL`` prints).

    Raises:
        ValueError: no ``input_size`` for a model without cnnlab's ``info``; an ``input_size`` whose
            channels or size a cnnlab model refuses (:meth:`ImageClassifier.forward
            <cnnlab.models.base.ImageClassifier.forward>`).
        RuntimeError: another model does not accept an input of ``input_size`` (PyTorch's message).
    """
    rows, trainable, frozen = summary_rows(model, input_size)
    c1, c2 = 44, 24
    name = getattr(getattr(model, "info", None), "name", type(model).__name__)
    size = _with_channels(model, input_size) if input_size else model.info.input_size
    lines = [f'Model: "{name}"  (input NCHW: (None, {", ".join(map(str, size))}))', "_" * width,
             f"{'Layer (type)':<{c1}}{'Output Shape':<{c2}}{'Param #':>{width - c1 - c2}}", "=" * width]
    for i, (n, t, shape, p) in enumerate(rows):
        label = f"{n} ({t})"
        if len(label) >= c1:
            label = label[:c1 - 2] + "…"
        lines.append(f"{label:<{c1}}{shape:<{c2}}{p:>{width - c1 - c2},}")
        lines.append("=" * width if i == len(rows) - 1 else "_" * width)
    lines += [f"Total params: {trainable + frozen:,}", f"Trainable params: {trainable:,}",
              f"Non-trainable params: {frozen:,}", "_" * width]
    return "\n".join(lines)
