"""Keras semantics of EarlyStopping, ReduceLROnPlateau and ModelCheckpoint, driven by scripted
metric sequences on a real (tiny) model and optimizer."""
import math

import pytest
import torch
from torch import nn

from cnnlab.checkpoint import load_weights
from cnnlab.train import EarlyStopping, ModelCheckpoint, ReduceLROnPlateau


class FakeTrainer:
    def __init__(self):
        self.model = nn.Linear(2, 1)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.1)
        self.should_stop = False
        self.messages = []

    def log(self, msg):
        self.messages.append(msg)


def drive(cb, trainer, values, key="val_loss", mark_weights=True):
    """Feed one metric value per epoch; each epoch's weights are set to the epoch number so we can
    tell which epoch's weights are in the model afterwards. Returns epochs run."""
    cb.on_train_begin(trainer)
    run = 0
    for epoch, v in enumerate(values):
        if mark_weights:
            with torch.no_grad():
                trainer.model.weight.fill_(epoch)
        cb.on_epoch_end(trainer, epoch, {key: v, "learning_rate": trainer.optimizer.param_groups[0]["lr"]})
        run += 1
        if trainer.should_stop:
            break
    cb.on_train_end(trainer)
    return run


def test_early_stopping_stops_after_patience_and_restores_best():
    t = FakeTrainer()
    es = EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    # best at epoch 1 (0.5); epochs 2, 3 do not improve -> stop after epoch 3 (index 3)
    ran = drive(es, t, [1.0, 0.5, 0.6, 0.7, 0.1, 0.1])
    assert ran == 4 and t.should_stop
    assert es.stopped_epoch == 3 and es.best_epoch == 1
    assert t.model.weight.unique().item() == 1.0  # weights of epoch index 1 restored


def test_early_stopping_restores_best_even_without_stopping():
    t = FakeTrainer()
    es = EarlyStopping(monitor="val_accuracy", patience=10, restore_best_weights=True)
    drive(es, t, [0.5, 0.9, 0.8], key="val_accuracy")  # mode auto -> max
    assert not t.should_stop
    assert t.model.weight.unique().item() == 1.0


def test_early_stopping_min_delta():
    t = FakeTrainer()
    es = EarlyStopping(monitor="val_loss", patience=1, min_delta=0.1)
    ran = drive(es, t, [1.0, 0.95, 0.5])  # 0.95 is not an improvement by > 0.1
    assert ran == 2 and t.should_stop


def test_reduce_lr_on_plateau_after_patience():
    t = FakeTrainer()
    rl = ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2, min_lr=0.03)
    lrs = []
    rl.on_train_begin(t)
    for epoch, v in enumerate([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]):
        rl.on_epoch_end(t, epoch, {"val_loss": v})
        lrs.append(t.optimizer.param_groups[0]["lr"])
    # no improvement from epoch 1 on: reduce at epoch 2 (wait hits 2), again at epoch 4, then floor
    assert lrs == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.03, 0.03, 0.03])


def test_reduce_lr_improvement_resets_wait():
    t = FakeTrainer()
    rl = ReduceLROnPlateau(monitor="val_loss", factor=0.1, patience=2)
    rl.on_train_begin(t)
    for epoch, v in enumerate([1.0, 1.0, 0.5, 0.5]):  # improvement at epoch 2 resets the count
        rl.on_epoch_end(t, epoch, {"val_loss": v})
    assert t.optimizer.param_groups[0]["lr"] == pytest.approx(0.1)


def test_model_checkpoint_keeps_only_best(tmp_path):
    t = FakeTrainer()
    path = tmp_path / "best.safetensors"
    mc = ModelCheckpoint(path, monitor="val_accuracy", save_best_only=True)
    drive(mc, t, [0.5, 0.8, 0.7, 0.6], key="val_accuracy")
    assert mc.best_epoch == 1 and mc.best == 0.8
    m = nn.Linear(2, 1)
    load_weights(m, path)
    assert m.weight.unique().item() == 1.0  # epoch 1's weights, not the later, worse ones
    assert [p.name for p in tmp_path.iterdir()] == ["best.safetensors"]  # no temp files left


def test_model_checkpoint_every_epoch_with_template(tmp_path):
    t = FakeTrainer()
    mc = ModelCheckpoint(str(tmp_path / "ep{epoch:02d}-{val_loss:.2f}.safetensors"))
    drive(mc, t, [0.5, 0.25])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ep01-0.50.safetensors", "ep02-0.25.safetensors"]


def test_missing_monitor_warns_and_does_nothing():
    t = FakeTrainer()
    es = EarlyStopping(monitor="val_los", patience=0)
    with pytest.warns(UserWarning, match="val_los.*not available"):
        drive(es, t, [1.0, 2.0])
    assert not t.should_stop


def test_mode_auto():
    assert EarlyStopping(monitor="val_accuracy").mode == "max"
    assert EarlyStopping(monitor="val_loss").mode == "min"
    with pytest.raises(ValueError):
        EarlyStopping(mode="maximum")
    assert math.isinf(ReduceLROnPlateau().best)
