import math

import pytest
import torch
from torch import nn

from cnnlab.data.loader import BatchLoader
from cnnlab.models import create_model
from cnnlab.training import NonFiniteLossError, Trainer, build_optimizer, build_scheduler, classification_loss
from helpers import toy_dataset, without_times


def make_loaders(ds, bs=64, seed=0):
    kw = dict(mean=ds.mean, std=ds.std)
    return (BatchLoader(ds.train_images, ds.train_labels, bs, shuffle=True, seed=seed, **kw),
            BatchLoader(ds.test_images, ds.test_labels, 200, **kw))


def fit_toy(precision="fp32", epochs=3, seed=0, opt="adam"):
    torch.manual_seed(seed)
    ds = toy_dataset()
    model = create_model("lenet5", num_classes=4)
    tr, va = make_loaders(ds, seed=seed)
    optimizer = build_optimizer(model.parameters(), opt, 1e-3 if opt == "adam" else 0.05)
    t = Trainer(model, optimizer, classification_loss(), precision=precision, log=lambda m: None)
    return t.fit(tr, va, epochs=epochs), t


def test_loss_goes_down_and_learns():
    h, t = fit_toy(epochs=4)
    assert h["loss"][-1] < 0.5 * h["loss"][0]
    assert h["val_accuracy"][-1] > 0.95  # chance is 0.25
    # Keras' History.history form: metric -> values, epoch by epoch
    assert h.history["loss"] == h["loss"] and h.history["epoch"] == [1, 2, 3, 4]
    assert list(h.history) == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "time_s"]


def test_bf16_autocast_learns_too():
    h, _ = fit_toy(precision="bf16", epochs=4)
    assert h["val_accuracy"][-1] > 0.95


def test_sgd_momentum_learns():
    h, _ = fit_toy(opt="sgd", epochs=4)
    assert h["val_accuracy"][-1] > 0.9


def test_same_seed_same_numbers():
    h1, _ = fit_toy(epochs=2, seed=3)
    h2, _ = fit_toy(epochs=2, seed=3)
    assert without_times(h1) == without_times(h2)


@pytest.mark.parametrize("precision", ["fp16", "auto", "BF16"])
def test_an_unresolved_or_unknown_precision_is_refused_up_front(precision):
    # "auto" is resolved for a device by resolve_precision before a Trainer sees it; anything
    # else but fp32 / bf16 once ran silently in fp32
    model = nn.Linear(2, 2)
    with pytest.raises(ValueError, match=f"precision '{precision}': expected 'fp32' or 'bf16'"):
        Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), nn.CrossEntropyLoss(),
                precision=precision, log=lambda m: None)


def test_nan_loss_raises_clear_error():
    ds = toy_dataset(n_train=128, n_test=64)
    model = create_model("lenet5", num_classes=4)
    with torch.no_grad():
        model.classifier.output.weight.fill_(float("nan"))
    tr, va = make_loaders(ds)
    t = Trainer(model, build_optimizer(model.parameters(), "adam", 1e-3), classification_loss(),
                log=lambda m: None)
    with pytest.raises(NonFiniteLossError, match="training loss is nan in epoch 1.*Lower the "
                                                 "learning rate.*no checkpoint was written") as e:
        t.fit(tr, va, epochs=1)
    assert "--precision fp32" not in str(e.value)  # the run is in fp32 already
    t = Trainer(model, build_optimizer(model.parameters(), "adam", 1e-3), classification_loss(),
                log=lambda m: None, precision="bf16")
    with pytest.raises(NonFiniteLossError, match=r"\(--set lr=...\), or use --precision fp32"):
        t.fit(tr, va, epochs=1)


def test_weights_that_diverge_in_the_last_step_stop_training_before_any_checkpoint(tmp_path):
    """The epoch's training loss is that of the weights before each step, so weights that break
    in the epoch's last step show only in the validation loss: that stops training too, before
    the epoch's callbacks could keep the broken weights as the best."""
    from cnnlab.training import Callback, ModelCheckpoint
    ds = toy_dataset(n_train=128, n_test=64)
    model = create_model("lenet5", num_classes=4)
    tr, va = make_loaders(ds)

    class BreakInEpoch2(Callback):
        def on_train_batch_end(self, trainer, epoch, step):
            if epoch == 1 and step == len(tr) - 1:
                with torch.no_grad():
                    trainer.model.classifier.output.weight.fill_(float("nan"))

    ckpt = ModelCheckpoint(tmp_path / "best.safetensors", monitor="val_accuracy", save_best_only=True)
    t = Trainer(model, build_optimizer(model.parameters(), "adam", 1e-3), classification_loss(),
                callbacks=[BreakInEpoch2(), ckpt], log=lambda m: None)
    with pytest.raises(NonFiniteLossError, match="validation loss is nan in epoch 2.*checkpoints "
                                                 "of earlier epochs are kept"):
        t.fit(tr, va, epochs=3)
    assert len(t.history) == 1 and ckpt.best_epoch == 0  # epoch 2 neither logged nor saved
    kept = create_model("lenet5", num_classes=4)
    from cnnlab.checkpoint import load_weights
    load_weights(kept, tmp_path / "best.safetensors")
    assert all(torch.isfinite(q).all() for q in kept.parameters())


def test_loader_batches_normalised_and_reproducible():
    ds = toy_dataset(n_train=100)
    a = BatchLoader(ds.train_images, ds.train_labels, 32, mean=ds.mean, std=ds.std, shuffle=True, seed=1)
    b = BatchLoader(ds.train_images, ds.train_labels, 32, mean=ds.mean, std=ds.std, shuffle=True, seed=1)
    xa = torch.cat([x for x, _ in a])
    xb = torch.cat([x for x, _ in b])
    assert len(a) == 4 and xa.shape == (100, 1, 28, 28) and torch.equal(xa, xb)
    assert abs(xa.mean().item()) < 0.05 and abs(xa.std().item() - 1) < 0.05
    ya = torch.cat([y for _, y in a])  # a second epoch is a different permutation of the same set
    assert sorted(ya.tolist()) == sorted(ds.train_labels.tolist())


@pytest.mark.parametrize("name", ["step", "exponential", "cosine", "onecycle"])
def test_schedules_change_lr(name):
    p = [nn.Parameter(torch.zeros(1))]
    opt = build_optimizer(p, "sgd", 0.1)
    sched, per_batch = build_scheduler(opt, name, epochs=4, steps_per_epoch=10, step_size=1, gamma=0.5)
    lrs = []
    for _ in range(40):
        opt.step()
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert per_batch
    # lrs[k] is the rate of step k + 1; epochs are 10 steps
    if name in ("step", "exponential"):  # x gamma at each epoch boundary (step_size 1), not before
        assert lrs[8] == lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(0.05)
        assert lrs[19] == pytest.approx(0.025) and lrs[39] == pytest.approx(0.1 * 0.5 ** 4)
    if name == "cosine":  # 0.1 * (1 + cos(pi * t / 40)) / 2
        assert lrs[9] == pytest.approx(0.05 * (1 + math.cos(math.pi / 4)))
        assert lrs[19] == pytest.approx(0.05) and lrs[39] == pytest.approx(0.0, abs=1e-12)
    if name == "onecycle":  # PyTorch's OneCycleLR: 0.1 / 25 up to 0.1 at 25% of the run, then down
        assert lrs[8] == pytest.approx(0.1) and lrs[:9] == sorted(lrs[:9])
        assert lrs[9:39] == sorted(lrs[9:39], reverse=True) and lrs[38] == pytest.approx(0.1 / 25 / 1e4)


@pytest.mark.parametrize("name", ["none", "step", "exponential", "cosine", "multistep"])
def test_a_linear_warm_up_precedes_the_schedule(name):
    """Goyal et al. 2017: from lr/warm up to lr over the warm-up steps (here 0.5 epoch = 5 steps)."""
    opt = build_optimizer([nn.Parameter(torch.zeros(1))], "sgd", 0.1)
    sched, _ = build_scheduler(opt, name, epochs=4, steps_per_epoch=10, step_size=1, gamma=0.5,
                               warmup_epochs=0.5, milestones=[2])
    lrs = [opt.param_groups[0]["lr"]]
    for _ in range(9):
        opt.step()
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs[:5] == pytest.approx([0.02, 0.04, 0.06, 0.08, 0.1])
    assert lrs[5] == pytest.approx(0.1) and max(lrs) == pytest.approx(0.1)


@pytest.mark.parametrize("epochs, steps_per_epoch, warmup_epochs", [(4, 1, 0.0), (1, 10, 0.1), (2, 5, 0.2)])
def test_onecycle_with_a_warm_up_of_one_step(epochs, steps_per_epoch, warmup_epochs):
    """A one-step warm-up (25% of 4 steps; 0.1 epoch of 10 steps) made PyTorch's OneCycleLR
    divide by zero at its first step (a run on a slice: one batch per epoch, 4 epochs). As
    PyTorch counts, a warm-up of k steps peaks at step k - 1: here the first; then it anneals."""
    opt = build_optimizer([nn.Parameter(torch.zeros(1))], "sgd", 0.1)
    sched, _ = build_scheduler(opt, "onecycle", epochs=epochs, steps_per_epoch=steps_per_epoch,
                               warmup_epochs=warmup_epochs)
    lrs = [opt.param_groups[0]["lr"]]
    for _ in range(epochs * steps_per_epoch - 1):
        opt.step()
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs[0] == pytest.approx(0.1) and lrs == sorted(lrs, reverse=True) and lrs[-1] < 1e-4


def test_label_smoothing_and_binary_losses():
    logits = torch.tensor([[4.0, -4.0]])
    y = torch.tensor([0])
    assert classification_loss(0.1)(logits, y) > classification_loss(0.0)(logits, y)
    bce = classification_loss(binary=True)
    assert bce(torch.tensor([[5.0]]), torch.tensor([1])) < bce(torch.tensor([[-5.0]]), torch.tensor([1]))


@pytest.mark.parametrize("kw", [{}, {"binary": True}, {"binary": True, "class_weight": torch.tensor([1.0, 3.0])}])
def test_losses_under_bf16_autocast_are_those_of_float32(kw):
    """Smoothed targets stay float32 (in bf16, 0.95 / 0.05 round to 0.9492 / 0.05005)."""
    from cnnlab.device import autocast
    torch.manual_seed(0)
    lin, y = nn.Linear(8, 1 if kw.get("binary") else 2), torch.arange(64) % 2
    loss = classification_loss(0.1, **kw)
    with autocast(torch.device("cpu"), "bf16"):
        logits = lin(torch.randn(64, 8))
        got = loss(logits, y)
    assert logits.dtype == torch.bfloat16 and got.dtype == torch.float32
    assert got.item() == pytest.approx(loss(logits.float(), y).item(), rel=1e-6)


def test_multistep_drops_at_milestones():
    p = [nn.Parameter(torch.zeros(1))]
    opt = build_optimizer(p, "sgd", 0.1)
    sched, _ = build_scheduler(opt, "multistep", epochs=4, steps_per_epoch=10, gamma=0.1, milestones=[2, 3])
    lrs = []
    for _ in range(40):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[19] == pytest.approx(0.1) and lrs[20] == pytest.approx(0.01) and lrs[30] == pytest.approx(0.001)


def test_onecycle_with_warmup_as_long_as_the_run():
    p = [nn.Parameter(torch.zeros(1))]
    opt = build_optimizer(p, "adamw", 1e-3)
    sched, _ = build_scheduler(opt, "onecycle", epochs=1, steps_per_epoch=5, warmup_epochs=1)
    lrs = [opt.param_groups[0]["lr"]]
    for _ in range(4):
        opt.step()
        sched.step()  # used to divide by zero when the warm-up filled the whole run
        lrs.append(opt.param_groups[0]["lr"])
    # the warm-up takes 90% of the run: the rate rises for 4 of the 5 steps, then anneals
    assert lrs[:4] == sorted(lrs[:4]) and lrs[3] > 0.9e-3 and lrs[4] < 1e-6


def test_flatten_nhwc_is_a_view_for_channels_last():
    from cnnlab.models.layers import FlattenNHWC
    x = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).view(2, 3, 2, 2)
    xc = x.contiguous(memory_format=torch.channels_last)
    y = FlattenNHWC()(xc)
    assert y.shape == (2, 12) and y.data_ptr() == xc.data_ptr()  # no copy
    assert torch.equal(y, FlattenNHWC()(x))  # same order whatever the memory format
    assert torch.equal(y[0, :3], x[0, :, 0, 0])  # Keras order: channels vary fastest


def test_flip_tta_averages_the_logits_of_image_and_mirror():
    from cnnlab.training.loop import evaluate
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(2 * 3 * 4, 5))  # not flip-invariant
    x, y = torch.randn(6, 2, 3, 4), torch.randint(0, 5, (6,))
    loss_fn = nn.CrossEntropyLoss()
    out = evaluate(model, [(x, y)], loss_fn, torch.device("cpu"), keep_logits=True, tta="flip")
    with torch.no_grad():
        expected = (model(x) + model(x.flip(-1))) / 2
    torch.testing.assert_close(out["logits"], expected)
    assert out["loss"] == pytest.approx(loss_fn(expected, y).item(), rel=1e-6)
    plain = evaluate(model, [(x, y)], loss_fn, torch.device("cpu"), keep_logits=True)
    assert not torch.allclose(plain["logits"], expected)


def test_ema_of_the_weights_is_validated_and_follows_the_formula():
    """ema_0 = w_1 (after the first step), then ema = d * ema + (1 - d) * w after every step;
    validation uses the EMA while the raw weights keep training."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    x, y = torch.randn(12, 1, 2, 2), torch.randint(0, 3, (12,))
    batches = [(x[:4], y[:4]), (x[4:8], y[4:8]), (x[8:], y[8:])]
    trainer = Trainer(model, opt, nn.CrossEntropyLoss(), ema_decay=0.5, log=lambda m: None, progress=False)
    ref = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    ref.load_state_dict(model.state_dict())
    ref_opt = torch.optim.SGD(ref.parameters(), lr=0.5)
    ema = None
    for xb, yb in batches:
        ref_opt.zero_grad()
        nn.functional.cross_entropy(ref(xb), yb).backward()
        ref_opt.step()
        w = ref[1].weight.detach().clone()
        ema = w if ema is None else 0.5 * ema + 0.5 * w
    trainer.fit(batches, val=[(x, y)], epochs=1)
    torch.testing.assert_close(model[1].weight, ref[1].weight)
    torch.testing.assert_close(trainer.eval_model[1].weight, ema)
    assert not torch.allclose(trainer.eval_model[1].weight, model[1].weight)
    with torch.no_grad():
        expected = nn.functional.cross_entropy(trainer.eval_model(x), y).item()
    assert trainer.history["val_loss"][0] == pytest.approx(expected, rel=1e-6)


def test_ema_warmup_ramps_the_decay_and_copies_integer_buffers():
    """With ema_warmup the n-th update (n = 1, 2, ...) uses decay min(d, (1 + n) / (10 + n)):
    2/11, 3/12, ... at first; BatchNorm's batch count follows the model's."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(8, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    x, y = torch.randn(16, 1, 2, 2), torch.randint(0, 3, (16,))
    batches = [(x[i:i + 4], y[i:i + 4]) for i in range(0, 16, 4)]
    trainer = Trainer(model, opt, nn.CrossEntropyLoss(), ema_decay=0.9, ema_warmup=True,
                      log=lambda m: None, progress=False)
    ref = nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(8, 3))
    ref.load_state_dict(model.state_dict())
    ref_opt = torch.optim.SGD(ref.parameters(), lr=0.5)
    ema = None
    for n, (xb, yb) in enumerate(batches):
        ref_opt.zero_grad()
        nn.functional.cross_entropy(ref(xb), yb).backward()
        ref_opt.step()
        w = ref[3].weight.detach().clone()
        d = min(0.9, (1 + n) / (10 + n))  # n updates before this one
        ema = w if ema is None else d * ema + (1 - d) * w
    trainer.fit(batches, epochs=1)
    torch.testing.assert_close(trainer.eval_model[3].weight, ema)
    assert int(trainer.eval_model[1].num_batches_tracked) == 4
    plain = Trainer(nn.Linear(2, 2), torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1),
                    nn.CrossEntropyLoss(), ema_decay=0.9, log=lambda m: None)
    assert plain.ema is not None  # ema_warmup defaults to off: the fixed decay above


def test_ema_without_warmup_keeps_the_batch_count_of_batchnorm():
    """The fixed-decay EMA averages the float state and copies integer buffers: PyTorch's own EMA
    function rounds 0.9 * count + 0.1 * n down, which left the saved count at 10 after 20 steps."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(8, 3))
    x, y = torch.randn(80, 1, 2, 2), torch.randint(0, 3, (80,))
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), nn.CrossEntropyLoss(),
                      ema_decay=0.9, log=lambda m: None, progress=False)
    trainer.fit([(x[i:i + 4], y[i:i + 4]) for i in range(0, 80, 4)], epochs=1)
    assert int(model[1].num_batches_tracked) == 20
    assert int(trainer.eval_model[1].num_batches_tracked) == 20
    assert not torch.allclose(trainer.eval_model[1].running_mean, model[1].running_mean)  # averaged


def test_weight_decay_groups_exempt_biases_and_norm_weights():
    from cnnlab.training import weight_decay_groups
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2))
    decay, no_decay = weight_decay_groups(model)
    assert [p.shape for p in decay["params"]] == [(4, 1, 3, 3), (2, 4)]
    assert len(no_decay["params"]) == 4 and no_decay["weight_decay"] == 0.0  # conv/fc bias, BN w/b
    opt = build_optimizer(weight_decay_groups(model), "adamw", 1e-3, weight_decay=0.05, eps=1e-7)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.05, 0.0]
    assert all(g["eps"] == 1e-7 for g in opt.param_groups)


def test_recipe_filter_bias_and_bn_and_eps_reach_the_optimizer():
    from cnnlab.recipes import Recipe
    from cnnlab.runs import prepare
    r = Recipe(name="t", source="t", dataset="toy", model="lenet5", epochs=1, batch_size=32,
               optimizer="adamw", weight_decay=0.05, filter_bias_and_bn=True, eps=1e-7, precision="fp32")
    opt = prepare(r, toy_dataset(), "cpu", checkpoint=None, log=lambda m: None, progress=False).optimizer
    assert [g["weight_decay"] for g in opt.param_groups] == [0.05, 0.0]
    assert opt.param_groups[0]["eps"] == 1e-7


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd", "rmsprop", "adadelta"])
def test_fused_optimizer_steps_as_the_foreach_one(name):
    """Adam, AdamW and SGD take PyTorch's fused kernels on CPU parameters (RMSprop and Adadelta
    have none), and
    a fused step gives the foreach step's weights up to float rounding."""
    torch.manual_seed(0)
    w0, b0 = torch.randn(6, 5), torch.randn(5)
    groups = [[{"params": [nn.Parameter(w0.clone())]}, {"params": [nn.Parameter(b0.clone())], "weight_decay": 0.0}]
              for _ in range(2)]
    kw = dict(momentum=0.9, nesterov=True, weight_decay=0.01)
    fused = build_optimizer(groups[0], name, 0.01, fused=True, **kw)
    foreach = build_optimizer(groups[1], name, 0.01, fused=False, **kw)
    assert bool(fused.defaults.get("fused")) == (name in ("adam", "adamw", "sgd")) and foreach.defaults["foreach"]
    for step in range(5):
        g = torch.randn(6, 5), torch.randn(5)
        for opt, params in ((fused, groups[0]), (foreach, groups[1])):
            for grad, group in zip(g, params):
                group["params"][0].grad = grad.clone()
            opt.step()
    for a, b in zip(groups[0], groups[1]):
        torch.testing.assert_close(a["params"][0], b["params"][0], rtol=1e-5, atol=1e-6)


def test_adadelta_is_pytorch_examples_and_takes_a_one_cycle_without_momentum():
    """pytorch/examples' MNIST script: Adadelta(lr=1.0), PyTorch's rho 0.9 and eps 1e-6; OneCycleLR
    refused an optimizer without momentum or betas unless told not to cycle them."""
    p = [nn.Parameter(torch.zeros(3))]
    opt = build_optimizer(p, "adadelta", 1.0)
    assert type(opt) is torch.optim.Adadelta and (opt.defaults["rho"], opt.defaults["eps"]) == (0.9, 1e-6)
    sched, _ = build_scheduler(opt, "onecycle", epochs=2, steps_per_epoch=5)
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        p[0].grad = torch.ones(3)
        opt.step()
        sched.step()
    assert 0.95 < max(lrs) <= 1.0 and lrs[0] < 0.1 and lrs[-1] < 0.1  # up to the peak, and down


def test_fused_optimizer_falls_back_where_pytorch_has_no_fused_kernel():
    p = [nn.Parameter(torch.zeros(3, device="meta"))]
    assert build_optimizer(p, "adam", 1e-3).defaults["foreach"]
    from cnnlab.recipes import Recipe
    from cnnlab.runs import prepare
    r = Recipe(name="t", source="t", dataset="toy", model="lenet5", epochs=1, batch_size=32, precision="fp32")
    for on in (True, False):
        opt = prepare(r.override({"fused_optimizer": on}), toy_dataset(), "cpu", checkpoint=None,
                      log=lambda m: None, progress=False).optimizer
        assert bool(opt.defaults.get("fused")) == on
    with pytest.raises(ValueError, match="unknown optimizer 'adma'"):
        build_optimizer(p, "adma", 1e-3)


def test_build_optimizer_takes_generators_in_parameter_groups():
    model = nn.Linear(3, 2)
    opt = build_optimizer([{"params": (p for p in model.parameters())}], "adam", 1e-3)
    assert len(opt.param_groups[0]["params"]) == 2 and opt.defaults["fused"]


def test_flip_shift_tta_is_airbenchs_mirror_and_translate():
    """``tta="flip-shift"`` (airbench94's evaluation): half the flip mean of the batch, a quarter
    each of the flip means of the batch moved one pixel down-right and up-left with reflect
    padding; channels_last input stays channels_last; an unknown mode is named in the error."""
    from cnnlab.training import tta_logits
    from cnnlab.training.loop import evaluate
    torch.manual_seed(0)
    seen = []

    class Probe(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2 * 4 * 5, 3)

        def forward(self, x):
            seen.append(x.is_contiguous(memory_format=torch.channels_last))
            return self.fc(x.flatten(1))
    model = Probe()
    x, y = torch.randn(6, 2, 4, 5), torch.randint(0, 3, (6,))

    def flip_mean(v):
        return (model(v) + model(v.flip(-1))) / 2
    p = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")
    down_right, up_left = p[..., 0:4, 0:5], p[..., 2:6, 2:7]
    assert torch.equal(down_right[..., 1:, 1:], x[..., :-1, :-1]) and torch.equal(up_left[..., :-1, :-1], x[..., 1:, 1:])
    with torch.no_grad():
        expected = flip_mean(x) / 2 + (flip_mean(down_right) + flip_mean(up_left)) / 4
        torch.testing.assert_close(tta_logits(model, x, "flip-shift"), expected)
        seen.clear()
        tta_logits(model, x.contiguous(memory_format=torch.channels_last), "flip-shift")
    assert len(seen) == 6 and all(seen[2:])  # the four shifted views keep channels_last
    out = evaluate(model, [(x, y)], nn.CrossEntropyLoss(), torch.device("cpu"), keep_logits=True, tta="flip-shift")
    torch.testing.assert_close(out["logits"], expected)
    with pytest.raises(ValueError, match="'flipshift'.*flip-shift"):
        tta_logits(model, x, "flipshift")


def test_tta_refuses_views_of_signals():
    # (N, C, L): flipping and shifting the last two axes would mix channels, not mirror anything
    from cnnlab.training import tta_logits
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 2))
    for tta in ("flip", "flip-shift"):
        with pytest.raises(ValueError, match=r"needs images \(N, C, H, W\).*\(2, 3, 4\)"):
            tta_logits(model, torch.randn(2, 3, 4), tta)
    assert tta_logits(model, torch.randn(2, 3, 4), "none").shape == (2, 2)


def _conv_bn_fc():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, 2))


def test_norm_bias_lr_scale_moves_only_the_normalisation_biases_faster():
    from cnnlab.training import parameter_groups
    x, y = torch.randn(8, 1, 6, 6), torch.arange(8) % 2
    deltas = {}
    for scale in (1.0, 64.0):
        model = _conv_bn_fc()
        before = {k: v.clone() for k, v in model.named_parameters()}
        groups = parameter_groups(model, lr=0.1, weight_decay=0.0, norm_bias_lr_scale=scale)
        opt = build_optimizer(groups, "sgd", 0.1, momentum=0.0)
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        deltas[scale] = {k: v.detach() - before[k] for k, v in model.named_parameters()}
    for k in deltas[1.0]:
        ratio = 64.0 if k == "1.bias" else 1.0  # the BatchNorm shift only
        torch.testing.assert_close(deltas[64.0][k], ratio * deltas[1.0][k])
    g = parameter_groups(_conv_bn_fc(), lr=0.1, weight_decay=6.4e-3, norm_bias_lr_scale=64)
    assert [len(p["params"]) for p in g] == [5, 1]  # conv w/b, BN weight, fc w/b | BN bias
    assert g[1]["lr"] == pytest.approx(6.4) and g[1]["weight_decay"] == pytest.approx(1e-4)  # lr x wd kept
    g = parameter_groups(_conv_bn_fc(), filter_bias_and_bn=True, lr=0.1, norm_bias_lr_scale=64)
    assert [len(p["params"]) for p in g] == [2, 3, 1] and g[2]["weight_decay"] == 0.0
    with pytest.raises(ValueError, match="needs the optimizer's lr"):
        parameter_groups(_conv_bn_fc(), norm_bias_lr_scale=64)


def test_onecycle_peaks_each_parameter_group_at_its_own_lr():
    from cnnlab.training import parameter_groups
    groups = parameter_groups(_conv_bn_fc(), lr=0.1, norm_bias_lr_scale=10)
    opt = build_optimizer(groups, "sgd", 0.1)
    sched, _ = build_scheduler(opt, "onecycle", epochs=1, steps_per_epoch=100)
    peaks = [0.0, 0.0]
    for _ in range(100):
        opt.step()
        sched.step()
        peaks = [max(p, g["lr"]) for p, g in zip(peaks, opt.param_groups)]
    assert peaks == pytest.approx([0.1, 1.0], rel=1e-3)


def test_lookahead_averages_every_k_steps_and_sets_the_model_to_the_slow_weights():
    from types import SimpleNamespace
    from cnnlab.training import Lookahead
    model = nn.Linear(1, 1, bias=False)
    nn.init.zeros_(model.weight)
    trainer = SimpleNamespace(model=model, epochs=2, steps_per_epoch=4)
    la = Lookahead(start_epoch=1, every=2, decay=0.5, decay_power=1.0)
    la.on_train_begin(trainer)
    slow = None
    for epoch in range(2):
        for step in range(4):
            with torch.no_grad():
                model.weight += 1.0  # a "training step"
            w = model.weight.item()
            la.on_train_batch_end(trainer, epoch, step)
            t = epoch * 4 + step + 1
            if epoch >= 1 and t % 2 == 0:
                if slow is None:
                    slow = w  # first update: the snapshot, the model unchanged
                else:
                    rho = 0.5 ** 2 * t / 8
                    slow = rho * slow + (1 - rho) * w
                    assert model.weight.item() == pytest.approx(slow)
            elif epoch == 0:
                assert model.weight.item() == t and la.slow is None  # before start_epoch: nothing
    assert model.weight.item() == pytest.approx(slow)  # the epoch ends on the slow weights
    assert la.state_dict()["slow"]["weight"].item() == pytest.approx(slow)


@pytest.mark.parametrize("step", [0, 2])  # an update (every=1), and the epoch's end (every=5)
def test_a_resumed_lookahead_moves_its_slow_weights_to_the_models_device(step):
    """last_state.pt is read onto the CPU; on a GPU the slow copy must follow the model there
    ("meta" stands in for the GPU)."""
    from types import SimpleNamespace
    from cnnlab.training import Lookahead
    la = Lookahead(start_epoch=0, every=1 if step == 0 else 5)
    la.load_state_dict({"slow": {"weight": torch.zeros(2, 2), "bias": torch.zeros(2)}})
    trainer = SimpleNamespace(model=nn.Linear(2, 2).to("meta"), epochs=2, steps_per_epoch=3)
    la.on_train_batch_end(trainer, 1, step)
    assert {v.device.type for v in la.slow.values()} == {"meta"}


@pytest.mark.filterwarnings("ignore:Seems like `optimizer.step\\(\\)` has been overridden")
def test_logged_learning_rate_is_that_of_the_epochs_last_step():
    """A per-step schedule is stepped after every batch; the log must show the rate the epoch's
    last step used, not the next one (after the last epoch: one step past the one-cycle's end)."""
    torch.manual_seed(0)
    ds = toy_dataset()
    model = create_model("lenet5", num_classes=4)
    tr, va = make_loaders(ds)
    opt = build_optimizer(model.parameters(), "adamw", 1e-2)
    used, real_step = [], opt.step

    def step(*a, **k):  # records the rate each optimizer step uses
        used.append(opt.param_groups[0]["lr"])
        return real_step(*a, **k)

    sched, per_step = build_scheduler(opt, "onecycle", epochs=2, steps_per_epoch=len(tr))
    assert per_step
    opt.step = step
    t = Trainer(model, opt, classification_loss(), scheduler=sched, step_per_batch=True, log=lambda m: None)
    h = t.fit(tr, va, epochs=2)
    assert len(used) == 2 * len(tr)
    assert h["learning_rate"] == pytest.approx([used[len(tr) - 1], used[-1]])
    assert h["learning_rate"][-1] < 1e-2 / 1000  # the one-cycle ends near zero


def test_class_weights_scale_each_examples_loss_as_keras():
    """Keras' class_weight: the batch mean of weight[y] * loss; ones change nothing."""
    import torch.nn.functional as F
    torch.manual_seed(0)
    logits, y = torch.randn(6, 3), torch.tensor([0, 1, 2, 2, 1, 0])
    w = torch.tensor([1.0, 2.0, 0.5])
    per = F.cross_entropy(logits, y, reduction="none", label_smoothing=0.1)
    got = classification_loss(0.1, class_weight=w)(logits, y)
    assert got == pytest.approx(float((per * w[y]).mean()))
    assert classification_loss(0.1, class_weight=torch.ones(3))(logits, y) == pytest.approx(
        float(classification_loss(0.1)(logits, y)))
    one, yb = torch.randn(6, 1), torch.tensor([0, 1, 1, 0, 1, 1])
    per = F.binary_cross_entropy_with_logits(one[:, 0], yb.float(), reduction="none")
    wb = torch.tensor([3.0, 1.0])
    assert classification_loss(binary=True, class_weight=wb)(one, yb) == pytest.approx(float((per * wb[yb]).mean()))


def test_clip_grad_norm_caps_the_global_gradient_norm():
    """With clip_grad_norm the step sees gradients of global L2 norm at most the cap; SGD without
    momentum then moves the weights by at most lr * cap."""
    torch.manual_seed(0)
    ds = toy_dataset()
    model = create_model("lenet5", num_classes=4)
    tr, _ = make_loaders(ds)
    opt = build_optimizer(model.parameters(), "sgd", 1.0, momentum=0.0)
    norms, step = [], opt.step

    def record(*a, **k):
        norms.append(float(torch.linalg.vector_norm(torch.stack(
            [torch.linalg.vector_norm(p.grad) for p in model.parameters()]))))
        return step(*a, **k)
    opt.step = record
    t = Trainer(model, opt, classification_loss(), clip_grad_norm=0.05, log=lambda m: None)
    t.fit(tr, epochs=1)
    assert len(norms) == len(tr) and max(norms) <= 0.05 * (1 + 1e-5)


def test_a_nan_input_that_leaves_the_loss_finite_still_stops_training():
    """One NaN pixel reaches the first conv's weight gradient; the fused conv + ReLU maps the NaN
    outputs to 0, so the loss stays finite while the filters are dead: the weights are checked."""
    ds = toy_dataset(n_train=128, n_test=64)
    x = ds.train_images.float() / 255
    x[0, 0, 0, 0] = float("nan")
    batches = [(x[i:i + 64], ds.train_labels[i:i + 64]) for i in (0, 64)]  # a user's own batches
    torch.manual_seed(0)
    model = create_model("cifar10-cnn-bn", num_classes=4, in_chans=1, input_size=(28, 28))
    t = Trainer(model, build_optimizer(model.parameters(), "sgd", 0.01), classification_loss(),
                log=lambda m: None)
    with pytest.raises(NonFiniteLossError, match=r"weights features\.block1\.conv1\.weight.* hold NaN or "
                                                 "inf after epoch 1 although the loss is finite"):
        t.fit(batches, epochs=2)
    assert not t.history.epochs  # stopped in epoch 1: nothing logged, nothing checkpointed


def test_a_nan_that_lookahead_hides_from_the_weights_is_found_in_the_optimizer_state():
    """A NaN in the epoch's last batch, after Lookahead's last update: its end-of-epoch copy sets
    the weights back to the finite slow ones, but the momentum holds the NaN into the next epoch."""
    from cnnlab.training import Lookahead
    ds = toy_dataset(n_train=192, n_test=64)
    x = ds.train_images.float() / 255
    x[128, 0, 0, 0] = float("nan")
    batches = [(x[i:i + 64], ds.train_labels[i:i + 64]) for i in (0, 64, 128)]
    torch.manual_seed(0)
    model = create_model("cifar10-cnn-bn", num_classes=4, in_chans=1, input_size=(28, 28))
    t = Trainer(model, build_optimizer(model.parameters(), "sgd", 0.01), classification_loss(),
                log=lambda m: None, callbacks=[Lookahead(start_epoch=0, every=2)])
    with pytest.raises(NonFiniteLossError, match=r"weights features\.block1\.conv1\.weight \(optimizer state "
                                                 r"momentum_buffer\).* hold NaN or inf after epoch 1"):
        t.fit(batches, epochs=2)
    assert all(torch.isfinite(p).all() for p in model.parameters())  # the slow weights
    assert not t.history.epochs  # nothing checkpointed


def test_an_empty_training_loader_is_refused():
    model = nn.Linear(2, 2)
    t = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), nn.CrossEntropyLoss(), log=lambda m: None)
    with pytest.raises(ValueError, match="the training loader yields no batch"):
        t.fit([], epochs=1)


@pytest.mark.parametrize("images, labels, kw, message", [
    (torch.zeros(4, 28, 28, 3, dtype=torch.uint8), torch.zeros(4, dtype=torch.long), {},
     r"28-channel images \(shape \(4, 28, 28, 3\), NCHW\) but 3 mean.*look NHWC"),
    (torch.zeros(4, 1, 8, 8, dtype=torch.uint8), torch.zeros(4, dtype=torch.long), {"mean": (127.0,), "std": (64.0,)},
     r"in \[0, 1\] units for uint8 images.*divide them by 255"),
    (torch.full((4, 1, 8), float("nan")), torch.zeros(4, dtype=torch.long), {}, "NaN or infinite values, e.g. example 0"),
    (torch.zeros(4, 1, 8, 8, dtype=torch.uint8), torch.eye(4), {}, r"integer class indices \(N,\), got torch.float32 "
     r"\(4, 4\); one-hot\? labels.argmax\(1\)"),
])
def test_the_loader_names_a_wrong_input(images, labels, kw, message):
    kw = {"mean": (0.5,) * 3, "std": (0.25,) * 3} if not kw and images.dim() == 4 and images.shape[-1] == 3 else \
        kw or {"mean": (0.5,), "std": (0.25,)}
    with pytest.raises(ValueError, match=message):
        BatchLoader(images, labels, 2, **kw)


def test_the_loader_takes_int32_labels_as_int64():
    loader = BatchLoader(torch.zeros(4, 1, 8, 8, dtype=torch.uint8), torch.arange(4, dtype=torch.int32), 2,
                         mean=(0.5,), std=(0.25,))
    assert next(iter(loader))[1].dtype == torch.int64


@pytest.mark.parametrize("y, message", [
    (torch.tensor([0, 7]), r"label 7 in the first batch is outside the model's classes 0..3 \(4 logit\(s\)\)"),
    (torch.tensor([-1, 0]), r"label -1 in the first batch"),
    (torch.eye(4)[:2], r"int64 class indices \(N,\), got torch.float32 \(2, 4\); one-hot\?"),
])
def test_the_first_batch_labels_are_checked_against_the_logits(y, message):
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 4))
    t = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), nn.CrossEntropyLoss(), log=lambda m: None)
    with pytest.raises(ValueError, match=message):
        t.fit([(torch.zeros(2, 1, 2, 2), y)], epochs=1)
