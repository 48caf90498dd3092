"""Keras semantics of EarlyStopping, ReduceLROnPlateau and ModelCheckpoint, driven by scripted
metric sequences on a real (tiny) model and optimizer."""
import math

import pytest
import torch
from torch import nn

from cnnlab.checkpoint import load_weights
from cnnlab.training import EarlyStopping, ModelCheckpoint, ReduceLROnPlateau


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


def test_model_checkpoint_keeps_the_best_over_two_fits(tmp_path):
    """As Keras' (whose best is set once, at construction): a second fit, e.g. fine-tuning after
    training the head, with the same callback overwrote the file with its first epoch, however
    much worse that was than the first fit's best."""
    t = FakeTrainer()
    path = tmp_path / "best.safetensors"
    mc = ModelCheckpoint(path, monitor="val_accuracy", save_best_only=True)
    drive(mc, t, [0.5, 0.8], key="val_accuracy")
    drive(mc, t, [0.6, 0.7], key="val_accuracy")
    assert mc.best == 0.8
    m = nn.Linear(2, 1)
    load_weights(m, path)
    assert m.weight.unique().item() == 1.0  # the first fit's epoch 1


def test_model_checkpoint_every_epoch_with_template(tmp_path):
    t = FakeTrainer()
    mc = ModelCheckpoint(str(tmp_path / "ep{epoch:02d}-{val_loss:.2f}.safetensors"))
    drive(mc, t, [0.5, 0.25])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ep01-0.50.safetensors", "ep02-0.25.safetensors"]


def test_model_checkpoint_field_missing_from_the_logs_is_named(tmp_path):
    t = FakeTrainer()
    mc = ModelCheckpoint(str(tmp_path / "ep{epoch:02d}-{val_accuracy:.4f}.safetensors"))
    with pytest.raises(ValueError, match=r"names the field 'val_accuracy'.*epoch 1 lack \(they "
                                         r"have: epoch, loss\).*validation split"):
        mc.on_epoch_end(t, 0, {"loss": 0.5})
    assert list(tmp_path.iterdir()) == []


def test_missing_monitor_warns_and_does_nothing():
    t = FakeTrainer()
    es = EarlyStopping(monitor="val_los", patience=0, mode="min")
    with pytest.warns(UserWarning, match="val_los.*not available"):
        drive(es, t, [1.0, 2.0])
    assert not t.should_stop


def test_mode_auto():
    assert EarlyStopping(monitor="val_accuracy").mode == "max"
    assert EarlyStopping(monitor="val_loss").mode == "min"
    with pytest.raises(ValueError):
        EarlyStopping(mode="maximum")
    assert math.isinf(ReduceLROnPlateau().best)
    # Keras 3: a loss is minimised whatever else its name says; a name that says nothing is refused
    for name, mode in [("top1", "max"), ("val_top5_accuracy", "max"), ("val_f1_loss", "min"),
                       ("top5_err", "min"), ("val_mae", "min"), ("val_auc", "max")]:
        assert EarlyStopping(monitor=name).mode == mode, name
        assert ReduceLROnPlateau(monitor=name).mode == mode, name
    with pytest.raises(ValueError, match=r"cannot tell whether 'val_score' should be minimised or "
                                         r"maximised: pass mode='min' or mode='max'"):
        ModelCheckpoint("x.safetensors", monitor="val_score")
    assert EarlyStopping(monitor="val_score", mode="max").mode == "max"


def test_reduce_lr_makes_no_empty_cut_one_rounding_step_above_min_lr():
    """1.0 cut by 0.1 three times is 1.0000000000000002e-3: Keras' float32 comparison sees it at
    min_lr=1e-3 and neither cuts again nor restarts the cooldown."""
    t = FakeTrainer()
    t.optimizer.param_groups[0]["lr"] = 1.0
    rl = ReduceLROnPlateau(factor=0.1, patience=1, cooldown=2, min_lr=1e-3)
    drive(rl, t, [1.0] * 12, mark_weights=False)
    cuts = [m for m in t.messages if "ReduceLROnPlateau" in m]
    assert len(cuts) == 3, cuts
    assert t.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3)


# --- FreezeAfter (airbench's whitening bias, trained for 3 epochs) ----------------------------

def _fit_with_freeze(epochs, freeze, initial_epoch=0):
    from cnnlab.training import Callback, FreezeAfter, Trainer
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9, weight_decay=0.1)
    snapshots = []

    class Snap(Callback):
        def on_epoch_end(self, trainer, epoch, logs):
            snapshots.append({k: v.clone() for k, v in model.state_dict().items()})

    x, y = torch.randn(32, 4), torch.randint(0, 2, (32,))
    t = Trainer(model, opt, nn.functional.cross_entropy, callbacks=[FreezeAfter(freeze), Snap()],
                progress=False, log=lambda m: None)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    t.fit([(x[:16], y[:16]), (x[16:], y[16:])], epochs=epochs, initial_epoch=initial_epoch)
    return model, before, snapshots


def test_freeze_after_trains_then_holds_the_named_parameters():
    model, before, snaps = _fit_with_freeze(3, {"0.bias": 1, "2": 2})
    # epoch 0 trains everything; from epoch 1 "0.bias" holds (momentum and weight decay
    # included), from epoch 2 the whole module "2" holds; "0.weight" trains throughout
    assert not torch.equal(snaps[0]["0.bias"], before["0.bias"])
    assert torch.equal(snaps[2]["0.bias"], snaps[0]["0.bias"])
    assert not torch.equal(snaps[1]["2.weight"], snaps[0]["2.weight"])
    assert torch.equal(snaps[2]["2.weight"], snaps[1]["2.weight"])
    assert torch.equal(snaps[2]["2.bias"], snaps[1]["2.bias"])
    assert not torch.equal(snaps[2]["0.weight"], snaps[1]["0.weight"])
    assert not model[0].bias.requires_grad and model[0].weight.requires_grad


def test_freeze_after_applies_at_once_to_a_resumed_run():
    model, before, snaps = _fit_with_freeze(4, {"0.bias": 1}, initial_epoch=2)
    assert torch.equal(snaps[-1]["0.bias"], before["0.bias"])
    assert not torch.equal(snaps[-1]["0.weight"], before["0.weight"])


def test_a_batchnorm_frozen_by_freeze_after_keeps_its_statistics_from_that_epoch():
    # the freeze happens in on_epoch_begin; frozen BatchNorm must be in inference mode in that
    # same epoch (not from the next one), as it is in a run resumed at that epoch
    from cnnlab.training import Callback, FreezeAfter, Trainer
    modes = []

    class Mode(Callback):
        def on_train_batch_end(self, trainer, epoch, step):
            if step == 0:
                modes.append((epoch, trainer.model[1].training))

    def fit(initial_epoch):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2))
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        t = Trainer(model, opt, nn.functional.cross_entropy, callbacks=[FreezeAfter({"1": 1}), Mode()],
                    progress=False, log=lambda m: None)
        x, y = torch.randn(32, 4), torch.randint(0, 2, (32,))
        t.fit([(x[:16], y[:16]), (x[16:], y[16:])], epochs=3, initial_epoch=initial_epoch)
        return model[1].running_mean.clone()

    fit(0)
    assert modes == [(0, True), (1, False), (2, False)]
    modes.clear()
    fit(1)
    assert modes == [(1, False), (2, False)]


def test_freeze_after_names_a_missing_parameter_with_close_matches():
    from cnnlab.registry import UnknownNameError
    from cnnlab.training import FreezeAfter
    with pytest.raises(UnknownNameError, match=r"no parameter '0\.bais'.*did you mean '0\.bias'"):
        FreezeAfter({"0.bais": 3}).check(nn.Sequential(nn.Linear(2, 2)))


def test_freeze_after_recipe_field_reaches_the_run(tmp_path):
    from cnnlab.recipes import get_recipe
    from cnnlab.registry import UnknownNameError
    from cnnlab.runs import prepare
    from cnnlab.data.core import ImageDataset
    x = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)
    ds = ImageDataset("synthetic", x, torch.arange(64) % 10, x[:8], torch.arange(8),
                      [str(i) for i in range(10)], (0.5,) * 3, (0.25,) * 3, {})
    r = get_recipe("cifar10-best", {"freeze_after": {"features.whiten.bias": 3}})
    s = prepare(r, ds, "cpu", progress=False)
    [freeze] = [cb for cb in s.trainer.callbacks if type(cb).__name__ == "FreezeAfter"]
    assert freeze.epochs == {"features.whiten.bias": 3}
    with pytest.raises(UnknownNameError, match="features.whiten.bias"):
        prepare(get_recipe("cifar10-best", {"freeze_after": {"features.whiten.bais": 3}}), ds, "cpu")


def test_reduce_lr_at_min_lr_starts_no_cooldown():
    """Keras starts the cooldown (and resets the wait) only when it cut a rate: at min_lr the
    wait keeps counting."""
    t = FakeTrainer()
    rl = ReduceLROnPlateau(factor=0.5, patience=1, cooldown=3, min_lr=0.1)  # lr already 0.1
    drive(rl, t, [1.0, 1.0, 1.0])
    assert (t.optimizer.param_groups[0]["lr"], rl.cooldown_counter, rl.wait) == (0.1, 0, 2)
    assert t.messages == []


def test_reduce_lr_logs_one_line_for_groups_cut_alike():
    t = FakeTrainer()
    t.optimizer = torch.optim.SGD([{"params": [t.model.weight]}, {"params": [t.model.bias]}], lr=0.1)
    drive(ReduceLROnPlateau(factor=0.5, patience=1), t, [1.0, 1.0])
    assert [g["lr"] for g in t.optimizer.param_groups] == [0.05, 0.05]
    assert t.messages == ["ReduceLROnPlateau: epoch 2: learning rate 0.1 -> 0.05"]


def test_reduce_lr_beside_a_scheduler_is_refused():
    """The scheduler sets the rate again at its next step, so the cut would be a silent no-op
    (it was, while the log said the rate was cut)."""
    from cnnlab.training import Trainer
    from cnnlab.training.optim import build_scheduler
    model = nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched, per_batch = build_scheduler(opt, "cosine", epochs=2, steps_per_epoch=3)
    with pytest.raises(ValueError, match=r"ReduceLROnPlateau cuts .* \(LambdaLR\)"):
        Trainer(model, opt, nn.functional.cross_entropy, scheduler=sched, step_per_batch=per_batch,
                callbacks=[ReduceLROnPlateau()])


def test_each_fit_from_epoch_0_starts_a_new_history():
    from cnnlab.training import Trainer
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), nn.functional.cross_entropy,
                      progress=False, log=lambda m: None)
    data = [(torch.randn(8, 1, 2, 2), torch.randint(0, 2, (8,)))]
    first = trainer.fit(data, epochs=2)
    second = trainer.fit(data, epochs=2)
    assert [e["epoch"] for e in first.epochs] == [1, 2] and [e["epoch"] for e in second.epochs] == [1, 2]
    assert trainer.history is second and first is not second
