"""The training loop: one readable ``fit`` with forward, loss, backward and step in plain view.

Per-batch metrics are accumulated on the device (no ``.item()`` synchronisation per step); they
are read once per epoch. Launched by torchrun, the training forward pass runs through
``DistributedDataParallel`` and the epoch's sums are all-reduced (:mod:`cnnlab.distributed`).
Callbacks observe through ``on_train_begin``/``on_epoch_begin``/``on_train_batch_end``/
``on_epoch_end``/``on_train_end`` and stop training by setting ``should_stop``.
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .. import distributed
from ..device import autocast
from ..models.base import eval_mode
from ..transfer import frozen_norms_eval
from .callbacks import Callback, ReduceLROnPlateau
from .mix import mixed_loss


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite. The message says when and what to try."""


@dataclass
class History:
    """Per-epoch metrics, like Keras' ``History.history`` but one dict per epoch.

    Each entry has ``epoch`` (1-based), ``loss``, ``accuracy`` (top-1, fraction), ``val_loss``,
    ``val_accuracy`` (when a validation set is given), ``learning_rate`` (the rate of the epoch's
    last optimizer step) and ``time_s``.
    """

    epochs: list[dict] = field(default_factory=list)

    def __getitem__(self, key: str) -> list[float]:
        """``history["val_accuracy"]`` -> the metric's values, epoch by epoch."""
        return [e[key] for e in self.epochs if key in e]

    def __len__(self) -> int:
        return len(self.epochs)

    @property
    def history(self) -> dict[str, list[float]]:
        """Keras' form, ``{"loss": [...], "val_accuracy": [...], ...}``: each metric's values,
        epoch by epoch (``epoch`` and ``time_s`` included)."""
        keys = dict.fromkeys(k for e in self.epochs for k in e)
        return {k: self[k] for k in keys}


def _progress(total: int, desc: str, enabled: bool):
    if not enabled or not sys.stdout.isatty():
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=desc, leave=False, unit="batch", dynamic_ncols=True)


def _ema(decay: float, warmup: bool = True):
    """``AveragedModel``'s ``multi_avg_fn`` for an EMA of decay ``decay``, with ``warmup`` one
    whose decay ramps up to it: ``min(decay, (1 + n) / (10 + n))`` after n updates (the count is
    the EMA's own buffer, so a resumed run goes on from it). Integer buffers (BatchNorm's batch
    count) take the model's: PyTorch's ``get_ema_multi_avg_fn`` rounds ``d * ema + (1 - d) * n``
    down, which leaves the count stuck near its first values."""
    @torch.no_grad()
    def update(ema_params, params, num_averaged) -> None:
        if warmup:
            n = int(num_averaged)
            d = min(decay, (1 + n) / (10 + n))
        else:
            d = decay
        if ema_params[0].is_floating_point():  # AveragedModel passes one dtype at a time
            torch._foreach_lerp_(ema_params, params, 1 - d)
        else:
            torch._foreach_copy_(ema_params, params)
    return update


def predicted_labels(logits: torch.Tensor) -> torch.Tensor:
    """The predicted classes, int64 ``(N,)``, of logits ``(N, K)``: the largest logit; for a
    single sigmoid output ``(N, 1)``, class 1 where the logit is positive (probability > 0.5)."""
    return (logits[:, 0] > 0).long() if logits.shape[1] == 1 else logits.argmax(1)


def _check_labels(y: torch.Tensor, logits: torch.Tensor) -> None:
    """The mistakes PyTorch reports as "Target 7 is out of bounds" or a dtype clash (one sync)."""
    binary = logits.shape[1] == 1  # one sigmoid logit: its loss takes 0/1 labels of any dtype
    if y.dim() != 1 or (not binary and (y.is_floating_point() or y.dtype == torch.bool)):
        hint = "; one-hot? labels.argmax(1) gives the indices" if y.dim() == 2 else ""
        raise ValueError(f"labels must be int64 class indices (N,), got {y.dtype} {tuple(y.shape)}{hint}")
    k = max(logits.shape[1], 2)
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or hi >= k:
        raise ValueError(f"label {lo if lo < 0 else hi} in the first batch is outside the model's "
                         f"classes 0..{k - 1} ({logits.shape[1]} logit(s)); give the model "
                         "num_classes = the number of classes")


def _diverged(split: str, loss: float, epoch: int, precision: str) -> str:
    """The message of a NonFiniteLossError in ``epoch`` (0-based) of a run in ``precision``."""
    kept = ("the checkpoints of earlier epochs are kept" if epoch else
            "no checkpoint was written (it was the first epoch)")
    fp32 = ", or use --precision fp32" if precision != "fp32" else ""
    return (f"{split} loss is {loss} in epoch {epoch + 1}; the weights have diverged. Lower the "
            f"learning rate (--set lr=...){fp32}; {kept}")


class Trainer:
    """Fits a classifier with an optimizer, a loss and callbacks.

    Args:
        model: maps float ``(N, C, H, W)`` to logits ``(N, K)``, or ``(N, 1)`` for a single
            sigmoid output (two classes; accuracy then uses the threshold 0.5, with a binary
            ``loss_fn`` such as ``classification_loss(binary=True)``).
        optimizer: any ``torch.optim`` optimizer over the model's parameters.
        loss_fn: ``(logits, labels) -> scalar``; labels int64 ``(N,)``.
        device: where the model and batches live.
        precision: ``"fp32"`` or ``"bf16"`` (autocast; weights and optimizer stay fp32); any
            other value raises ``ValueError``.
        callbacks: observers (EarlyStopping, ReduceLROnPlateau, ModelCheckpoint, ...).
        scheduler: an LR scheduler, stepped per batch if ``step_per_batch`` else per epoch.
        log: where one-line messages go (default: print).
        progress: show a progress bar when stdout is a terminal; one line per epoch otherwise.
        ema_decay: keep an exponential moving average of the weights (and BatchNorm statistics),
            updated after every optimizer step: ``ema = decay * ema + (1 - decay) * weights``
            (Polyak & Juditsky 1992; PyTorch's ``AveragedModel``, as timm's ``ModelEma`` and
            Keras' ``use_ema``). Validation, callbacks and checkpoints then use the EMA
            (``eval_model``); the training metrics are those of the raw weights.
        ema_warmup: the EMA's decay at its n-th update is ``min(ema_decay, (1 + n) / (10 + n))``
            (TensorFlow's ``ExponentialMovingAverage(num_updates=...)``), so that the random
            initial weights fade within the first steps instead of ~1 / (1 - ema_decay) steps.
        eval_loss_fn: the validation loss, where it differs from training's (class weights weigh
            the training loss only, as in Keras); default ``loss_fn``.
        clip_grad_norm: rescale the gradients so that their global L2 norm (over all parameters)
            is at most this before each step (Pascanu et al. 2013; Keras' ``global_clipnorm``,
            timm's ``--clip-grad``); None: no clipping.
        mix: MixUp/CutMix of the training batches (:class:`cnnlab.training.mix.BatchMix`): the
            loss is ``lam * loss_fn(logits, y) + (1 - lam) * loss_fn(logits, y_other)``, and the
            training accuracy counts a prediction of the label with the larger share as right.

    In a torchrun job (:mod:`cnnlab.distributed`) the training forward pass goes through
    ``DistributedDataParallel(model)`` (the same parameters), each process feeding its part of
    every batch; the training and validation metrics are summed over the processes, so every
    process logs and decides (callbacks) on the same figures.

    Raises:
        ValueError: a ``precision`` other than fp32 / bf16, or a ``scheduler`` together with a
            ReduceLROnPlateau callback (both set the learning rate).
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer,
                 loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], *,
                 device: torch.device | str = "cpu", precision: str = "fp32",
                 callbacks: Sequence[Callback] = (), scheduler=None, step_per_batch: bool = False,
                 log: Callable[[str], None] | None = None,
                 progress: bool = True, ema_decay: float | None = None, ema_warmup: bool = False,
                 eval_loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                 clip_grad_norm: float | None = None, mix=None):
        self.model, self.optimizer, self.loss_fn = model, optimizer, loss_fn
        self.eval_loss_fn = eval_loss_fn or loss_fn
        self.clip_grad_norm, self.mix = clip_grad_norm, mix
        self.device, self.precision = torch.device(device), precision
        autocast(self.device, precision)  # raises ValueError for anything but fp32 / bf16
        self.callbacks, self.scheduler, self.step_per_batch = list(callbacks), scheduler, step_per_batch
        if scheduler is not None and any(isinstance(c, ReduceLROnPlateau) for c in self.callbacks):
            raise ValueError("ReduceLROnPlateau cuts the optimizer's learning rate, which the "
                             f"scheduler ({type(scheduler).__name__}) sets again at its next step: "
                             "use one of the two")
        self.progress = progress
        self.log = log or (lambda msg: print(msg, flush=True))
        self.should_stop = False
        self._labels_checked = False  # the first batch's labels are checked against the logits
        self.history = History()
        self.on_epoch_saved: Callable[[int], None] | None = None  # the run folder's hook
        self.ema = None
        self.forward_model = distributed.wrap(model)  # DDP when launched by torchrun, else model
        if ema_decay is not None:
            from torch.optim.swa_utils import AveragedModel
            self.ema = AveragedModel(model, multi_avg_fn=_ema(ema_decay, ema_warmup), use_buffers=True)
            if getattr(self.ema.module, "_compiled_call_impl", None) is not None:
                self.ema.module._compiled_call_impl = None  # the copy would call the original's

    @property
    def eval_model(self) -> nn.Module:
        """The weights that are validated and checkpointed: the EMA if there is one, else ``model``."""
        return self.ema.module if self.ema is not None else self.model

    def _correct(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (predicted_labels(logits) == y).sum()

    def fit(self, train: Sequence, val: Iterable | None = None, epochs: int = 1,
            initial_epoch: int = 0) -> History:
        """Train for ``epochs`` epochs (counting from ``initial_epoch`` when resuming).

        ``train`` is iterated once per epoch and must have a ``len()`` (batches per epoch: the
        schedule and the progress bar read it), as a :class:`~cnnlab.data.loader.BatchLoader`,
        a ``DataLoader`` or a list of ``(x float (B, C, H, W), y int64 (B,))`` batches; ``val``
        any iterable of such batches.

        From ``initial_epoch=0`` it starts a new :class:`History` (returned, and
        ``self.history``) and calls the callbacks' ``on_train_begin`` (as each Keras ``fit``
        does); a resumed fit (``initial_epoch > 0``) appends to the history and callback states
        restored from the run's checkpoint.

        Raises:
            NonFiniteLossError: the epoch's mean training or validation loss is NaN/inf, or a
                trainable weight or the optimizer's state (momentum) is (a NaN in the inputs can
                leave the loss finite: ReLU, fused or not, maps NaN to 0); the epoch's callbacks
                do not run (no checkpoint of its weights). The best and last checkpoints of
                earlier epochs are kept.
            ValueError: ``train`` yields no batch; the first batch's labels are not int64 class
                indices ``(N,)`` or lie outside the model's classes; ``mix`` does CutMix on inputs
                that are not ``(B, C, H, W)``. The callbacks' own errors pass through
                (:class:`~cnnlab.training.callbacks.ModelCheckpoint`'s ValueError,
                :class:`~cnnlab.training.callbacks.FreezeAfter`'s UnknownNameError).
        """
        if len(train) == 0:
            raise ValueError("the training loader yields no batch (no examples, or fewer than one "
                             "batch with drop_last)")
        self.should_stop = False
        self.epochs, self.steps_per_epoch = epochs, len(train)  # read by per-step callbacks
        if initial_epoch == 0:  # a new run: a new History (as Keras' fit), callbacks told
            # (on_train_begin: EarlyStopping, ReduceLROnPlateau and Lookahead reset;
            # ModelCheckpoint keeps its best, as Keras')
            self.history = History()
            for cb in self.callbacks:
                cb.on_train_begin(self)
        for epoch in range(initial_epoch, epochs):
            t0 = time.perf_counter()
            logs, step_lr = self._train_epoch(train, epoch, first=epoch == initial_epoch)
            if not math.isfinite(logs["loss"]):
                raise NonFiniteLossError(_diverged("training", logs["loss"], epoch, self.precision))
            if val is not None:
                v = self.evaluate(val)
                logs["val_loss"], logs["val_accuracy"] = v["loss"], v["accuracy"]
                if not math.isfinite(logs["val_loss"]):  # diverged in the epoch's last steps:
                    raise NonFiniteLossError(_diverged("validation", logs["val_loss"], epoch, self.precision))
            self._check_weights_finite(epoch)  # NaN weights behind a finite loss
            # the rate the epoch's last step used, not the next one's (one past the end of a
            # per-step schedule after the last epoch)
            logs["learning_rate"] = float(step_lr)
            if self.scheduler is not None and not self.step_per_batch:
                self.scheduler.step()
            logs["time_s"] = time.perf_counter() - t0
            self.history.epochs.append({"epoch": epoch + 1, **logs})
            self.log(_epoch_line(epoch, epochs, logs))
            for cb in self.callbacks:
                cb.on_epoch_end(self, epoch, logs)
            if self.on_epoch_saved is not None:
                self.on_epoch_saved(epoch)
            if self.should_stop:
                break
        for cb in self.callbacks:
            cb.on_train_end(self)
        return self.history

    def _check_weights_finite(self, epoch: int) -> None:
        """Raise NonFiniteLossError if a trainable weight, or a float tensor of the optimizer's state
        (momentum, Adam's moments), holds NaN/inf; one sync per epoch. The state is checked as a
        callback may set the weights back to finite ones (Lookahead's slow weights at the end of an
        epoch), which would hide a NaN that the momentum carries into the next epoch."""
        named = list(self.model.named_parameters())
        tensors = [(n, p) for n, p in named if p.requires_grad]
        for n, p in named:
            for key, v in self.optimizer.state.get(p, {}).items():
                if torch.is_tensor(v) and v.is_floating_point() and v.device == p.device:  # not a CPU step count
                    tensors.append((f"{n} (optimizer state {key})", v))
        if not tensors or bool(torch.stack([torch.isfinite(t).all() for _, t in tensors]).all()):
            return
        bad = [n for n, t in tensors if not bool(torch.isfinite(t).all())]
        kept = ("the checkpoints of earlier epochs are kept" if epoch else
                "no checkpoint was written (it was the first epoch)")
        raise NonFiniteLossError(
            f"weights {', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''} hold NaN or inf after "
            f"epoch {epoch + 1} although the loss is finite: NaN in the inputs, or a diverging "
            f"learning rate; {kept}")

    def _train_epoch(self, train: Iterable, epoch: int, first: bool) -> tuple[dict, float]:
        """One pass over ``train``: the epoch's mean training loss and accuracy (summed over all
        processes under DDP) and the learning rate its last step used."""
        t0 = time.perf_counter()
        self.model.train()
        if hasattr(train, "set_epoch"):
            train.set_epoch(epoch)
        if self.mix is not None:
            self.mix.set_epoch(epoch, distributed.rank())
        for cb in self.callbacks:
            cb.on_epoch_begin(self, epoch)
        # frozen BatchNorm keeps its statistics (transfer), from the epoch a callback freezes it
        # in (FreezeAfter), so that a run resumed at that epoch trains as one never stopped
        frozen_norms_eval(self.model)
        loss_sum = torch.zeros((), device=self.device)  # sums stay on the device: no sync per step
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        seen = 0
        step_lr = self.optimizer.param_groups[0]["lr"]
        bar = _progress(len(train), f"epoch {epoch + 1}/{self.epochs}", self.progress)
        for step, (x, y) in enumerate(train):
            step_lr = self.optimizer.param_groups[0]["lr"]  # a float: no sync
            loss, logits, target = self._train_step(x, y)
            for cb in self.callbacks:
                cb.on_train_batch_end(self, epoch, step)
            if step == 0 and first and getattr(self.model, "_compiled_call_impl", None):
                self.log(f"first step (torch.compile included): {time.perf_counter() - t0:.1f}s")
            loss_sum += loss.detach() * len(y)
            correct += self._correct(logits.detach(), target)
            seen += len(y)
            if bar is not None:
                bar.update(1)
                if step % 20 == 0:  # a sync every 20 steps costs nothing measurable
                    bar.set_postfix(loss=f"{loss_sum.item() / seen:.4f}")
        if bar is not None:
            bar.close()
        if distributed.world_size() > 1:  # one all-reduce of the epoch's three sums
            sums = distributed.all_reduce_sum(torch.stack([loss_sum.double(), correct.double(),
                                                           torch.tensor(float(seen), device=self.device,
                                                                        dtype=torch.float64)]))
            loss_sum, correct, seen = sums[0], sums[1], int(sums[2].item())
            for m in dict.fromkeys((self.model, self.eval_model)):  # rank 0's BatchNorm stats
                distributed.broadcast_buffers(m)
        return {"loss": loss_sum.item() / max(seen, 1), "accuracy": correct.item() / max(seen, 1)}, step_lr

    def _train_step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One optimizer step on the batch ``x`` (float NCHW), ``y`` (int64 class indices; 0/1 for
        a single sigmoid output); returns the loss, the logits and the labels that accuracy counts
        (under MixUp/CutMix, those of the larger share)."""
        lam, target, y_other = 1.0, y, y
        if self.mix is not None:
            x, y_other, lam = self.mix(x, y)
            target = y if lam >= 0.5 else y_other
        with autocast(self.device, self.precision):
            logits = self.forward_model(x)
            if not self._labels_checked:
                _check_labels(y, logits)
                self._labels_checked = True
            loss = mixed_loss(self.loss_fn, logits, y, y_other, lam)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.clip_grad_norm is not None:  # on the device: no sync
            nn.utils.clip_grad_norm_(self.model.parameters(), self.clip_grad_norm)
        self.optimizer.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        if self.scheduler is not None and self.step_per_batch:
            self.scheduler.step()
        return loss, logits, target

    @torch.no_grad()
    def evaluate(self, loader: Iterable) -> dict:
        """Mean loss and top-1 accuracy of :attr:`eval_model` over ``loader`` in eval mode.

        Returns:
            ``{"loss", "accuracy", "correct", "total"}`` (accuracy as a fraction).
        """
        out = evaluate(self.eval_model, loader, self.eval_loss_fn, self.device, self.precision)
        if distributed.world_size() > 1:  # each process evaluated its part: sum them
            sums = distributed.all_reduce_sum(torch.tensor(
                [out["loss"] * out["total"], out["correct"], out["total"]], dtype=torch.float64,
                device=self.device)).tolist()
            out = {"loss": sums[0] / max(sums[2], 1), "correct": int(sums[1]), "total": int(sums[2])}
            out["accuracy"] = out["correct"] / max(out["total"], 1)
        return {k: out[k] for k in ("loss", "accuracy", "correct", "total")}


TTA_MODES = ("none", "flip", "flip-shift")


def tta_logits(model: nn.Module, x: torch.Tensor, tta: str = "none") -> torch.Tensor:
    """The model's logits ``(N, K)`` for a batch ``x`` float ``(N, C, H, W)``, averaged over
    test-time views (the views of airbench94's evaluation, Jordan 2024, arXiv:2404.00498):

    * ``"none"``: ``model(x)`` as it is (dtype of the forward pass, e.g. bf16 under autocast).
    * ``"flip"``: the mean of the logits of ``x`` and of its horizontal mirror image (2 passes).
    * ``"flip-shift"``: airbench's "mirror + translate": half the ``"flip"`` logits of ``x``, plus
      a quarter of those of ``x`` moved one pixel down-right and a quarter of ``x`` moved one
      pixel up-left (reflect padding, so no black border appears); 6 passes.

    The averaged logits are float32.

    Raises:
        ValueError: a ``tta`` not in ``TTA_MODES``, or ``"flip"`` / ``"flip-shift"`` on anything but
            images ``(N, C, H, W)`` (a 1-D signal ``(N, C, L)`` has no mirror image).
    """
    if tta == "none":
        return model(x)
    if x.dim() != 4:
        raise ValueError(f"test-time augmentation {tta!r} needs images (N, C, H, W); the inputs "
                         f"have shape {tuple(x.shape)}: use tta='none'")

    def mirrored(v: torch.Tensor) -> torch.Tensor:
        return (model(v).float() + model(v.flip(-1)).float()) / 2
    if tta == "flip":
        return mirrored(x)
    if tta == "flip-shift":
        h, w = x.shape[-2:]
        fmt = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) \
            else torch.contiguous_format
        padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
        down_right, up_left = (padded[..., i:i + h, i:i + w].contiguous(memory_format=fmt) for i in (0, 2))
        return mirrored(x) / 2 + (mirrored(down_right) + mirrored(up_left)) / 4
    raise ValueError(f"unknown test-time augmentation {tta!r}; choose one of {', '.join(TTA_MODES)}")


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable, loss_fn, device: torch.device, precision: str = "fp32",
             keep_logits: bool = False, tta: str = "none") -> dict:
    """Evaluate ``model`` on every batch ``(x float (B, C, H, W) or (B, C, L), y int64 (B,))`` of
    ``loader``, on ``device``, in inference mode (each module's own mode restored after).

    ``tta`` (test-time augmentation, see :func:`tta_logits`): ``"flip"`` or ``"flip-shift"``
    average the logits over views of each batch; the loss is computed on those mean logits.

    Returns:
        ``loss`` (mean), ``accuracy`` (top-1 fraction), ``correct``, ``total``; with
        ``keep_logits`` also ``logits`` float32 ``(N, K)`` and ``labels`` int64 ``(N,)`` on CPU.

    Raises:
        ValueError: an unknown ``precision``, or ``tta`` other than ``"none"`` on inputs that are
            not 4-D images (:func:`tta_logits`).
    """
    with eval_mode(model):
        return _evaluate(model, loader, loss_fn, device, precision, keep_logits, tta)


def _evaluate(model, loader, loss_fn, device, precision, keep_logits, tta) -> dict:
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    total = 0
    all_logits, all_labels = [], []
    for x, y in loader:
        with autocast(device, precision):
            logits = tta_logits(model, x, tta)
            loss = loss_fn(logits, y)
        logits = logits.float()
        loss_sum += loss.float() * len(y)
        pred_ok = predicted_labels(logits) == y
        correct += pred_ok.sum()
        total += len(y)
        if keep_logits:
            all_logits.append(logits.cpu())
            all_labels.append(y.cpu())
    out = {"loss": loss_sum.item() / max(total, 1), "correct": int(correct.item()), "total": total}
    out["accuracy"] = out["correct"] / max(total, 1)
    if keep_logits:
        out["logits"] = torch.cat(all_logits) if all_logits else torch.zeros(0)
        out["labels"] = torch.cat(all_labels) if all_labels else torch.zeros(0, dtype=torch.long)
    return out


def _epoch_line(epoch: int, epochs: int, logs: dict) -> str:
    parts = [f"epoch {epoch + 1}/{epochs}", f"loss {logs['loss']:.4f}", f"accuracy {logs['accuracy']:.4f}"]
    if "val_loss" in logs:
        parts += [f"val_loss {logs['val_loss']:.4f}", f"val_accuracy {logs['val_accuracy']:.4f}"]
    parts += [f"lr {logs['learning_rate']:.3g}", f"{logs['time_s']:.1f}s"]
    return " - ".join(parts)
