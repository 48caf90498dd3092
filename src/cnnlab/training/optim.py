"""Optimizers, learning-rate schedules and losses, built from a recipe's fields."""
from __future__ import annotations

import math

import torch
from torch import nn
import torch.nn.functional as F

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop", "adadelta")
SCHEDULES = ("none", "step", "multistep", "exponential", "cosine", "onecycle")


def build_optimizer(params, name: str, lr: float, *, momentum: float = 0.9, nesterov: bool = False,
                    weight_decay: float = 0.0, betas=(0.9, 0.999), eps: float | None = None,
                    fused: bool = True) -> torch.optim.Optimizer:
    """Make an optimizer: Adam (Kingma & Ba 2015), AdamW (Loshchilov & Hutter 2019), SGD with
    momentum, optionally Nesterov's (Sutskever et al. 2013), RMSprop (Tieleman & Hinton 2012) or
    Adadelta (Zeiler 2012; PyTorch's rho 0.9 and eps 1e-6, as pytorch/examples' MNIST script).
    ``weight_decay`` is L2 added to the gradient (Adam, SGD, RMSprop) or decoupled (AdamW).
    RMSprop takes Keras' rho 0.9 and eps 1e-7, since the seeds that use it are Keras notebooks,
    in PyTorch's update ``g / (sqrt(v) + eps)``; Keras' is ``g / sqrt(v + eps)``, which damps
    the steps of weights whose gradients are tiny far more (as an eps of about 3e-4 outside the
    root would), so steps on such weights can be larger here. ``eps`` (Adam, AdamW, RMSprop,
    Adadelta): None for the defaults above (PyTorch's 1e-8 for Adam and AdamW; Keras uses 1e-7).
    ``params`` may be parameter groups (:func:`weight_decay_groups`).

    ``fused``: Adam, AdamW and SGD use PyTorch's fused kernels (``fused=True``: one pass over each
    parameter per step) where every parameter is a float tensor on the CPU or a CUDA GPU; else,
    and for RMSprop, the multi-tensor ``foreach`` kernels, which cut per-step overhead but
    allocate and walk memory once per arithmetic op. The fused update made AlexNet's training
    steps (23M parameters, batch 32) 1.5x faster on a 2-core CPU and changes little for small
    models (benchmarks/FUSED_OPTIMIZER.md). The two differ only by float rounding.

    Raises:
        ValueError: unknown optimizer name.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")
    # lists, so that checking them for the fused kernels does not use up a generator
    params = [{**p, "params": list(p["params"])} if isinstance(p, dict) else p for p in params]
    kw = ({"fused": True} if fused and name in ("adam", "adamw", "sgd") and _fusable(params)
          else {"foreach": True})
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=betas, eps=eps or 1e-8, weight_decay=weight_decay, **kw)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=betas, eps=eps or 1e-8, weight_decay=weight_decay, **kw)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=nesterov,
                               weight_decay=weight_decay, **kw)
    if name == "adadelta":
        return torch.optim.Adadelta(params, lr=lr, rho=0.9, eps=eps or 1e-6, weight_decay=weight_decay, **kw)
    return torch.optim.RMSprop(params, lr=lr, alpha=0.9, eps=eps or 1e-7, momentum=0.0,
                               weight_decay=weight_decay, **kw)


def _fusable(params: list) -> bool:
    """Whether PyTorch's fused optimizer kernels take these parameters (or parameter groups)."""
    tensors = [t for p in params for t in (p["params"] if isinstance(p, dict) else [p])]
    return all(t.is_floating_point() and t.device.type in ("cpu", "cuda") for t in tensors)


def load_optimizer_state(optimizer: torch.optim.Optimizer, state_dict: dict) -> None:
    """``optimizer.load_state_dict`` that keeps ``optimizer``'s own kernel choice (``fused`` /
    ``foreach``): a saved state carries the kernels of the run that saved it (foreach in states
    written before cnnlab used the fused ones), an implementation setting rather than training
    state.

    Raises:
        ValueError: (from ``load_state_dict``) the saved parameter groups or their sizes do not
            match ``optimizer``'s.
    """
    kernels = [{k: g.get(k) for k in ("fused", "foreach")} for g in optimizer.param_groups]
    optimizer.load_state_dict(state_dict)
    for group, kept in zip(optimizer.param_groups, kernels):
        group.update(kept)


def weight_decay_groups(model: nn.Module) -> list[dict]:
    """Parameter groups that exempt biases and normalisation weights from weight decay: every
    parameter with fewer than 2 dimensions goes into a group with ``weight_decay=0`` (timm's
    ``filter_bias_and_bn``; decaying a BatchNorm scale only fights the normalisation). Pass the
    result to :func:`build_optimizer` in place of ``model.parameters()``.
    """
    return parameter_groups(model, filter_bias_and_bn=True)


NORM_LAYERS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def parameter_groups(model: nn.Module, *, filter_bias_and_bn: bool = False, lr: float | None = None,
                     weight_decay: float = 0.0, norm_bias_lr_scale: float = 1.0) -> list[dict]:
    """The trainable parameters of ``model`` as optimizer parameter groups, the first holding the
    weights (its ``lr`` and ``weight_decay`` are the optimizer's own, so logs read group 0).

    Args:
        filter_bias_and_bn: biases and normalisation weights (every parameter with fewer than 2
            dimensions) get ``weight_decay=0`` (see :func:`weight_decay_groups`).
        norm_bias_lr_scale: learning-rate multiplier for the biases (shifts) of normalisation
            layers (BatchNorm, GroupNorm, LayerNorm); airbench94 trains them at 64x (its
            ``bias_scaler``, Jordan 2024, arXiv:2404.00498). Their weight-decay coefficient is
            divided by the same factor, so the decay each step applies (lr x coefficient) is
            unchanged, as in airbench. 1: no such group. Needs ``lr`` and ``weight_decay`` (the
            optimizer's), which the group's own values are computed from.

    Returns:
        ``[{"params": weights}, {"params": ..., "weight_decay": 0.0}?, {"params": norm biases,
        "lr": ..., "weight_decay": ...}?]``: the second group with ``filter_bias_and_bn`` (even
        when empty), the third where ``norm_bias_lr_scale`` != 1 and the model has such biases.

    Raises:
        ValueError: ``norm_bias_lr_scale`` <= 0, or != 1 without ``lr``.
    """
    if norm_bias_lr_scale <= 0:
        raise ValueError(f"norm_bias_lr_scale must be > 0, got {norm_bias_lr_scale}")
    if norm_bias_lr_scale != 1 and lr is None:
        raise ValueError("parameter_groups: norm_bias_lr_scale != 1 needs the optimizer's lr")
    scaled: dict[int, nn.Parameter] = {}
    if norm_bias_lr_scale != 1:
        for m in model.modules():
            if isinstance(m, NORM_LAYERS) and m.bias is not None and m.bias.requires_grad:
                scaled[id(m.bias)] = m.bias
    decay, no_decay, seen = [], [], set(scaled)
    for p in model.parameters():
        if p.requires_grad and id(p) not in seen:
            seen.add(id(p))
            (no_decay if filter_bias_and_bn and p.ndim < 2 else decay).append(p)
    groups = [{"params": decay}]
    if filter_bias_and_bn:  # kept even when empty: saved optimizer states have this group
        groups.append({"params": no_decay, "weight_decay": 0.0})
    if scaled:
        groups.append({"params": list(scaled.values()), "lr": lr * norm_bias_lr_scale,
                       "weight_decay": 0.0 if filter_bias_and_bn else weight_decay / norm_bias_lr_scale})
    return groups


def build_scheduler(optimizer, name: str, *, epochs: int, steps_per_epoch: int, step_size: int = 30,
                    gamma: float = 0.1, warmup_epochs: float = 0.0, max_lr: float | None = None,
                    milestones=()):
    """Make an LR schedule. Returns ``(scheduler or None, step_per_batch)``.

    - ``step``: multiply by ``gamma`` every ``step_size`` epochs.
    - ``multistep``: multiply by ``gamma`` at each epoch in ``milestones`` (fractions allowed:
      He et al. 2015 drop at 50% and 75% of training).
    - ``exponential``: multiply by ``gamma`` every epoch (the seed's "LR x 0.9 each epoch").
    - ``cosine``: cosine decay to 0 over the run, per batch (Loshchilov & Hutter 2017).
    - ``onecycle``: Smith & Topin 2019, peak ``max_lr`` (default: each group's lr), per batch.
      Like PyTorch's ``OneCycleLR`` and fastai's ``fit_one_cycle``, it also cycles the momentum
      (SGD, RMSprop) or Adam's beta1 inversely to the LR, between 0.95 and 0.85; this replaces the
      recipe's ``momentum`` / beta1 for the run (Adadelta has neither: only its LR cycles).
    - ``none``: the optimizer's constant rate (no scheduler), or, with ``warmup_epochs``, the
      warm-up alone and the constant rate after it.
    ``warmup_epochs`` > 0 prepends a linear warm-up from ``lr / warm-up steps`` to ``lr`` (per
    batch) to none/step/multistep/cosine/exponential (Goyal et al. 2017). Cosine decays over the
    steps after the warm-up; step, multistep and exponential count their epochs from the start of
    training, as Goyal et al. and timm do (exponential with 2 warm-up epochs: the warm-up to
    ``lr``, then ``lr * gamma**2`` from epoch 2).

    Raises:
        ValueError: unknown schedule name.
    """
    S = torch.optim.lr_scheduler
    total = max(1, epochs * steps_per_epoch)
    warm = int(round(warmup_epochs * steps_per_epoch))
    if name == "none" and not warm:
        return None, False
    if name == "onecycle":
        # each group peaks at its own lr (a recipe's lr, or a scaled one, see parameter_groups)
        lr = max_lr or [g["lr"] for g in optimizer.param_groups]
        # the warm-up share must stay below 1 (a 1-epoch run of a recipe with 1 warm-up epoch)
        pct = min(warm / total, 0.9) if warm else 0.25
        if math.isclose(pct * total, 1.0):  # a warm-up of one step (25% of 4 steps): PyTorch peaks
            pct = (1 - 1e-6) / total  # at step pct * total - 1 = 0 and divides by 0; peak there
        # momentum is cycled where the optimizer has one (not Adadelta)
        cycle = any(k in optimizer.defaults for k in ("momentum", "betas"))
        return S.OneCycleLR(optimizer, max_lr=lr, total_steps=total, pct_start=pct,
                            cycle_momentum=cycle), True
    if name == "none":
        def f(step):
            return (step + 1) / warm if step < warm else 1.0
    elif name == "cosine":
        def f(step):
            if step < warm:
                return (step + 1) / warm
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))
    elif name == "step":
        def f(step):
            return (step + 1) / warm if step < warm else gamma ** ((step // steps_per_epoch) // step_size)
    elif name == "multistep":
        marks = sorted(int(round(m * steps_per_epoch)) for m in milestones)

        def f(step):
            if step < warm:
                return (step + 1) / warm
            return gamma ** sum(step >= m for m in marks)
    elif name == "exponential":
        def f(step):
            return (step + 1) / warm if step < warm else gamma ** (step // steps_per_epoch)
    else:
        raise ValueError(f"unknown schedule {name!r}; choose one of {', '.join(SCHEDULES)}")
    # every schedule runs per batch, so warm-up and decay are smooth and resumable by step count
    return S.LambdaLR(optimizer, f), True


def classification_loss(label_smoothing: float = 0.0, binary: bool = False,
                        class_weight: torch.Tensor | None = None):
    """Cross-entropy on logits (optionally with label smoothing, Szegedy et al. 2016), or, with
    ``binary``, binary cross-entropy on one logit per example (labels 0/1).

    Args:
        class_weight: float32 ``(K,)`` (``(2,)`` for ``binary``): each example's loss is multiplied
            by its class's weight and the batch mean taken over examples, as Keras'
            ``fit(class_weight=...)`` does (not PyTorch's ``CrossEntropyLoss(weight=)``, which
            divides by the sum of the weights).

    Returns:
        ``loss(logits float (N, K) or (N, 1), labels int64 (N,)) -> scalar``, float32 also for
        bf16 logits under autocast (which computes cross-entropy in float32; the binary loss
        casts its logits and targets itself).
    """
    def weighted(per_example, y):
        return per_example.mul(class_weight.to(per_example.device)[y]).mean()

    if binary:
        def bce(logits, y):
            # in float32: bf16 targets would round the smoothed 0.95 / 0.05 to 0.9492 / 0.05005
            logits, target = logits.squeeze(1).float(), y.to(torch.float32)
            if label_smoothing:
                target = target * (1 - label_smoothing) + 0.5 * label_smoothing
            if class_weight is None:
                return F.binary_cross_entropy_with_logits(logits, target)
            return weighted(F.binary_cross_entropy_with_logits(logits, target, reduction="none"), y)
        return bce
    if class_weight is None:
        return nn.CrossEntropyLoss(label_smoothing=label_smoothing)

    def ce(logits, y):
        return weighted(F.cross_entropy(logits, y, label_smoothing=label_smoothing, reduction="none"), y)
    return ce
