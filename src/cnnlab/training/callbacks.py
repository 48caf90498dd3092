"""Keras-style callbacks: EarlyStopping, ReduceLROnPlateau, ModelCheckpoint; Lookahead, FreezeAfter.

Semantics follow ``keras.callbacks`` (Keras 3): the same arguments, defaults and decisions, so a
recipe ported from a notebook behaves the same. Callbacks observe the trainer through five hooks
and stop training by setting ``trainer.should_stop`` (no exceptions as control flow); their
state is saved in the run checkpoint, so a resumed run continues counting patience where it was.
:class:`Lookahead` (airbench94's weight averaging) acts after every optimizer step;
:class:`FreezeAfter` (airbench94's whitening bias, trained for 3 epochs) at the start of an epoch.

``logs`` hold the epoch's metrics: ``loss``, ``accuracy``, ``val_loss``, ``val_accuracy``,
``learning_rate``.
"""
from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # pragma: no cover
    from .loop import Trainer


def _mode(monitor: str, mode: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode != "auto":
        return mode
    # as Keras 3: losses are minimised, accuracy-like metrics maximised, and a name that says
    # neither is refused rather than guessed ("top1" minimised, "f1_loss" maximised)
    name = monitor.removeprefix("val_").lower()
    if name.endswith("loss") or any(k in name for k in ("err", "mae", "mse")):
        return "min"
    if any(k in name for k in ("acc", "auc", "precision", "recall", "f1", "top")):
        return "max"
    raise ValueError(f"mode='auto' cannot tell whether {monitor!r} should be minimised or "
                     "maximised: pass mode='min' or mode='max'")


def _metric(logs: dict, monitor: str, who: str) -> float | None:
    if monitor not in logs:
        import warnings
        warnings.warn(f"{who}: monitored metric {monitor!r} is not available; available metrics: "
                      f"{', '.join(sorted(logs))}. Skipping.", stacklevel=3)
        return None
    return float(logs[monitor])


class Callback:
    """Base class. Override any of the hooks; keep resumable state in ``state_dict``."""

    def on_train_begin(self, trainer: "Trainer") -> None:
        """Once, before the first epoch of a new run (not when a run resumes)."""
    def on_epoch_begin(self, trainer: "Trainer", epoch: int) -> None:
        """Before the epoch's first step, also the first epoch of a resumed run."""
    def on_train_batch_end(self, trainer: "Trainer", epoch: int, step: int) -> None:
        """After each optimizer (and per-batch scheduler) step; ``step`` counts from 0 in the
        epoch. ``trainer.epochs`` and ``trainer.steps_per_epoch`` give the run's length."""
    def on_epoch_end(self, trainer: "Trainer", epoch: int, logs: dict) -> None:
        """After the epoch's validation, before its checkpoint is saved; ``logs`` holds ``loss``,
        ``accuracy``, ``val_loss``, ``val_accuracy`` (with a validation split), ``learning_rate``
        and ``time_s`` (seconds). Set ``trainer.should_stop = True`` to end training after it."""
    def on_train_end(self, trainer: "Trainer") -> None:
        """Once, after the last epoch (or the early stop)."""

    def state_dict(self) -> dict:
        """What must survive a restart: saved in ``last_state.pt`` after every epoch."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict` when a run resumes (default: set each key as an attribute)."""
        for k, v in state.items():
            setattr(self, k, v)


class EarlyStopping(Callback):
    """Stop training when ``monitor`` has stopped improving (``keras.callbacks.EarlyStopping``).

    Args:
        monitor: metric to watch (``val_loss``, ``val_accuracy``, ...).
        min_delta: smallest change that counts as an improvement (absolute, metric units).
        patience: epochs without improvement after which training stops.
        mode: ``min``, ``max`` or ``auto``: ``min`` for losses and errors (``*loss``, ``*err*``,
            ``*mae*``, ``*mse*``), ``max`` for accuracy-like names (``acc``, ``auc``,
            ``precision``, ``recall``, ``f1``, ``top``).
        baseline: training also stops if the metric does not beat this value within
            ``patience`` epochs.
        restore_best_weights: at the end of training -- early stop or not -- load the weights of
            the best epoch (Keras 3 behaviour).
        start_from_epoch: epochs of warm-up before improvements are looked for.

    Raises:
        ValueError: ``mode`` not ``min``, ``max`` or ``auto``, or ``auto`` for a name that is
            neither loss- nor accuracy-like.
    """

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0.0, patience: int = 0,
                 mode: str = "auto", baseline: float | None = None,
                 restore_best_weights: bool = False, start_from_epoch: int = 0):
        self.monitor, self.patience, self.baseline = monitor, patience, baseline
        self.mode = _mode(monitor, mode)
        self.min_delta = abs(min_delta)
        self.restore_best_weights, self.start_from_epoch = restore_best_weights, start_from_epoch
        self.on_train_begin(None)

    def on_train_begin(self, trainer) -> None:
        self.wait, self.stopped_epoch, self.best_epoch = 0, -1, -1
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_weights: dict | None = None

    def _improved(self, current: float, reference: float) -> bool:
        if self.mode == "min":
            return current + self.min_delta < reference
        return current - self.min_delta > reference

    def on_epoch_end(self, trainer, epoch, logs) -> None:
        current = _metric(logs, self.monitor, "EarlyStopping")
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = _copy_weights(_evaluated(trainer))  # the first epoch is the best so far
            self.best_epoch = epoch
        self.wait += 1
        if self._improved(current, self.best):
            self.best, self.best_epoch = current, epoch
            if self.restore_best_weights:
                self.best_weights = _copy_weights(_evaluated(trainer))
            if self.baseline is None or self._improved(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            trainer.should_stop = True

    def on_train_end(self, trainer) -> None:
        if self.stopped_epoch >= 0:
            trainer.log(f"EarlyStopping: stopped after epoch {self.stopped_epoch + 1}: {self.monitor} "
                        f"did not improve for {self.patience} epoch(s)")
        if self.restore_best_weights and self.best_weights is not None:
            _evaluated(trainer).load_state_dict(self.best_weights)
            trainer.log(f"EarlyStopping: restored the weights of epoch {self.best_epoch + 1} "
                        f"({self.monitor} {self.best:.4f})")

    def state_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("wait", "stopped_epoch", "best_epoch", "best", "best_weights")}


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` when ``monitor`` has stopped improving
    (``keras.callbacks.ReduceLROnPlateau``).

    Args:
        monitor: metric to watch.
        factor: new_lr = lr * factor (0 < factor < 1).
        patience: epochs without improvement before the LR is reduced.
        mode: ``min``, ``max`` or ``auto`` (as :class:`EarlyStopping`).
        min_delta: threshold for measuring a new best (absolute).
        cooldown: epochs to wait after a reduction before counting patience again.
        min_lr: lower bound on the learning rate.

    The rate it cuts is the optimizer's ``lr``, so it cannot be paired with a scheduler that
    sets the rate itself (the :class:`~cnnlab.training.Trainer` refuses the pair, as Keras
    refuses to set the rate of an optimizer built with a ``LearningRateSchedule``).

    Raises:
        ValueError: ``factor`` outside (0, 1), or an unknown ``mode`` (or ``auto`` for a name
            that is neither loss- nor accuracy-like).
    """

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10,
                 mode: str = "auto", min_delta: float = 1e-4, cooldown: int = 0, min_lr: float = 0.0):
        if not 0 < factor < 1:
            raise ValueError(f"ReduceLROnPlateau factor must be in (0, 1), got {factor}")
        self.monitor, self.factor, self.patience = monitor, factor, patience
        self.mode, self.min_delta = _mode(monitor, mode), abs(min_delta)
        self.cooldown, self.min_lr = cooldown, min_lr
        self.on_train_begin(None)

    def on_train_begin(self, trainer) -> None:
        self.wait, self.cooldown_counter = 0, 0
        self.best = math.inf if self.mode == "min" else -math.inf

    def on_epoch_end(self, trainer, epoch, logs) -> None:
        current = _metric(logs, self.monitor, "ReduceLROnPlateau")
        if current is None:
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        better = (current < self.best - self.min_delta if self.mode == "min"
                  else current > self.best + self.min_delta)
        if better:
            self.best, self.wait = current, 0
        elif self.cooldown_counter <= 0:
            self.wait += 1
            if self.wait >= self.patience:
                cuts = []
                for group in trainer.optimizer.param_groups:
                    old = float(group["lr"])
                    # above min_lr by more than rounding (repeated cuts can leave 1e-3 + 2e-19,
                    # whose "cut" would change nothing yet restart the cooldown)
                    if old > self.min_lr and not math.isclose(old, self.min_lr, rel_tol=1e-6):
                        group["lr"] = max(old * self.factor, self.min_lr)
                        cuts.append(f"{old:.3g} -> {group['lr']:.3g}")
                if cuts:  # as Keras: the cooldown starts only when a rate was cut
                    trainer.log(f"ReduceLROnPlateau: epoch {epoch + 1}: learning rate "
                                f"{', '.join(dict.fromkeys(cuts))}")
                    self.cooldown_counter, self.wait = self.cooldown, 0

    def state_dict(self) -> dict:
        return {"wait": self.wait, "cooldown_counter": self.cooldown_counter, "best": self.best}


class ModelCheckpoint(Callback):
    """Save the model's weights (safetensors) after an epoch (``keras.callbacks.ModelCheckpoint``).
    With an EMA of the weights (``Trainer(ema_decay=...)``) it saves the EMA, the weights that
    were evaluated.

    Args:
        filepath: target file; may contain Keras-style fields, e.g.
            ``"ckpt-{epoch:02d}-{val_accuracy:.4f}.safetensors"`` (``epoch`` counts from 1).
        monitor: metric deciding what "best" is.
        mode: ``min``, ``max`` or ``auto`` (as :class:`EarlyStopping`).
        save_best_only: only write when ``monitor`` improves; with a fixed ``filepath`` the file
            then always holds the best weights seen, also over several ``fit`` calls (as Keras).

    Raises:
        ValueError: an unknown ``mode``; at the end of an epoch, a ``filepath`` field that the
            epoch's logs do not have (e.g. ``{val_accuracy}`` without a validation split).

    Writes are atomic: an interrupted save leaves the previous file intact. In a torchrun job
    only rank 0 writes (every process holds the same weights and metrics).
    """

    def __init__(self, filepath: str | os.PathLike, monitor: str = "val_loss", mode: str = "auto",
                 save_best_only: bool = False):
        self.filepath, self.monitor = str(filepath), monitor
        self.mode, self.save_best_only = _mode(monitor, mode), save_best_only
        # set once, not at each fit (as Keras): a second fit overwrites the file only with better weights
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch = -1

    def on_epoch_end(self, trainer, epoch, logs) -> None:
        try:
            path = self.filepath.format(epoch=epoch + 1, **logs)
        except (KeyError, IndexError) as e:
            raise ValueError(f"ModelCheckpoint filepath {self.filepath!r} names the field {e}, which "
                             f"the logs of epoch {epoch + 1} lack (they have: epoch, "
                             f"{', '.join(logs)}); val_ metrics need a validation split") from None
        if self.save_best_only:
            current = _metric(logs, self.monitor, "ModelCheckpoint")
            if current is None:
                return
            if not (current < self.best if self.mode == "min" else current > self.best):
                return
            self.best, self.best_epoch = current, epoch
        from .. import distributed
        from ..checkpoint import save_weights
        if not distributed.is_main():
            return
        save_weights(_evaluated(trainer), path, metadata={"epoch": str(epoch + 1),
                                                        **{k: f"{v:.6g}" for k, v in logs.items()}})

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch}


class Lookahead(Callback):
    """airbench94's Lookahead (Jordan 2024, arXiv:2404.00498; after Zhang et al. 2019,
    "Lookahead Optimizer: k steps forward, 1 step back"): every ``every`` optimizer steps from
    epoch ``start_epoch`` on, a slow copy of the model's float state (weights and BatchNorm
    statistics) moves towards the trained weights, ``slow = rho * slow + (1 - rho) * fast``, and
    the model is set back to it. The averaging strengthens over the run,
    ``rho = decay ** every * (t / T) ** decay_power`` (``t`` the step, ``T`` the run's steps), so
    it moves fast early and averages strongly at the end. At the end of every epoch the model is
    set to the slow weights, which are therefore what is validated and checkpointed (with a weight
    EMA as well, ``ema_decay``, the EMA is: it is updated each step, before Lookahead's reset, so
    it also averages fast weights that Lookahead then discards; no recipe combines the two).

    Args:
        start_epoch: first epoch (0-based) that averages; airbench: 3 of 9.9.
        every: optimizer steps between updates (airbench: 5).
        decay: per-step base of ``rho`` (airbench: 0.95). decay_power: airbench: 3.

    The slow copy is part of :meth:`state_dict`, so a resumed run continues it exactly (the copy
    restored by :meth:`load_state_dict` moves to the model's device at its first use).

    Raises:
        ValueError: ``every`` under 1 or ``decay`` outside [0, 1].
    """

    def __init__(self, start_epoch: int = 3, every: int = 5, decay: float = 0.95, decay_power: float = 3.0):
        if every < 1 or not 0 <= decay <= 1:
            raise ValueError(f"Lookahead: every must be >= 1 and decay in [0, 1], got {every}, {decay}")
        self.start_epoch, self.every, self.decay, self.decay_power = start_epoch, every, decay, decay_power
        self.slow: dict[str, torch.Tensor] | None = None

    def on_train_begin(self, trainer) -> None:
        self.slow = None

    @torch.no_grad()
    def on_train_batch_end(self, trainer, epoch, step) -> None:
        if epoch < self.start_epoch:
            return
        t = epoch * trainer.steps_per_epoch + step + 1
        if t % self.every == 0:  # afterwards the model holds the slow weights
            fast = _float_state(trainer.model)
            if self.slow is None:
                self.slow = {k: v.clone() for k, v in fast.items()}
            else:
                total = trainer.epochs * trainer.steps_per_epoch
                rho = self.decay ** self.every * min(1.0, t / total) ** self.decay_power
                for k, v in self._slow_on(fast).items():
                    self.slow[k].lerp_(v, 1 - rho)
                    v.copy_(self.slow[k])
        elif step == trainer.steps_per_epoch - 1 and self.slow is not None:  # end of the epoch
            for k, v in self._slow_on(_float_state(trainer.model)).items():
                v.copy_(self.slow[k])

    def _slow_on(self, fast: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``fast``, once the slow copy is on its device (a resumed run's was read onto the CPU)."""
        for k, v in fast.items():
            if self.slow[k].device != v.device:
                self.slow[k] = self.slow[k].to(v.device)
        return fast

    def state_dict(self) -> dict:
        return {"slow": self.slow}

    def load_state_dict(self, state: dict) -> None:
        self.slow = state.get("slow")


class FreezeAfter(Callback):
    """Train some parameters for the first epochs only, then freeze them (airbench94, Jordan
    2024, arXiv:2404.00498, trains the bias of its patch-whitening stem for 3 epochs).

    At the start of epoch ``epochs[name]`` (0-based, i.e. after that many epochs) and of every
    later one, each parameter named ``name``, or inside the module ``name``, gets
    ``requires_grad=False``: its gradient stays None, so the optimizer leaves it alone (no
    update, no weight decay, no momentum). Nothing is unfrozen; a resumed run freezes again from
    its first epoch. In a torchrun job the DistributedDataParallel wrapper is rebuilt after a
    freeze (DDP fixes the set of parameters it reduces when it is made).

    Args:
        epochs: ``{name as in model.named_parameters() (or a module prefix): epochs it trains}``,
            e.g. ``{"features.whiten.bias": 3}``.

    Raises:
        UnknownNameError: (:meth:`check`, and at the first epoch) a name that matches no
            parameter; the message lists close matches.
    """

    def __init__(self, epochs: dict[str, int]):
        self.epochs = dict(epochs)

    def _matches(self, name: str) -> str | None:
        for key in self.epochs:
            if name == key or name.startswith(key + "."):
                return key
        return None

    def check(self, model: torch.nn.Module) -> None:
        """Raise :class:`~cnnlab.registry.UnknownNameError` for a name that matches no parameter."""
        names = [n for n, _ in model.named_parameters()]
        for key in self.epochs:
            if not any(n == key or n.startswith(key + ".") for n in names):
                from ..registry import UnknownNameError, did_you_mean
                raise UnknownNameError(f"freeze_after: no parameter {key!r} in the model"
                                       f"{did_you_mean(key, names)}"
                                       " (`cnnlab summary MODEL` shows its layers)")

    def on_epoch_begin(self, trainer, epoch) -> None:
        self.check(trainer.model)
        frozen = False
        for name, p in trainer.model.named_parameters():
            key = self._matches(name)
            if key is not None and epoch >= self.epochs[key] and p.requires_grad:
                p.requires_grad_(False)
                frozen = True
        if frozen:
            from .. import distributed
            if distributed.world_size() > 1:
                trainer.forward_model = distributed.wrap(trainer.model)

    def state_dict(self) -> dict:
        return {}  # the freeze follows from the epoch alone


def _float_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict().items() if v.is_floating_point()}


def _evaluated(trainer) -> torch.nn.Module:
    """The weights a trainer validates: its EMA where it keeps one (``Trainer.eval_model``), else
    its model (also for any loop of a user's own that only has ``.model``)."""
    return getattr(trainer, "eval_model", trainer.model)


def _copy_weights(model: torch.nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


__all__ = ["Callback", "EarlyStopping", "ReduceLROnPlateau", "ModelCheckpoint", "Lookahead",
           "FreezeAfter"]
