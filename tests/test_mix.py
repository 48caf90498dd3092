"""MixUp and CutMix (cnnlab.training.mix): the mixed batches, the mixed loss, the recipe fields."""
import pytest
import torch

import cnnlab
from cnnlab.recipes import Recipe, RecipeError
from cnnlab.training import BatchMix, Trainer
from helpers import toy_dataset, without_times


def batch(b=6, c=3, h=8, w=10):
    """Image i is the constant i (each pixel tells which image it came from)."""
    return torch.arange(b, dtype=torch.float32).view(b, 1, 1, 1).expand(b, c, h, w).contiguous(), torch.arange(b)


def test_mixup_is_the_convex_combination_with_the_mirrored_batch():
    x, y = batch()
    mix = BatchMix(mixup_alpha=0.4, seed=1)
    out, y_other, lam = mix(x, y)
    assert 0 < lam < 1 and torch.equal(y_other, y.flip(0))
    torch.testing.assert_close(out, lam * x + (1 - lam) * x.flip(0))
    assert torch.equal(x, batch()[0])  # the input is not modified
    cl = x.to(memory_format=torch.channels_last)  # the layout the CPU default trains in
    assert mix(cl, y)[0].is_contiguous(memory_format=torch.channels_last)


def test_cutmix_pastes_one_box_and_lam_is_the_share_left():
    x, y = batch(h=16, w=16)
    x = x.to(memory_format=torch.channels_last)
    mix = BatchMix(cutmix_alpha=1.0, seed=0)
    lams = []
    for _ in range(20):
        out, y_other, lam = mix(x, y)
        assert out.is_contiguous(memory_format=torch.channels_last)
        own = out == x
        pasted = out == x.flip(0)
        assert (own | pasted).all()  # every pixel is its image's or its partner's
        share = own[0, 0].float().mean().item()  # image 0 and 5 differ everywhere
        assert share == pytest.approx(lam) and torch.equal(y_other, y.flip(0))
        box = pasted[0, 0]
        rows, cols = box.any(1).nonzero(), box.any(0).nonzero()
        if len(rows):  # the pasted pixels form one rectangle
            assert box[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()
        lams.append(lam)
    assert min(lams) < 0.9 and len(set(lams)) > 5


def test_draws_are_seeded_per_epoch_and_prob_leaves_batches_unmixed():
    x, y = batch()
    a, b = BatchMix(0.2, 1.0, seed=3), BatchMix(0.2, 1.0, seed=3)
    a.set_epoch(4)
    b.set_epoch(4)
    for _ in range(5):
        (xa, _, la), (xb, _, lb) = a(x, y), b(x, y)
        assert la == lb and torch.equal(xa, xb)
    never = BatchMix(mixup_alpha=1.0, prob=0.0)
    assert all(never(x, y)[2] == 1.0 for _ in range(10))
    half = BatchMix(mixup_alpha=1.0, prob=0.5)
    mixed = sum(half(x, y)[2] != 1.0 for _ in range(400))
    assert 150 < mixed < 250


def test_both_on_switches_between_mixup_and_cutmix():
    x, y = batch(h=16, w=16)
    mix = BatchMix(mixup_alpha=0.5, cutmix_alpha=1.0, seed=0)
    kinds = set()
    for _ in range(40):
        out, _, lam = mix(x, y)
        if lam != 1.0:
            kinds.add("cutmix" if ((out == x) | (out == x.flip(0))).all() else "mixup")
    assert kinds == {"mixup", "cutmix"}


@pytest.mark.parametrize("mix", [BatchMix(mixup_alpha=0.2), BatchMix(cutmix_alpha=1.0)], ids=repr)
def test_the_mixed_batch_keeps_channels_last(mix):
    """bf16 training on the CPU runs channels_last: a mixed batch in NCHW would slow the step."""
    x, y = batch()
    mixed, _, lam = mix(x.contiguous(memory_format=torch.channels_last), y)
    assert lam < 1.0
    assert mixed.is_contiguous(memory_format=torch.channels_last) and not mixed.is_contiguous()


def test_repr_names_the_settings():
    assert repr(BatchMix(cutmix_alpha=1.0, prob=0.5)) == "BatchMix(mixup_alpha=0.0, cutmix_alpha=1.0, prob=0.5)"


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="at least one > 0"):
        BatchMix()
    with pytest.raises(ValueError, match="both must be >= 0"):
        BatchMix(mixup_alpha=-1)
    with pytest.raises(ValueError, match=r"prob must be in \[0, 1\], got 2"):
        BatchMix(mixup_alpha=1, prob=2)
    with pytest.raises(ValueError, match=r"CutMix needs images \(B, C, H, W\), got shape \(4, 1, 4\)"):
        BatchMix(cutmix_alpha=1)(torch.zeros(4, 1, 4), torch.arange(4))


def test_the_trainer_mixes_the_loss_in_the_same_proportion():
    """One step's loss is lam * CE(y) + (1 - lam) * CE(y_other), on the mixed images."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 10, 6))
    x, y = batch()
    seen = []

    def loss_fn(logits, labels):
        loss = torch.nn.functional.cross_entropy(logits, labels, label_smoothing=0.1)
        seen.append(loss.detach())
        return loss
    mix = BatchMix(mixup_alpha=1.0, seed=5)
    expected_x, y_other, lam = BatchMix(mixup_alpha=1.0, seed=5)(x, y)
    with torch.no_grad():
        logits = model(expected_x)
    smoothed = torch.full((6, 6), 0.1 / 6)
    targets = lam * (smoothed + 0.9 * torch.eye(6)[y]) + (1 - lam) * (smoothed + 0.9 * torch.eye(6)[y_other])
    want = torch.nn.functional.cross_entropy(logits, targets)
    t = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.0), loss_fn, mix=mix, log=lambda m: None,
                progress=False)
    t.fit([(x, y)], epochs=1)
    assert len(seen) == 2
    torch.testing.assert_close(torch.tensor(t.history["loss"][0]), want, rtol=1e-5, atol=1e-6)


def test_a_recipe_trains_with_mixup_and_cutmix_and_records_them(tmp_path):
    recipe = Recipe(name="toy-mix", source="test", dataset="toy", model="mnist-cnn-small", epochs=3,
                    batch_size=32, val_fraction=0.2, precision="fp32", optimizer="adamw", lr=3e-3,
                    mixup_alpha=0.2, cutmix_alpha=1.0, mix_prob=0.8)
    run = cnnlab.train(recipe, dataset=toy_dataset(), run_dir=tmp_path / "r", log=lambda m: None)
    assert run.history["val_accuracy"][-1] > 0.9  # validation images are not mixed
    assert run.test_metrics["accuracy"] > 0.9
    with pytest.raises(RecipeError, match="mix_prob=1.5: Input should be less than or equal to 1"):
        recipe.override({"mix_prob": 1.5})


def test_cutmix_on_1d_signals_is_refused_before_training(tmp_path):
    from cnnlab.data.core import ImageDataset
    g = torch.Generator().manual_seed(0)
    sig = ImageDataset("signals", torch.rand(40, 1, 4, generator=g), torch.arange(40) % 2,
                       torch.rand(10, 1, 4, generator=g), torch.arange(10) % 2, ["a", "b"])
    recipe = cnnlab.get_recipe("iris-conv1d-fast", {"cutmix_alpha": 1.0, "epochs": 1})
    with pytest.raises(RecipeError, match=r"cutmix_alpha needs images \(C, H, W\); the examples of dataset "
                                          r"'signals' have shape \(1, 4\): use mixup_alpha"):
        cnnlab.train(recipe, dataset=sig, run_dir=tmp_path / "r", log=lambda m: None)
    assert not (tmp_path / "r").exists()
    run = cnnlab.train(recipe.override({"cutmix_alpha": 0.0, "mixup_alpha": 0.4}), dataset=sig,
                       run_dir=tmp_path / "m", log=lambda m: None)
    assert len(run.history) == 1


def test_a_mixed_run_resumed_after_a_kill_matches_the_uninterrupted_one(tmp_path):
    """Each epoch's draws are seeded from (seed, epoch): the resumed run mixes as the full one."""
    recipe = Recipe(name="toy-mix", source="test", dataset="toy", model="mnist-cnn-small", epochs=3,
                    batch_size=64, val_fraction=0.2, precision="fp32", mixup_alpha=0.4, cutmix_alpha=1.0)

    class Killed(Exception):
        pass

    def killer(msg):
        if msg.startswith("epoch 2/3"):
            raise Killed
    def small():
        return toy_dataset(n_train=256, n_test=64)
    full = cnnlab.train(recipe, dataset=small(), run_dir=tmp_path / "full", log=lambda m: None, device="cpu")
    with pytest.raises(Killed):
        cnnlab.train(recipe, dataset=small(), run_dir=tmp_path / "cut", log=killer, device="cpu")
    resumed = cnnlab.train(None, dataset=small(), resume=tmp_path / "cut", log=lambda m: None, device="cpu")
    assert without_times(resumed.history) == without_times(full.history)


def test_tta_on_1d_signals_is_refused_before_training(tmp_path):
    # test-time views mirror and shift images; refused up front, not after the training
    from cnnlab.data.core import ImageDataset
    sig = ImageDataset("signals", torch.rand(40, 1, 4), torch.arange(40) % 2, torch.rand(10, 1, 4),
                       torch.arange(10) % 2, ["a", "b"])
    recipe = cnnlab.get_recipe("iris-conv1d-fast", {"tta": "flip", "epochs": 1})
    with pytest.raises(RecipeError, match=r"tta='flip' needs images \(C, H, W\); the examples of dataset "
                                          r"'signals' have shape \(1, 4\): use tta='none'"):
        cnnlab.train(recipe, dataset=sig, run_dir=tmp_path / "r", log=lambda m: None)
    assert not (tmp_path / "r").exists()
