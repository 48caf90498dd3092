"""Runs: train a recipe end to end and keep everything it produced in one folder.

A run folder holds::

    recipe.json          the resolved recipe, the dataset's provenance, machine and versions
                         (where the run began; ``resumed`` lists each resumption's epoch, machine and
                         resolved device / precision / processes, ``first_resolved`` the first piece's;
                         ``pretrained`` the weights file a recipe's ``pretrained`` resolved to)
    metrics.csv          one row per epoch: loss, accuracy, val_loss, val_accuracy, learning_rate, time_s
    best.safetensors     weights of the best epoch by ``recipe.monitor`` on the validation split
                         (on the training split where ``val_fraction`` is 0)
    last.safetensors     weights after the last finished epoch
                         (both: the EMA of the weights where the recipe sets ``ema_decay``)
    last_state.pt        weights (and their EMA), optimizer, schedule, callbacks, RNG and
                         history: what resuming needs
    test_metrics.json    final evaluation of the best weights on the official test split
    curves.png           accuracy and loss curves, training vs validation
    confusion_matrix.png the test split's confusion matrix (counts; colour: share of the true class)
    predictions_best.png, predictions_worst.png
                         the most confident correct and wrong test predictions (seed 003's grids)

Every file is written atomically, after every epoch, so a run killed mid-epoch resumes from the
last finished epoch (``cnnlab train --resume RUN_DIR``) and loses at most that epoch; its
``train_time_s`` is then the training time of all the pieces together. A new best checkpoint is
first written as ``best.pending.safetensors`` and renamed to ``best.safetensors`` once the
epoch's ``last_state.pt`` is saved, so the two never disagree after a kill.
"""
from __future__ import annotations

import csv
import io
import json
import os
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import torch
from pydantic import ValidationError
from torch import nn

from . import data as _data  # noqa: F401  (registers datasets)
from . import distributed
from ._io import write_json, write_text
from .checkpoint import load_state, load_weights, save_state, save_weights
from .data.core import ImageDataset, load_dataset, stratified_split
from .data.loader import BatchLoader
from .device import describe_machine, flush_denormals, native_bf16, resolve_device, resolve_precision
from .models import create_model
from .recipes import Recipe, RecipeError, get_recipe
from .registry import did_you_mean
from .training import (EarlyStopping, FreezeAfter, History, Lookahead, ModelCheckpoint,
                       ReduceLROnPlateau, Trainer, build_optimizer, build_scheduler, classification_loss,
                       evaluate as _evaluate, load_optimizer_state, parameter_groups, predicted_labels)
from .transfer import freeze_before, keep_running_stats, load_pretrained

METRIC_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "time_s")


@dataclass
class Run:
    """The outcome of a training run.

    Attributes:
        dir: the run folder.
        recipe: the resolved recipe.
        model: the trained model in eval mode, with the best weights (``load_run``: the
            ``weights`` asked for; on the other processes of a torchrun job: the last epoch's).
        history: per-epoch metrics.
        test_metrics: the test split's figures, as in ``test_metrics.json``: ``loss`` (the
            training loss: mean cross-entropy with the recipe's label smoothing, or binary
            cross-entropy), ``accuracy`` (top-1, a fraction), ``correct``, ``total``,
            ``top5_accuracy`` (more than 5 classes), ``per_class_accuracy``, ``confusion_matrix``
            (rows: true class), ``classification_report``, ``most_confused``, with test-time
            augmentation ``tta`` and ``accuracy_without_tta``; and ``weights``, ``best_epoch``
            (1-based), ``monitor``, ``epochs_run``, ``train_time_s`` (seconds), ``precision``,
            ``dataset_lossy``. Empty on the non-zero ranks of a torchrun job.
        dataset: the dataset used (in memory).
    """

    dir: Path
    recipe: Recipe
    model: nn.Module
    history: History
    test_metrics: dict = field(default_factory=dict)
    dataset: ImageDataset | None = None

    def test_line(self) -> str:
        """``Test set: Average loss: 0.0296, Accuracy: 9793/10000 (97.93%)``."""
        return format_test_line(self.test_metrics)

    def normalize(self, pixels: torch.Tensor) -> torch.Tensor:
        """The model's input for raw pixels, as the run's training prepared it: uint8
        ``(N, C, H, W)`` 0-255 (or float signals ``(N, C, L)``) -> float32 ``(x / 255 - mean) / std``
        with the run's per-channel mean and std (``recipe.json``), on the model's device. For
        :func:`cnnlab.explain.grad_cam` and your own calls of ``run.model``; files go through
        :func:`cnnlab.predict`, which reads and resizes them too.

        Raises:
            ValueError: ``pixels`` whose channels are not the run's.
        """
        meta = run_meta(self.dir)["dataset"]
        c = meta["image_shape"][0]
        if pixels.dim() < 2 or pixels.shape[1] != c:
            raise ValueError(f"the run's model takes {c}-channel input {tuple(meta['image_shape'])} "
                             f"(NCHW); got pixels of shape {tuple(pixels.shape)}")
        from .inference import WithNormalisation  # predict's and the ONNX export's normalisation
        dev = next(self.model.parameters()).device
        norm = WithNormalisation(nn.Identity(), meta["mean"], meta["std"], images=len(meta["image_shape"]) == 3)
        return norm.to(dev)(pixels.to(dev))


def format_test_line(m: dict) -> str:
    """The one-line test summary printed after training and by ``cnnlab evaluate``, from a
    test-metrics dict (``loss``, ``correct``, ``total``, ``accuracy`` and, with TTA, ``tta`` and
    ``accuracy_without_tta``; accuracies as fractions, printed in %)."""
    line = (f"Test set: Average loss: {m['loss']:.4f}, Accuracy: {m['correct']}/{m['total']} "
            f"({100.0 * m['accuracy']:.2f}%)")
    if "accuracy_without_tta" in m:
        line += f" with {m['tta']} TTA; without: {100.0 * m['accuracy_without_tta']:.2f}%"
    return line


def _binary(model: nn.Module) -> bool:
    """Whether ``model`` ends in one sigmoid logit (a two-class model, `binary` in its options)."""
    return getattr(model, "num_classes", None) == 1


def _names(keys: list[str], show: int = 4) -> str:
    """``["a.weight", "a.bias", ...]`` -> ``"a.weight, a.bias, ... (9)"`` for log lines."""
    if not keys:
        return "none"
    return ", ".join(keys[:show]) + (f", ... ({len(keys)})" if len(keys) > show else "")


def _build(recipe: Recipe, ds: ImageDataset, device: torch.device) -> nn.Module:
    if recipe.model_kwargs.get("binary") and ds.num_classes != 2:  # else it fails at the first batch
        raise RecipeError(f"model_kwargs.binary=true is one sigmoid logit for two classes; dataset "
                          f"{ds.name!r} has {ds.num_classes}: leave binary out")
    num_classes = 1 if recipe.model_kwargs.get("binary") else ds.num_classes
    kwargs = {k: v for k, v in recipe.model_kwargs.items() if k != "binary"}
    shape = ds.image_shape
    try:
        model = create_model(recipe.model, num_classes=num_classes, in_chans=shape[0],
                             input_size=shape[1:] if len(shape) == 3 else None, **kwargs)
    except TypeError as e:  # an option of the wrong type (--set model_kwargs.dropout=none): no traceback
        if not kwargs:
            raise
        raise RecipeError(f"model_kwargs {kwargs} of model {recipe.model!r}: {e}") from e
    return model.to(device)


def _loaders(recipe: Recipe, ds: ImageDataset, device: torch.device, channels_last: bool):
    """Training, validation and test loaders. In a torchrun job the training loader gives this
    process its part of every batch and the validation loader its part of the split; the test
    loader has the whole split (rank 0 evaluates it)."""
    train_idx, val_idx = stratified_split(ds.train_labels, recipe.val_fraction, recipe.seed)
    has_val = len(val_idx) > 0
    val_idx = val_idx[distributed.local_part(len(val_idx))]
    augment = None
    if recipe.augment is not None:
        from .data.augment import build_augment
        augment = build_augment(recipe.augment)
    common = dict(mean=ds.mean, std=ds.std, device=device, channels_last=channels_last)
    # a final batch of one example would break BatchNorm's training statistics: drop only that
    drop_last = len(train_idx) % recipe.batch_size == 1
    if len(train_idx) - drop_last < 1:  # else the run would "train" on nothing and report it
        n, left = len(ds.train_labels), len(train_idx)
        raise RecipeError(f"val_fraction={recipe.val_fraction} holds out {n - left} of the {n} training "
                          f"examples of {ds.name!r}, leaving {left} to train on"
                          f"{' (a batch of one is dropped)' if drop_last else ''}: lower val_fraction")
    train = BatchLoader(ds.train_images[train_idx], ds.train_labels[train_idx], recipe.batch_size,
                        shuffle=True, seed=recipe.seed, augment=augment, drop_last=drop_last,
                        alternate_flip=recipe.augment is not None and recipe.augment.alternate_flip,
                        rank=distributed.rank(), world_size=distributed.world_size(), **common)
    val = (BatchLoader(ds.train_images[val_idx], ds.train_labels[val_idx], recipe.eval_batch_size,
                       **common) if has_val else None)
    test = BatchLoader(ds.test_images, ds.test_labels, recipe.eval_batch_size, **common)
    return train, val, test


def _class_weights(recipe: Recipe, classes: list[str], train_labels: torch.Tensor) -> torch.Tensor | None:
    """The recipe's ``class_weight`` as float32 ``(K,)``: "balanced" is ``n / (K * n_k)`` over the
    training split (scikit-learn's ``compute_class_weight``); a dict maps class names or indices
    to weights, the others keep 1.

    Raises:
        RecipeError: a key that is neither a class name nor an index, a weight below 0, or a
            class without training examples under "balanced".
    """
    cw = recipe.class_weight
    if cw is None:
        return None
    k = len(classes)
    if cw == "balanced":
        counts = torch.bincount(train_labels.cpu(), minlength=k).double()
        if (counts == 0).any():
            missing = classes[int(torch.nonzero(counts == 0)[0])]
            raise RecipeError(f"class_weight='balanced': class {missing!r} has no training example")
        return (counts.sum() / (k * counts)).float()
    w = torch.ones(k)
    for key, value in cw.items():
        if key in classes:
            i = classes.index(key)
        elif key.lstrip("-").isdigit() and 0 <= int(key) < k:
            i = int(key)
        else:
            raise RecipeError(f"class_weight key {key!r} is neither a class name nor an index 0-{k - 1}"
                              f"{did_you_mean(key, classes)} (classes: {', '.join(classes)})")
        if not value >= 0:
            raise RecipeError(f"class_weight {key!r}: {value} is not a weight >= 0")
        w[i] = value
    return w


def default_run_dir(recipe: Recipe, root: str | os.PathLike = "runs") -> Path:
    """``root/<recipe>-<YYYYmmdd-HHMMSS>`` (local time), with ``-2``, ``-3``, ... appended where
    that folder exists already; nothing is created."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = Path(root) / f"{recipe.name}-{stamp}"
    i = 1
    while path.exists():
        i += 1
        path = Path(root) / f"{recipe.name}-{stamp}-{i}"
    return path


@dataclass
class Setup:
    """Everything :func:`train` builds before the first step (see :func:`prepare`)."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    trainer: Trainer
    train: BatchLoader
    val: BatchLoader | None
    test: BatchLoader
    device: torch.device
    precision: str
    channels_last: bool
    binary: bool
    monitor: str
    pretrained: dict | None = None  # load_pretrained's report: the file the weights came from


def prepare(recipe: Recipe, ds: ImageDataset, device: str | None = None, *,
            checkpoint: str | os.PathLike | None = None, log=None, progress: bool = True,
            load_pretrained_weights: bool = True) -> Setup:
    """Build model, loaders, optimizer, schedule, callbacks and trainer for ``recipe`` on ``ds``.

    This is the exact path ``cnnlab train`` runs (the speed benchmark times it too): precision
    ``auto`` resolves to bf16 autocast where the hardware has native bf16, fp32 elsewhere;
    activations are channels_last with bf16 and on the CPU.
    ``checkpoint``: where the best weights go (a ModelCheckpoint on ``recipe.monitor``); None
    for no checkpointing. Launched by torchrun, it joins the process group
    (:mod:`cnnlab.distributed`). ``load_pretrained_weights=False`` skips the recipe's
    ``pretrained`` file (a resumed run's saved state replaces every weight: the file may be gone).

    Raises:
        RecipeError: ``batch_size`` does not divide by the number of torchrun processes,
            ``val_fraction`` leaves no training example, or ``tta`` or ``augment`` asks for views
            of examples that are not images.
        ValueError: an unknown ``device``, or a GPU asked for where there is none
            (:func:`~cnnlab.device.resolve_device`); pretrained weights that do not fit the model.
        FileNotFoundError: the recipe's ``pretrained`` weights are not found
            (:func:`~cnnlab.transfer.find_weights`).
        UnknownNameError: ``trainable_from`` names no module or parameter
            (:func:`~cnnlab.transfer.freeze_before`).
    """
    if recipe.tta != "none" and ds.train_images.dim() != 4:  # refused before training, not after
        raise RecipeError(f"tta={recipe.tta!r} needs images (C, H, W); the examples of dataset "
                          f"{ds.name!r} have shape {tuple(ds.train_images.shape[1:])}: use tta='none'")
    if recipe.augment is not None and ds.train_images.dim() != 4:  # a flip reversed signals silently
        from .data.augment import build_augment
        if recipe.augment.horizontal_flip or build_augment(recipe.augment) is not None:
            raise RecipeError(f"augment needs images (C, H, W); the examples of dataset {ds.name!r} "
                              f"have shape {tuple(ds.train_images.shape[1:])}: use augment=null")
    dev = resolve_device(device)
    rank, world = distributed.setup(dev)
    if recipe.batch_size % world:
        raise RecipeError(f"batch_size {recipe.batch_size} is the global batch and must divide "
                          f"into the {world} processes' equal parts: --set batch_size="
                          f"{recipe.batch_size - recipe.batch_size % world or world}")
    precision = resolve_precision(recipe.precision, dev)
    # channels_last: with bf16 everywhere, and with fp32 on the CPU too (oneDNN's NHWC kernels:
    # 1.08x on the geometric mean of the seed models, AVX2 CPU, benchmarks/CHANNELS_LAST.md)
    channels_last = (recipe.channels_last if recipe.channels_last is not None
                     else precision == "bf16" or dev.type == "cpu")
    model, pretrained = _model(recipe, ds, dev, rank, channels_last, log, load_pretrained_weights)
    binary = _binary(model)
    train_loader, val_loader, test_loader = _loaders(recipe, ds, dev, channels_last)
    params = [p for p in model.parameters() if p.requires_grad]
    if recipe.filter_bias_and_bn or recipe.norm_bias_lr_scale != 1:
        params = parameter_groups(model, filter_bias_and_bn=recipe.filter_bias_and_bn, lr=recipe.lr,
                                  weight_decay=recipe.weight_decay,
                                  norm_bias_lr_scale=recipe.norm_bias_lr_scale)
    optimizer = build_optimizer(params, recipe.optimizer, recipe.lr, momentum=recipe.momentum,
                                nesterov=recipe.nesterov, weight_decay=recipe.weight_decay, eps=recipe.eps,
                                fused=recipe.fused_optimizer)
    scheduler, per_batch = build_scheduler(optimizer, recipe.schedule, epochs=recipe.epochs,
                                           steps_per_epoch=len(train_loader), step_size=recipe.step_size,
                                           gamma=recipe.gamma, warmup_epochs=recipe.warmup_epochs,
                                           milestones=recipe.milestones)
    monitor = _watched(recipe.monitor, val_loader is not None, log)
    callbacks = _callbacks(recipe, model, checkpoint, monitor, val_loader is not None, log)
    class_weights = _class_weights(recipe, ds.classes, train_loader.labels)
    if class_weights is not None and log:
        log("class weights: " + ", ".join(f"{c} {w:.3g}" for c, w in zip(ds.classes, class_weights.tolist())))
    trainer = Trainer(model, optimizer, classification_loss(recipe.label_smoothing, binary, class_weights),
                      device=dev, precision=precision, callbacks=callbacks, scheduler=scheduler,
                      step_per_batch=per_batch, log=log, progress=progress,
                      ema_decay=recipe.ema_decay, ema_warmup=recipe.ema_warmup,
                      eval_loss_fn=classification_loss(recipe.label_smoothing, binary),
                      clip_grad_norm=recipe.clip_grad_norm, mix=_batch_mix(recipe, ds))
    return Setup(model, optimizer, scheduler, trainer, train_loader, val_loader, test_loader, dev,
                 precision, channels_last, binary, monitor, pretrained)


def _model(recipe: Recipe, ds: ImageDataset, dev: torch.device, rank: int, channels_last: bool,
           log, load_pretrained_weights: bool = True) -> tuple[nn.Module, dict | None]:
    """The recipe's model on ``dev``: built from the seed (the same initial weights on every
    process), with its pretrained weights, frozen layers, memory format and torch.compile; and
    :func:`load_pretrained`'s report (None without pretrained weights)."""
    torch.manual_seed(recipe.seed)
    model = _build(recipe, ds, dev)
    got = None
    if recipe.pretrained is not None and load_pretrained_weights:
        got = load_pretrained(model, recipe.pretrained, recipe.pretrained_part, seed=recipe.seed)
        if log:
            log(f"pretrained ({recipe.pretrained_part}): {got['loaded']} tensors loaded from "
                f"{got['file']}; the model's own, initialised afresh: {_names(got['new'])}; the "
                f"file's, left out: {_names(got['unused'])}")
    if recipe.features_bn_inference:
        keep_running_stats(model, "features")
    if recipe.trainable_from is not None:
        trainable, frozen = freeze_before(model, recipe.trainable_from)
        if log:
            log(f"trainable from {recipe.trainable_from}: {trainable:,} parameters train, "
                f"{frozen:,} frozen")
    if rank:  # each process its own dropout masks (rank 0 keeps the one-process stream)
        torch.manual_seed(recipe.seed * 65_537 + rank)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if recipe.compile:
        model.compile()  # in place: state_dict keys stay those of the model
    return model, got


def _watched(monitor: str, val: bool, log, who: str = "the best checkpoint") -> str:
    """``monitor``, or its training twin (``val_loss`` -> ``loss``) without a validation split."""
    if val or not monitor.startswith("val_"):
        return monitor
    if log:
        log(f"no validation split: {who} watches {monitor.removeprefix('val_')}, not {monitor}")
    return monitor.removeprefix("val_")


def _callbacks(recipe: Recipe, model: nn.Module, checkpoint, monitor: str, val: bool = True,
               log=None) -> list:
    """The recipe's callbacks, ModelCheckpoint first (``train`` reads its best epoch); without a
    validation split (``val`` false) each watches the training twin of its ``val_`` metric.
    With a ``checkpoint``, EarlyStopping's ``restore_best_weights`` is left off (and ``log`` says
    so): the run tests that checkpoint, the best epoch by ``monitor``, which would replace them."""
    callbacks: list = []
    if checkpoint is not None:
        # a path, not a template: braces in a folder's name are kept (ModelCheckpoint formats it)
        literal = str(checkpoint).replace("{", "{{").replace("}", "}}")
        callbacks.append(ModelCheckpoint(literal, monitor=monitor, save_best_only=True))
    for name, cls in (("early_stopping", EarlyStopping), ("reduce_lr", ReduceLROnPlateau)):
        config = getattr(recipe, name)
        if config is not None:
            args = config.model_dump()
            args["monitor"] = _watched(args["monitor"], val, log, name)
            if checkpoint is not None and args.get("restore_best_weights"):
                args["restore_best_weights"] = False
                if log:
                    log(f"early_stopping.restore_best_weights is not applied: the run tests its best "
                        f"checkpoint, the best epoch by {monitor} (the recipe's monitor)")
            callbacks.append(cls(**args))
    if recipe.lookahead is not None:
        callbacks.append(Lookahead(**recipe.lookahead.model_dump()))
    if recipe.freeze_after:
        freeze = FreezeAfter(recipe.freeze_after)
        freeze.check(model)  # a misspelt name fails here, before any training
        callbacks.append(freeze)
    return callbacks


def _batch_mix(recipe: Recipe, ds: ImageDataset):
    """The recipe's MixUp/CutMix (:class:`cnnlab.training.mix.BatchMix`), or None.

    Raises:
        RecipeError: CutMix on a dataset whose examples are not images (C, H, W)."""
    if recipe.mixup_alpha == recipe.cutmix_alpha == 0:
        return None
    if recipe.cutmix_alpha and ds.train_images.dim() != 4:
        raise RecipeError(f"cutmix_alpha needs images (C, H, W); the examples of dataset {ds.name!r} "
                          f"have shape {tuple(ds.train_images.shape[1:])}: use mixup_alpha")
    from .training.mix import BatchMix
    return BatchMix(recipe.mixup_alpha, recipe.cutmix_alpha, recipe.mix_prob, seed=recipe.seed)


def _rng_states(s: Setup) -> dict:
    """Every process's random states in rank order (their dropout streams): a collective call
    under DDP, so every process makes it."""
    cuda = s.device.type == "cuda"
    return {"torch_rngs": distributed.all_gather(torch.get_rng_state()),
            "cuda_rngs": distributed.all_gather(torch.cuda.get_rng_state(s.device)) if cuda else None}


def _training_state(s: Setup, epoch: int, train_time_s: float, rngs: dict) -> dict:
    """What ``last_state.pt`` holds after ``epoch`` (0-based): weights, EMA, optimizer, schedule,
    callbacks, history, the random states ``rngs`` (:func:`_rng_states`) and the training seconds
    so far. It carries its own copy of the weights, so it is self-consistent whatever moment a
    kill strikes."""
    t = s.trainer
    return {"epoch": epoch, "model": s.model.state_dict(), "optimizer": s.optimizer.state_dict(),
            "ema": t.ema.state_dict() if t.ema is not None else {},
            "scheduler": s.scheduler.state_dict() if s.scheduler is not None else {},
            "callbacks": [cb.state_dict() for cb in t.callbacks],
            "history": t.history.epochs, "torch_rng": rngs["torch_rngs"][0],
            "cuda_rng": rngs["cuda_rngs"][0] if rngs["cuda_rngs"] else None, **rngs,
            "train_time_s": train_time_s, "stopped_early": t.should_stop,
            "steps_per_epoch": len(s.train), "processes": distributed.world_size()}


def _restore_state(s: Setup, state: dict, log) -> tuple[int, float]:
    """Load a :func:`_training_state` into the prepared run ``s`` (``s.trainer.should_stop`` is
    set where early stopping had ended the training).

    Returns:
        The first epoch still to train (0-based), and the training seconds before the stop
        (for states written before those were kept: the sum of the epochs' own times).
    """
    t = s.trainer
    steps, was = state.get("steps_per_epoch"), state.get("processes", 1)
    if s.scheduler is not None and steps is not None and steps != len(s.train):
        world = distributed.world_size()
        why = (f"resume it with {was} process(es)" + (f" (torchrun --nproc_per_node={was})" if was > 1 else "")
               if was != world else "the training data changed (its number of examples)")
        raise ValueError(f"the run took {steps} steps per epoch with {was} process(es), here it "
                         f"takes {len(s.train)} with {world}: its per-step schedule would leave its "
                         f"course; {why}")
    s.model.load_state_dict(state["model"])
    if t.ema is not None and state.get("ema"):
        t.ema.load_state_dict(state["ema"])
    elif t.ema is not None:  # EMA switched on at resume: it starts from these weights
        log("the saved state has no EMA of the weights; the EMA starts from the resumed weights")
    load_optimizer_state(s.optimizer, state["optimizer"])
    if s.scheduler is not None and state.get("scheduler"):
        s.scheduler.load_state_dict(state["scheduler"])
    elif s.scheduler is not None:  # warmup_epochs beside schedule none, ignored before 2026-12-03
        raise ValueError("the run was saved without a learning-rate schedule (its warmup_epochs "
                         "beside schedule none did nothing then); resuming would start a warm-up "
                         "mid-run. To train on from its weights, start a new run with "
                         "--set pretrained=RUN_DIR pretrained_part=all")
    for cb, cb_state in zip(t.callbacks, state["callbacks"]):
        cb.load_state_dict(cb_state)
    t.history.epochs = list(state["history"])
    t.should_stop = bool(state.get("stopped_early", False))
    rank, world = distributed.rank(), distributed.world_size()
    own = state.get("torch_rngs") is not None and len(state["torch_rngs"]) == world
    # each process continues its own dropout stream; states saved before every process's was
    # kept, or by another number of processes, give rank 0's, the others derived from it
    torch.set_rng_state(state["torch_rngs"][rank] if own else state["torch_rng"])
    if s.device.type == "cuda" and state.get("cuda_rng") is not None:  # dropout draws from it there
        cuda_own = own and state.get("cuda_rngs") is not None
        torch.cuda.set_rng_state(state["cuda_rngs"][rank] if cuda_own else state["cuda_rng"], s.device)
    if rank and not own:  # after the CUDA state: manual_seed reseeds the GPUs' generators too
        torch.manual_seed(int(torch.randint(2 ** 62, (1,))) + rank)
    seconds = state.get("train_time_s", sum(e.get("time_s", 0.0) for e in state["history"]))
    return int(state["epoch"]) + 1, float(seconds)


# What a resumed run cannot change: its saved optimizer, schedule and weights, its data split
# (a new split would put validation examples into training) and what built the network.
_FIXED_ON_RESUME = ("dataset", "dataset_kwargs", "model", "model_kwargs", "batch_size", "optimizer", "lr",
                    "momentum", "nesterov", "weight_decay", "eps", "filter_bias_and_bn", "norm_bias_lr_scale",
                    "schedule", "step_size", "milestones", "gamma", "warmup_epochs", "val_fraction",
                    "seed", "pretrained", "pretrained_part", "trainable_from", "features_bn_inference",
                    "monitor")
# callbacks whose saved states are restored by position: one added or removed would take another's;
# a callback's best value is that of its monitored metric and mode (patience etc. may change)
_CALLBACK_FIELDS = ("early_stopping", "reduce_lr", "lookahead", "freeze_after")


def _callback_identity(config) -> tuple | None:
    return None if not config else (getattr(config, "monitor", None), getattr(config, "mode", None))


PENDING_BEST = "best.pending.safetensors"


def _settle_pending_best(run_dir: Path, saved_epochs: int) -> None:
    """A run killed between its ModelCheckpoint write and its state save left the epoch's best
    weights pending: they are the best once the state holds their epoch, else they belong to the
    epoch that resuming re-trains and are dropped."""
    pending = run_dir / PENDING_BEST
    if not pending.exists():
        return
    from safetensors import SafetensorError, safe_open
    try:
        with safe_open(str(pending), "pt") as f:
            epoch = int((f.metadata() or {}).get("epoch", saved_epochs + 1))
    except (SafetensorError, OSError, ValueError):  # damaged from outside (writes are atomic):
        epoch = saved_epochs + 1                      # the weights of no saved epoch; dropped
    if epoch <= saved_epochs:
        os.replace(pending, run_dir / "best.safetensors")
    else:
        pending.unlink()


def _holds_a_run(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a run with something to lose: a finished epoch or a test result
    (a run stopped in its first epoch left only its recipe.json: a new run may start there)."""
    return (run_dir / "recipe.json").exists() and any(
        (run_dir / f).exists() for f in ("last_state.pt", "test_metrics.json"))


def run_meta(run_dir: str | os.PathLike) -> dict:
    """A run folder's ``recipe.json``, checked enough for every reader: a JSON object with a
    ``recipe`` object (with its ``name``) and a ``dataset`` object with its ``name``, ``classes``,
    ``mean``, ``std``, ``provenance`` and ``image_shape`` (2 or 3 positive sizes).

    Raises:
        FileNotFoundError: no ``recipe.json`` (not a run folder).
        ValueError: a file that is not such JSON (truncated, edited); the message names it.
    """
    path = Path(run_dir) / "recipe.json"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a cnnlab run folder (no recipe.json)")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not readable JSON ({e}); the file is truncated or was edited") from None
    ds = meta.get("dataset") if isinstance(meta, dict) else None
    shape = ds.get("image_shape") if isinstance(ds, dict) else None
    fields = {"classes": list, "mean": list, "std": list, "provenance": dict}
    problem = ("not a JSON object" if not isinstance(meta, dict) else
               "no 'recipe' object" if not isinstance(meta.get("recipe"), dict) else
               "no recipe.name" if not isinstance(meta["recipe"].get("name"), str) else
               "no 'dataset' object" if not isinstance(ds, dict) else
               "no dataset.name" if not isinstance(ds.get("name"), str) else
               next((f"no dataset.{k} ({t.__name__})" for k, t in fields.items()
                     if not isinstance(ds.get(k), t)), None) or
               (None if isinstance(shape, list) and len(shape) in (2, 3)
                and all(isinstance(n, int) and n > 0 for n in shape)
                else f"dataset.image_shape {shape!r} is not (C, H, W) or (C, L)"))
    if problem:
        raise ValueError(f"{path}: {problem}; not a recipe.json cnnlab wrote (or an edited one)")
    return meta


def saved_recipe(run_dir: str | os.PathLike, meta: dict | None = None) -> Recipe:
    """The recipe of a run folder (:meth:`Recipe.saved` of its ``recipe.json``).

    Raises:
        FileNotFoundError, ValueError: as :func:`run_meta`.
        RecipeError: fields that are not a recipe's; the message names the file.
    """
    meta = run_meta(run_dir) if meta is None else meta
    try:
        return Recipe.saved(meta["recipe"])
    except ValidationError as e:
        errors = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
        raise RecipeError(f"{Path(run_dir) / 'recipe.json'}: not a valid recipe ({errors})") from None


def _check_resume_arguments(resume: Path, recipe, run_dir) -> None:
    """Refuse what resuming would otherwise ignore: another run folder, or another recipe than the
    run's own (ValueError); the same ones, as ``cnnlab reproduce --resume`` passes them, are fine."""
    if run_dir is not None and Path(run_dir) != resume:
        raise ValueError("--resume RUN_DIR continues the run in its own folder: give no --run-dir with it")
    if recipe is None or not (resume / "recipe.json").exists():
        return
    name = run_meta(resume)["recipe"]["name"]
    asked = recipe.name if isinstance(recipe, Recipe) else str(recipe)
    if asked != name and Path(asked).stem != name:
        raise ValueError(f"{resume} is a run of {name!r}, not of {asked!r}: --resume continues a run "
                         f"with its own recipe (--set overrides it); to train {asked!r} afresh, leave "
                         "out --resume")


def _saved_data_dir(meta: dict) -> str | None:
    """The folder a run read its dataset from (the provenance in :func:`run_meta`'s ``meta``),
    if it is still there; None otherwise (the dataset is then looked for where it would be by
    name)."""
    folder = meta["dataset"]["provenance"].get("folder")
    return folder if folder and Path(folder).is_dir() else None


def _resume(run_dir: Path, overrides) -> tuple[Recipe, dict, int | None]:
    """What resuming ``run_dir`` starts from: its recipe (with the ``overrides`` it can honour),
    its last training state and the ``limit`` it was trained with (None: all the data).

    Raises:
        FileNotFoundError: not a run folder, or no epoch finished.
        RecipeError: an override the resumed run cannot honour (:func:`_resumable_override`),
            or fewer epochs than the run finished.
        ValueError: the run finished and was tested: nothing to resume.
    """
    if not (run_dir / "recipe.json").exists():
        raise FileNotFoundError(f"cannot resume {run_dir}: " + (
            "no such folder" if not run_dir.exists() else "not a cnnlab run folder (no recipe.json)"))
    meta = run_meta(run_dir)
    recipe = saved_recipe(run_dir, meta)
    if recipe.reduce_lr is not None and (recipe.schedule != "none" or recipe.warmup_epochs):
        what = f"the {recipe.schedule!r} schedule" if recipe.schedule != "none" else "a warm-up"
        raise RecipeError(f"cannot resume {run_dir}: it pairs reduce_lr with {what}, which resets "
                          "every cut of the rate (refused since it was made); cnnlab evaluate, "
                          "predict and explain still read it")
    if overrides:
        recipe = _resumable_override(recipe, overrides, run_dir)
    if not (run_dir / "last_state.pt").exists():
        raise FileNotFoundError(f"{run_dir}: no last_state.pt; nothing to resume (the run "
                                "finished no epoch)")
    try:
        state = load_state(run_dir / "last_state.pt")
    except ValueError as e:  # damaged from outside (the writes are atomic): the run cannot go on
        raise ValueError(f"cannot resume: {e}. The weights of its last finished epoch are in "
                         f"{run_dir / 'last.safetensors'}; to train on from them, start a new run: cnnlab "
                         f"train {recipe.name} --set pretrained={run_dir / 'last.safetensors'} "
                         "pretrained_part=all ...") from e
    if distributed.is_main():  # one process renames or drops the file; the others wait for it
        _settle_pending_best(run_dir, state["epoch"] + 1)
    distributed.barrier()
    if recipe.epochs < state["epoch"] + 1:
        raise RecipeError(f"{run_dir} finished {state['epoch'] + 1} epochs already; epochs="
                          f"{recipe.epochs} would leave recipe.json saying fewer than were trained")
    finished = state.get("stopped_early") or state["epoch"] + 1 >= recipe.epochs
    if finished and (run_dir / "test_metrics.json").exists():
        raise ValueError(f"{run_dir} finished already (epoch {state['epoch'] + 1} of "
                         f"{recipe.epochs}{', stopped early' if state.get('stopped_early') else ''}"
                         f"), and was tested: nothing to resume. `cnnlab evaluate {run_dir}` "
                         "tests it again; --set epochs=N with --resume trains it on where its "
                         "schedule allows")
    return recipe, state, meta.get("dataset", {}).get("provenance", {}).get("limit")


def _resumable_override(saved: Recipe, overrides, run_dir: Path) -> Recipe:
    """``saved.override(overrides)`` for resuming ``run_dir``, or RecipeError where the resumed run
    could not honour an override: PyTorch would restore the old optimizer / schedule settings over
    it (or fail on a schedule whose length is fixed), or the split would change. Other overrides
    (``epochs`` where the schedule does not span the run, ``ema_decay``, ``tta``, ``precision``,
    callback settings, ...) apply from the resumed epoch on."""
    recipe = saved.override(overrides)
    changed = [k for k in Recipe.model_fields if getattr(saved, k) != getattr(recipe, k)]
    refused = [k for k in changed if k in _FIXED_ON_RESUME
               or (k in _CALLBACK_FIELDS
                   and _callback_identity(getattr(saved, k)) != _callback_identity(getattr(recipe, k)))]
    spans_run = [what for what, on in (
        (f"the {saved.schedule} schedule", saved.schedule in ("onecycle", "cosine")),
        ("Lookahead's ramp", saved.lookahead is not None)) if on]
    why = "its saved optimizer, schedule, callbacks and data split fix them"
    if "epochs" in changed and spans_run and not refused:
        refused, why = ["epochs"], (f"{' and '.join(spans_run)} span{'s' if len(spans_run) == 1 else ''} "
                                     f"the {saved.epochs} epochs it was started with")
    if refused:
        what = ", ".join(f"{k}={getattr(recipe, k)!r} (was {getattr(saved, k)!r})" for k in refused)
        raise RecipeError(
            f"cannot resume {run_dir} with {what}: {why}. To train on from its weights, start a "
            f"new run: cnnlab train {saved.name} --set pretrained={run_dir} pretrained_part=all ...")
    return recipe


def train(recipe: Recipe | str | os.PathLike, overrides: dict | list[str] | None = None, *,
          data_dir: str | os.PathLike | None = None, run_dir: str | os.PathLike | None = None,
          device: str | None = None, dataset: ImageDataset | None = None,
          resume: str | os.PathLike | None = None, progress: bool = True,
          log: Callable[[str], None] | None = None, limit: int | None = None) -> Run:
    """Train a recipe and evaluate it on the test split; the Python face of ``cnnlab train``.

    Args:
        recipe: a :class:`Recipe`, a registered recipe name (``cnnlab list recipes``) or a recipe
            file (``.toml``/``.json``, :mod:`cnnlab.recipes.files`).
        overrides: ``{"epochs": 3}`` or ``["epochs=3"]``, validated against the recipe.
        data_dir: where the dataset's files are (see :func:`cnnlab.data.load_dataset`).
        run_dir: the run folder (default ``runs/<recipe>-<timestamp>``).
        device: ``"cpu"``, ``"cuda"``, ... (default: a GPU if there is one).
        dataset: an already loaded dataset to use instead of loading ``recipe.dataset``.
        resume: a run folder to continue from its last finished epoch (recipe taken from it;
            without ``data_dir``, the data is read from the folder the run read it from).
        progress: progress bars on a terminal.
        log: message sink (default: print).
        limit: use only the first ``limit`` training and test examples (smoke tests).

    Denormal floats are flushed to zero on the CPU from here on, in this process
    (:func:`cnnlab.device.flush_denormals`; it says where PyTorch's threads had started first).

    Launched by torchrun (``torchrun --nproc_per_node=N -m cnnlab.cli train ...``), every process
    trains its part of each batch with DistributedDataParallel (:mod:`cnnlab.distributed`); rank 0
    logs, writes the run folder and evaluates the test split. The other processes return a
    :class:`Run` without test metrics. A script that calls this under torchrun should call
    :func:`cnnlab.distributed.shutdown` before it exits (the ``cnnlab`` command does).

    Returns:
        The :class:`Run`, with the best weights loaded and the test metrics filled in.

    Raises:
        UnknownNameError, RecipeError: bad recipe name or override (or, with ``resume``, one the
            resumed run cannot honour: a change of model, data, split, optimizer, schedule or
            seed, or epochs where the schedule spans the run).
        FileNotFoundError, DataFileError: the dataset cannot be read; or ``resume`` is not a
            run folder.
        FileExistsError: ``run_dir`` holds a run already (without ``resume``).
        ValueError: with ``resume``, another ``run_dir`` or another recipe than the run's.
        ValueError: an unknown ``device``, or a GPU asked for where there is none.
        NonFiniteLossError: training diverged (earlier checkpoints are kept).
    """
    log = log or (lambda m: print(m, flush=True))
    if distributed.setup(resolve_device(device))[0]:  # not rank 0: trains, says and writes nothing
        log, progress = (lambda m: None), False
    if flush_denormals() == "calling thread":  # before any parallel work, to reach the workers
        log("note: denormal floats are flushed to zero on this thread only, as PyTorch's threads "
            "had started before; call cnnlab.device.flush_denormals() before any other torch work "
            "to have them all do it (the cnnlab command does)")
    state = None
    if resume is not None:
        _check_resume_arguments(Path(resume), recipe, run_dir)
        run_dir = Path(resume)
        # killed while plotting: finish that (rank 0's decision, so that every process agrees)
        if distributed.broadcast_str("replot" if not overrides and _plots_missing(run_dir) else ""):
            if distributed.is_main():
                return _replot(run_dir, data_dir, dataset, device, log)
            return load_run(run_dir, device=device)
        recipe, state, saved_limit = _resume(run_dir, overrides)
        limit = limit or saved_limit  # the same examples, so that the split stays the same
        first = run_meta(run_dir)  # where and when the run began, and what it read
        if data_dir is None and dataset is None:  # the files the run read, where they still are
            data_dir = _saved_data_dir(first)
    elif isinstance(recipe, (str, os.PathLike)):
        saved = Path(recipe)
        recipe = get_recipe(recipe, overrides)
        if data_dir is None and dataset is None and saved.name == "recipe.json" and saved.is_file():
            try:  # a run folder's recipe.json trained again: its data, where they still are
                meta = run_meta(saved.parent)
                if meta["dataset"]["name"] == recipe.dataset:  # not another --set dataset=
                    data_dir = _saved_data_dir(meta)
            except ValueError:  # not a run folder's: a recipe file of that name
                pass
    else:
        recipe = recipe.override(overrides)
    if resume is None and run_dir is not None and _holds_a_run(Path(run_dir)):
        raise FileExistsError(f"{run_dir} holds a run already; continue it with --resume {run_dir}, "
                              "or give another --run-dir (or move that folder away) to train afresh: "
                              "a new run would mix its files with the old one's")

    if dataset is None:  # in a torchrun job each machine's first process downloads (or builds
        with distributed.local_main_first():  # a cache) before the others read the files
            dataset = load_dataset(recipe.dataset, data_dir, **recipe.dataset_kwargs)
    ds = dataset
    ds = _limited(ds, limit)
    run_dir = Path(distributed.broadcast_str(str(run_dir or default_run_dir(recipe))))
    main = distributed.is_main()
    # the epoch's best weights go to a pending file, made best.safetensors once the epoch's state
    # is saved: a kill in between cannot leave best weights of an epoch that resuming re-trains
    s = prepare(recipe, ds, device, checkpoint=run_dir / PENDING_BEST, log=log, progress=progress,
                load_pretrained_weights=state is None)
    if main:  # after prepare: a recipe it refuses leaves no empty folder behind
        run_dir.mkdir(parents=True, exist_ok=True)
    model, trainer = s.model, s.trainer
    meta = _run_meta(recipe, ds, s)
    initial_epoch, prior_train_s = 0, 0.0
    if state is not None:
        _check_same_data(run_dir, first["dataset"], ds, resuming=True)
        initial_epoch, prior_train_s = _restore_state(s, state, log)
        meta.update(started=first.get("started"), machine=first.get("machine", meta["machine"]),
                    resumed=first.get("resumed", []) + [{"after_epoch": initial_epoch,
                                                         "date": meta["started"], "machine": meta["machine"],
                                                         "resolved": dict(meta["resolved"])}],
                    first_resolved=first.get("first_resolved", first.get("resolved")))
        if "pretrained" in first:
            meta["pretrained"] = first["pretrained"]
        log(f"resuming {run_dir} after epoch {initial_epoch}")
    if main:
        write_json(run_dir / "recipe.json", meta)
        if state is not None:  # a kill between last_state.pt and metrics.csv lost the epoch's row
            write_metrics_csv(run_dir / "metrics.csv", trainer.history)

    def save_epoch(epoch: int) -> None:
        # last.safetensors is the weights that are evaluated (the EMA of the weights when the
        # recipe keeps one), for users and tools; last_state.pt is what resuming needs. Every
        # process comes here (to hand over its random state); rank 0 alone writes.
        rngs = _rng_states(s)
        if not main:
            return
        save_weights(trainer.eval_model, run_dir / "last.safetensors", metadata={"epoch": epoch + 1})
        save_state(_training_state(s, epoch, prior_train_s + time.perf_counter() - t0, rngs),
                   run_dir / "last_state.pt")
        if (run_dir / PENDING_BEST).exists():
            os.replace(run_dir / PENDING_BEST, run_dir / "best.safetensors")
        write_metrics_csv(run_dir / "metrics.csv", trainer.history)

    trainer.on_epoch_saved = save_epoch
    log(_start_line(recipe, ds.name, meta, s.device))
    t0 = time.perf_counter()
    if initial_epoch < recipe.epochs and not trainer.should_stop:  # not ended by early stopping
        try:
            trainer.fit(s.train, s.val, recipe.epochs, initial_epoch=initial_epoch)
        except KeyboardInterrupt as e:  # Ctrl-C: the caller can say which folder to resume
            e.run_dir, e.resumable = run_dir, (run_dir / "last_state.pt").exists()
            raise
    train_s = time.perf_counter() - t0
    if not main:  # rank 0 alone evaluates the test split and writes the rest
        model.eval()
        return Run(run_dir, recipe, model, trainer.history, {}, ds)

    test, logits = _test_run(s, recipe, ds, run_dir, prior_train_s + train_s, log)
    _plot_run(run_dir, recipe.name, trainer.history, test, logits, ds, log)
    hint = (f"; Grad-CAM and filters: cnnlab explain {run_dir}" if ds.test_images.dim() == 4
            and any(isinstance(m, nn.Conv2d) for m in model.modules()) else "")  # not for an MLP
    log(f"plots in {run_dir}{hint}")
    model.eval()
    return Run(run_dir, recipe, model, trainer.history, test, ds)


def _run_meta(recipe: Recipe, ds: ImageDataset, s: "Setup") -> dict:
    """``recipe.json``: the resolved recipe, the data (classes, shape, normalisation, split
    sizes, provenance), what ``auto`` resolved to, the machine and the start time."""
    n_val = len(s.val.labels) if s.val else 0  # in a torchrun job: this process's part
    n_val = int(distributed.all_reduce_sum(torch.tensor(n_val, device=s.device)).item())
    meta = {"recipe": recipe.model_dump(), "dataset": {"name": ds.name, "classes": ds.classes,
            "image_shape": list(ds.image_shape), "mean": ds.mean, "std": ds.std,
            "train": len(s.train.labels), "validation": n_val,
            "test": len(ds.test_labels), "provenance": ds.provenance},
            "resolved": {"device": str(s.device), "precision": s.precision, "channels_last": s.channels_last},
            "machine": describe_machine(),
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    if distributed.world_size() > 1:
        meta["resolved"]["processes"] = distributed.world_size()
    if s.pretrained:  # which file a recipe name resolved to (the newest finished run then)
        meta["pretrained"] = {"file": s.pretrained["file"], "loaded": s.pretrained["loaded"]}
    return meta


def _start_line(recipe: Recipe, dataset_name: str, meta: dict, dev: torch.device) -> str:
    """The run's first log line: recipe, model, data, split sizes, epochs, batch, precision."""
    precision, channels_last = meta["resolved"]["precision"], meta["resolved"]["channels_last"]
    world = distributed.world_size()
    return (f"training {recipe.name}: {recipe.model} on {dataset_name} ({meta['dataset']['train']} "
            f"train / {meta['dataset']['validation']} validation), {recipe.epochs} "
            f"epoch{'s' if recipe.epochs != 1 else ''}, batch {recipe.batch_size}, {precision}"
            f"{' channels_last' if channels_last else ''} on {dev}"
            + (" (precision auto: no native bf16 on this CPU)" if recipe.precision == "auto"
               and precision == "fp32" and dev.type == "cpu" else "")
            + (" (warning: this CPU has no native bf16; PyTorch emulates it, many times slower than "
               "fp32)" if precision == "bf16" and dev.type == "cpu" and not native_bf16(dev) else "")
            + (f", {world} processes (DDP)" if world > 1 else ""))


def _test_run(s: "Setup", recipe: Recipe, ds: ImageDataset, run_dir: Path, train_s: float,
              log: Callable[[str], None]) -> tuple[dict, torch.Tensor]:
    """Evaluate the best weights on the test split and write ``test_metrics.json``; returns the
    metrics and the test logits (for the plots)."""
    load_weights(s.model, run_dir / "best.safetensors")
    test = evaluate_model(s.model, s.test, recipe, s.precision, s.device, s.binary, ds.classes,
                          keep_logits=True)
    logits = test.pop("logits")
    best_epoch = s.trainer.callbacks[0].best_epoch + 1
    test.update({"weights": "best.safetensors", "best_epoch": best_epoch, "monitor": s.monitor,
                 "epochs_run": len(s.trainer.history), "train_time_s": round(train_s, 1),
                 "precision": s.precision, "dataset_lossy": bool(ds.provenance.get("lossy"))})
    write_json(run_dir / "test_metrics.json", test)  # the result first: a plot cannot lose it
    log(f"best epoch {best_epoch} by {s.monitor}; weights in {run_dir / 'best.safetensors'}")
    log(format_test_line(test))
    return test, logits


def _tested(run: Run) -> ImageDataset:
    """The data of a run loaded with them, as the run was tested (its ``limit`` too)."""
    meta = run_meta(run.dir)["dataset"]
    return _limited(run.dataset, meta["provenance"].get("limit"))


def _limited(ds: ImageDataset, limit: int | None) -> ImageDataset:
    """``ds`` with its first ``limit`` training and test examples (a smoke run's data); ``ds``
    itself without a limit."""
    if not limit:
        return ds
    return ImageDataset(ds.name, ds.train_images[:limit], ds.train_labels[:limit], ds.test_images[:limit],
                        ds.test_labels[:limit], ds.classes, ds.mean, ds.std, {**ds.provenance, "limit": limit})


def _plot_names(run_dir: Path) -> list[str]:
    """The PNGs a finished run folder holds (:func:`_plot_run`)."""
    images = len(run_meta(run_dir)["dataset"]["image_shape"]) == 3
    return ["curves.png", "confusion_matrix.png"] + (
        ["predictions_best.png", "predictions_worst.png"] if images else [])


def _plots_missing(run_dir: Path) -> bool:
    """A tested run folder without all its PNGs: the run was stopped while plotting."""
    return ((run_dir / "test_metrics.json").exists() and (run_dir / "recipe.json").exists()
            and not all((run_dir / f).exists() for f in _plot_names(run_dir)))


def _replot(run_dir: Path, data_dir, dataset: ImageDataset | None, device, log) -> Run:
    """Draw the PNGs of a tested run that was stopped while plotting (its test split evaluated
    again for the best and worst predictions); nothing else in the folder changes."""
    run = load_run(run_dir, "best", device, data_dir, load_data=True, dataset=dataset)
    logits = _evaluate_loaded(run, None, keep_logits=True)["logits"]
    ds = _tested(run)
    log(f"{run_dir} was tested but stopped while plotting: drawing its plots")
    _plot_run(run_dir, run.recipe.name, run.history, run.test_metrics, logits, ds, log)
    log(f"plots in {run_dir}")
    return run


def _plot_run(run_dir: Path, title: str, history: History, test: dict, logits: torch.Tensor,
              ds: ImageDataset, log: Callable[[str], None]) -> None:
    """The run folder's PNGs: curves, confusion matrix and, for images, the best and worst test
    predictions. A plot that fails (a missing matplotlib, a full disk) is a warning: the run's
    weights and figures are written already."""
    from .report.plots import plot_confusion_matrix, plot_history, plot_predictions
    plots = [("curves", lambda: plot_history(history, run_dir / "curves.png", title=title)),
             ("confusion matrix", lambda: plot_confusion_matrix(
                 test["confusion_matrix"], ds.classes, run_dir / "confusion_matrix.png", title=title))]
    if ds.test_images.dim() == 4:  # image grids of seed 003: best and worst test predictions
        plots += [(f"{kind} predictions", lambda kind=kind: plot_predictions(
            ds.test_images, ds.test_labels, logits, ds.classes, run_dir / f"predictions_{kind}.png",
            kind=kind, title=title)) for kind in ("best", "worst")]
    for what, plot in plots:
        try:
            plot()
        except Exception as e:  # noqa: BLE001 - never lose a run over a plot
            log(f"warning: {what} not plotted ({type(e).__name__}: {e})")


def evaluate_model(model, loader, recipe: Recipe, precision: str, device, binary: bool,
                   classes: list[str], keep_logits: bool = False) -> dict:
    """Test-split metrics: loss, top-1 (and top-5 with more than 5 classes), per-class accuracy
    (of the classes with examples), the confusion matrix (rows: true class, columns: predicted
    class), per-class precision / recall / F1 (:func:`cnnlab.report.classification.
    classification_report`) and the 5 most confused pairs ``[true, predicted, count]``; with
    ``keep_logits`` also ``logits`` (float32 ``(N, K)``, CPU). With the recipe's test-time augmentation
    (``recipe.tta``) the figures are those with it, and ``accuracy_without_tta`` is added.

    Args:
        model: the classifier, on ``device``; evaluated in inference mode (each module's own
            mode is restored after).
        loader: batches ``(x float (B, C, H, W) normalised, y int64 (B,))`` on ``device``, in the
            test split's order (a :class:`~cnnlab.data.loader.BatchLoader`).
        recipe: gives ``label_smoothing`` (of the loss) and ``tta``.
        precision: ``"fp32"`` or ``"bf16"`` (autocast), as resolved.
        binary: one sigmoid logit per example (binary cross-entropy, threshold 0).
        classes: the K class names.

    Raises:
        ValueError: the loader yields no example; ``tta`` on inputs that are not images; a
            ``precision`` other than ``"fp32"`` / ``"bf16"``.
    """
    loss_fn = classification_loss(recipe.label_smoothing, binary)
    out = _evaluate(model, loader, loss_fn, device, precision, keep_logits=True, tta=recipe.tta)
    if out["total"] == 0:
        raise ValueError(f"the test split of {recipe.dataset!r} holds no examples: there is nothing "
                         "to evaluate")
    if recipe.tta != "none":
        plain = _evaluate(model, loader, loss_fn, device, precision)
        out.update({"tta": recipe.tta, "accuracy_without_tta": plain["accuracy"]})
    logits, labels = out.pop("logits"), out.pop("labels")
    pred = predicted_labels(logits)
    k = len(classes)
    cm = torch.bincount(labels * k + pred, minlength=k * k).view(k, k)
    out["per_class_accuracy"] = {c: round(float(cm[i, i] / cm[i].sum()), 4)  # of the classes present
                                 for i, c in enumerate(classes) if cm[i].sum() > 0}
    if not binary and logits.shape[1] > 5:
        top5 = (logits.topk(5, dim=1).indices == labels[:, None]).any(1).float().mean()
        out["top5_accuracy"] = round(float(top5), 6)
    out["confusion_matrix"] = cm.tolist()
    from .report.classification import classification_report, most_confused
    out["classification_report"] = classification_report(cm, classes)
    out["most_confused"] = [list(pair) for pair in most_confused(cm, classes)]
    if keep_logits:
        out["logits"] = logits
    return out


def write_metrics_csv(path: str | os.PathLike, history: History) -> None:
    """Write ``history`` as ``metrics.csv`` (one row per epoch, :data:`METRIC_COLUMNS`, floats to
    6 significant digits, empty where a metric is absent), atomically.

    Raises:
        DiskFullError: the disk is full; the previous file is kept.
    """
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=METRIC_COLUMNS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for row in history.epochs:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    write_text(path, buf.getvalue())


def read_metrics_csv(path: str | os.PathLike) -> History:
    """Read a ``metrics.csv`` written by :func:`write_metrics_csv` back into a :class:`History`
    (``epoch`` as int, the rest as float, empty cells left out).

    Raises:
        FileNotFoundError: no such file.
        ValueError: a cell that is not a number.
    """
    with open(path, newline="") as f:
        rows = [{k: (float(v) if k != "epoch" else int(v)) for k, v in r.items() if v != ""}
                for r in csv.DictReader(f)]
    return History(rows)


def load_run(run_dir: str | os.PathLike, weights: str = "best", device: str | None = None,
             data_dir=None, load_data: bool = False, dataset: ImageDataset | None = None, *,
             records: bool = True) -> Run:
    """Open a finished (or interrupted) run folder: recipe, history, model with weights.

    Args:
        run_dir: the run folder (``runs/<recipe>-<time>``).
        weights: ``"best"`` or ``"last"``.
        device: where the model goes (default: a GPU if there is one).
        data_dir: where the dataset's files are (with ``load_data``).
        load_data: also load the dataset (needed by :func:`evaluate_run`): from ``data_dir``, else
            from the folder the run read it from (its provenance) where that still exists, else
            where :func:`cnnlab.data.load_dataset` looks by default.
        dataset: the dataset itself, for a run trained on one passed to :func:`train` (an
            in-memory ``ImageDataset`` of your own), which cannot be loaded by name.
        records: read ``metrics.csv`` and ``test_metrics.json`` (history, test metrics); False
            leaves both empty, unread, for callers that need only the model (predict, export).
            A ``test_metrics.json`` of fewer epochs than ``metrics.csv`` holds (the run was
            resumed for more epochs and is not tested again yet) is left out: test metrics empty
            (:func:`current_test_metrics`).

    Raises:
        FileNotFoundError: not a run folder (no recipe.json) or the weights file is missing.
        ValueError: with ``records``, a ``metrics.csv`` or ``test_metrics.json`` that is not
            readable (the message names it).
        ValueError: weights that do not fit the recipe's model, or an unknown ``device``; with
            ``load_data`` or ``dataset``, a dataset whose classes or image shape are not the
            run's, or a run trained on a dataset of your own without ``dataset`` given.
        FileNotFoundError, DataFileError: with ``load_data``, the dataset cannot be read.
    """
    run_dir = Path(run_dir)
    meta = run_meta(run_dir)
    recipe = saved_recipe(run_dir, meta)
    dev = resolve_device(device)
    shape = tuple(meta["dataset"]["image_shape"])
    num_classes = 1 if recipe.model_kwargs.get("binary") else len(meta["dataset"]["classes"])
    kwargs = {k: v for k, v in recipe.model_kwargs.items() if k != "binary"}
    model = create_model(recipe.model, num_classes=num_classes, in_chans=shape[0],
                         input_size=shape[1:] if len(shape) == 3 else None, **kwargs).to(dev)
    if weights == "best" and not (run_dir / "best.safetensors").exists() \
            and (run_dir / "last.safetensors").exists():
        raise FileNotFoundError(f"{run_dir}: no best.safetensors (no epoch improved its monitor, or "
                                "the file was removed); --weights last uses the last epoch's weights")
    load_weights(model, run_dir / f"{weights}.safetensors")
    _warn_non_finite(model, run_dir / f"{weights}.safetensors")
    model.eval()
    history, test = History(), {}
    if records:
        history = _read_record(run_dir / "metrics.csv", read_metrics_csv, history)
        test = _read_record(run_dir / "test_metrics.json", lambda p: json.loads(p.read_text()), test)
        test = current_test_metrics(test, history)
    ds = dataset
    if load_data and ds is None:
        if meta["dataset"]["name"] != recipe.dataset:
            raise ValueError(f"{run_dir} was trained on the dataset {meta['dataset']['name']!r} passed "
                             f"to train(dataset=...), not on its recipe's {recipe.dataset!r}: pass "
                             "that dataset again (dataset=...) to evaluate or explain the run")
        if data_dir is None:
            data_dir = _saved_data_dir(meta)
        ds = load_dataset(recipe.dataset, data_dir, **recipe.dataset_kwargs)
    if ds is not None:
        _check_same_data(run_dir, meta["dataset"], ds)
    return Run(run_dir, recipe, model, history, test, ds)


def current_test_metrics(test: dict, history: History) -> dict:
    """``test`` (a run's ``test_metrics.json``), or ``{}`` where it is of an earlier end: of fewer
    epochs (``epochs_run``) than ``history`` (its ``metrics.csv``) holds, as when the run was
    resumed for more epochs and is not tested again yet. A record without ``epochs_run`` is kept,
    and so is one of more epochs than ``metrics.csv`` holds (a finished run whose last row was lost
    to a kill before resuming rewrote ``metrics.csv``, or whose ``metrics.csv`` is missing)."""
    return {} if test.get("epochs_run", len(history)) < len(history) else test


def _read_record(path: Path, read: Callable[[Path], Any], empty: Any) -> Any:
    """``read(path)``, or ``empty`` where the file does not exist.

    Raises:
        ValueError: the file is not readable (decimal commas, truncated, ...); the message names it.
    """
    if not path.exists():
        return empty
    try:
        return read(path)
    except (ValueError, TypeError, csv.Error) as e:  # also UnicodeDecodeError, JSONDecodeError
        raise ValueError(f"{path}: not readable ({e}); the file is damaged or was edited") from None


def _warn_non_finite(model: nn.Module, path: Path) -> None:
    """Warn where loaded weights hold NaN or inf (training stops before saving such weights, so
    the file was changed by hand or by another tool): every figure computed from them is noise."""
    bad = [k for k, t in model.state_dict().items() if t.is_floating_point() and not torch.isfinite(t).all()]
    if bad:
        warnings.warn(f"{path}: {len(bad)} tensor(s) hold NaN or inf ({_few(bad)}); the model's "
                      "outputs and any figures computed from them are meaningless", stacklevel=3)


def _check_same_data(run_dir: Path, trained: dict, ds: ImageDataset, resuming: bool = False) -> None:
    """Refuse a dataset with other classes or image shape than the run's; where its files differ
    from those the run read (their recorded sha256), refuse a held-out split (the files now in
    it may have been trained on), other files than it read (another layout: a val/ folder that
    was not there) and, when ``resuming``, any change; warn otherwise. Files that differ but give
    the same ``split_sha256`` (the same pixels and labels in each split) pass."""
    if list(ds.classes) != trained["classes"] or list(ds.image_shape) != trained["image_shape"]:
        raise ValueError(f"{run_dir} was trained on {trained['name']!r} with classes "
                         f"{_few(trained['classes'])} and images {tuple(trained['image_shape'])}; "
                         f"the dataset {ds.name!r} given now has classes {_few(ds.classes)} and images "
                         f"{tuple(ds.image_shape)}")
    split_then, split_now = trained.get("provenance", {}).get("split"), ds.provenance.get("split")
    if split_then != split_now:  # same files, another split (notMNIST's duplicates removed)
        raise ValueError(f"{run_dir} was trained on another split of {trained['name']!r} than the one "
                         f"read now ({split_then} then, {split_now} now): its test images may have "
                         "been trained on; evaluate it with the cnnlab version that trained it, or "
                         "train it again")
    digest = trained.get("provenance", {}).get("split_sha256")
    if digest and digest == ds.provenance.get("split_sha256"):
        return  # the same pixels and labels in both splits, from other files (notMNIST's layouts)
    then, now = trained.get("provenance", {}).get("files"), ds.provenance.get("files")
    if not then or not now or then == now:
        return
    changed = ", ".join(sorted(k for k in set(then) | set(now) if then.get(k) != now.get(k)))
    if set(then) != set(now) or resuming:
        raise ValueError(f"{run_dir} was trained on the files {', '.join(sorted(then))}; the dataset "
                         f"read now has {', '.join(sorted(now))} (changed: {changed}): "
                         + ("resuming would go on with other data" if resuming else
                            "its splits are not the run's") + "; use the data as they were")
    if "split" in ds.provenance:  # the test split is a seeded share of the files: it moved
        raise ValueError(f"{run_dir}: the files of {changed} differ from those the run was trained "
                         "on (their sha256 listing), and its test split is a seeded share of them: "
                         "the test images now may include training images. Evaluate on the folder as "
                         "it was, or on labelled images of your own (evaluate --folder)")
    warnings.warn(f"{run_dir}: the files of {changed} differ from those the run was trained on "
                  "(their sha256 listing); the figures are those of the data as they are now",
                  stacklevel=3)


def _few(names: list[str], n: int = 4) -> str:
    return ", ".join(map(str, names[:n])) + (f" ... ({len(names)})" if len(names) > n else "")


def evaluate_run(run_dir: str | os.PathLike, weights: str = "best", data_dir=None,
                 device: str | None = None, precision: str | None = None, tta: str | None = None,
                 dataset: ImageDataset | None = None, keep_logits: bool = False) -> dict:
    """Re-evaluate a run's checkpoint on the test split (``cnnlab evaluate RUN_DIR``).

    ``tta`` (``"none"``, ``"flip"`` or ``"flip-shift"``: :func:`cnnlab.training.tta_logits`) replaces
    the run's test-time augmentation; ``None`` keeps the run's own (its recipe's ``tta``).

    ``data_dir``, ``device``, ``dataset``: as :func:`load_run`; ``precision``: ``"auto"``,
    ``"fp32"`` or ``"bf16"`` (default: the run's recipe's).

    Returns:
        The metrics dict (as in ``test_metrics.json``); nothing in the run folder is changed.
        With ``keep_logits`` also ``logits`` float32 ``(N, K)`` and ``labels`` int64 ``(N,)``
        of the test split, in its order (for :func:`cnnlab.report.confidence.select_predictions`).

    Raises:
        FileNotFoundError, DataFileError, ValueError: as :func:`load_run` (not a run folder,
            missing weights, data that cannot be read or are not the run's).
        ValueError: an unknown ``precision``; the test split holds no example.
        RecipeError: an unknown ``tta``.
    """
    run = load_run(run_dir, weights, device, data_dir, load_data=True, dataset=dataset)
    if tta is not None:
        run.recipe = run.recipe.override({"tta": tta})
    out = _evaluate_loaded(run, precision, keep_logits)
    out["weights"] = f"{weights}.safetensors"
    return out


def _evaluate_loaded(run: Run, precision: str | None, keep_logits: bool, tta: str | None = None) -> dict:
    """:func:`evaluate_run` on a run loaded with its data: the test split the run was tested on
    (its ``limit`` too), normalised as recorded in the run (as evaluate --folder does); ``tta``
    replaces the recipe's test-time augmentation."""
    dev = next(run.model.parameters()).device
    prec = resolve_precision(precision or run.recipe.precision, dev)
    meta = run_meta(run.dir)["dataset"]
    ds = _tested(run)
    loader = BatchLoader(ds.test_images, ds.test_labels, run.recipe.eval_batch_size, mean=meta["mean"],
                         std=meta["std"], device=dev)
    recipe = run.recipe if tta is None else run.recipe.model_copy(update={"tta": tta})
    out = evaluate_model(run.model, loader, recipe, prec, dev, _binary(run.model), ds.classes,
                         keep_logits=keep_logits)
    out["precision"] = prec
    if keep_logits:
        out["labels"] = ds.test_labels.cpu()
    return out


def find_lr(recipe: Recipe | str | os.PathLike, overrides: dict | list[str] | None = None, *, data_dir=None,
            device: str | None = None, steps: int = 100, start_lr: float = 1e-7, end_lr: float = 10.0,
            plot: str | os.PathLike | None = None, dataset: ImageDataset | None = None,
            log: Callable[[str], None] | None = None):
    """The learning-rate range test (:func:`cnnlab.training.lr_find.lr_find`) on the recipe's exact
    training setup (model, optimizer, augmentation, precision), from its initial weights; the
    Python face of ``cnnlab lr-find``. Nothing is trained for real and nothing but ``plot`` (a
    PNG of loss against learning rate) is written.

    Returns:
        :class:`cnnlab.training.lr_find.LRFinderResult`.

    Raises:
        UnknownNameError, RecipeError, FileNotFoundError, DataFileError: as :func:`train`, for the
            recipe, its overrides and its data.
        ValueError: a bad range or step count (before the data is read; see
            :func:`~cnnlab.training.lr_find.check_range`), an unknown ``device``, or no batches.
        NonFiniteLossError: the loss is NaN or infinite at the first step.
    """
    from .training.lr_find import check_range, lr_find
    check_range(start_lr, end_lr, steps)  # before the data is read
    log = log or (lambda m: print(m, flush=True))
    recipe = (get_recipe(recipe, overrides) if isinstance(recipe, (str, os.PathLike))
              else recipe.override(overrides))
    ds = dataset if dataset is not None else load_dataset(recipe.dataset, data_dir, **recipe.dataset_kwargs)
    s = prepare(recipe, ds, device, progress=False)
    log(f"lr-find {recipe.name}: {recipe.model} on {ds.name}, up to {steps} steps of batch "
        f"{recipe.batch_size}, lr {start_lr:.0e} to {end_lr:.0e}, {s.precision}"
        f"{' channels_last' if s.channels_last else ''} on {s.device}")
    result = lr_find(s.model, s.optimizer, s.trainer.loss_fn, s.train, start_lr=start_lr, end_lr=end_lr,
                     steps=steps, precision=s.precision, device=s.device,
                     clip_grad_norm=s.trainer.clip_grad_norm, mix=s.trainer.mix)
    ended = "stopped: the loss diverged" if result.stopped == "diverged" else "all"
    log(f"{len(result.lrs)} steps ({ended}); "
        f"loss lowest at lr {result.lr_min:.2g}; suggested lr (minimum/10) {result.suggestion:.2g}; "
        f"steepest fall at lr {result.steepest:.2g}; the recipe's lr {recipe.lr:g}"
        + (" (the one-cycle peak)" if recipe.schedule == "onecycle" else ""))
    if plot is not None:
        from .report.plots import plot_lr_find
        plot_lr_find(result, plot, title=recipe.name, recipe_lr=recipe.lr)
        log(f"plot: {plot}")
    return result
