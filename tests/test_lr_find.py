"""The learning-rate range test (Smith 2017; fastai's lr_find): cnnlab.training.lr_find, cnnlab lr-find."""
import math

import pytest
import torch

from cnnlab.data.loader import BatchLoader
from cnnlab.models import create_model
from cnnlab.recipes import Recipe
from cnnlab.runs import find_lr
from cnnlab.training import build_optimizer, classification_loss
from cnnlab.training.lr_find import lr_find
from helpers import toy_dataset


def toy_setup(opt="sgd", seed=0):
    torch.manual_seed(seed)
    ds = toy_dataset()
    model = create_model("lenet5", num_classes=4)
    loader = BatchLoader(ds.train_images, ds.train_labels, 32, shuffle=True, seed=seed, mean=ds.mean, std=ds.std)
    return model, build_optimizer(model.parameters(), opt, 0.01), loader


def test_rates_grow_geometrically_and_the_loss_falls_then_diverges():
    model, opt, loader = toy_setup()
    r = lr_find(model, opt, classification_loss(), loader, start_lr=1e-4, end_lr=1e3, steps=60)
    assert r.lrs[0] == pytest.approx(1e-4) and len(r.lrs) == len(r.losses) == len(r.raw_losses)
    ratios = [b / a for a, b in zip(r.lrs, r.lrs[1:])]
    assert max(ratios) == pytest.approx(min(ratios)) and ratios[0] == pytest.approx(10 ** (7 / 59))
    # SGD at 1e3 blows the loss up: the test stops there, before its 60 steps
    assert r.stopped == "diverged" and len(r.lrs) < 60 and all(map(math.isfinite, r.losses))
    assert min(r.losses) < 0.8 * r.losses[0]  # the loss did fall on the way (chance: ln 4 = 1.39)
    assert r.steepest <= r.lr_min


def test_the_suggested_rates_read_the_smoothed_curve():
    """lr_min at the smoothed minimum (the raw one is elsewhere), fastai's minimum/10, and the
    steepest fall per decade before the minimum."""
    from cnnlab.training.lr_find import LRFinderResult
    r = LRFinderResult(lrs=[1e-4, 1e-3, 1e-2, 1e-1, 1.0], losses=[2.0, 1.9, 1.0, 0.8, 5.0],
                       raw_losses=[2.0, 2.0, 0.5, 1.2, 5.0], stopped="steps")
    assert r.lr_min == pytest.approx(1e-1) and r.suggestion == pytest.approx(1e-2)
    assert r.steepest == pytest.approx(1e-3)  # 1.9 -> 1.0 in a decade; the others fall less


def test_each_parameter_group_keeps_its_ratio():
    model, _, loader = toy_setup()
    params = list(model.parameters())
    opt = torch.optim.SGD([{"params": params[:2], "lr": 0.01}, {"params": params[2:], "lr": 0.64}])
    seen = []
    step = opt.step

    def record(*a, **k):
        seen.append([g["lr"] for g in opt.param_groups])
        return step(*a, **k)
    opt.step = record
    lr_find(model, opt, classification_loss(), loader, start_lr=1e-5, end_lr=1e-3, steps=5)
    assert [b / a for a, b in seen] == pytest.approx([64.0] * 5)
    assert seen[-1][0] == pytest.approx(1e-3)


def test_a_loader_shorter_than_the_test_is_drawn_again():
    model, opt, loader = toy_setup()
    n = len(loader)
    r = lr_find(model, opt, classification_loss(), loader, start_lr=1e-6, end_lr=1e-4, steps=2 * n + 3)
    assert len(r.lrs) == 2 * n + 3 and r.stopped == "steps"


@pytest.mark.parametrize("kw, message", [
    (dict(start_lr=1.0, end_lr=0.1), "0 < start_lr < end_lr"),
    (dict(start_lr=0.0), "0 < start_lr < end_lr"),
    (dict(steps=1), "steps must be at least 2"),
])
def test_bad_ranges_are_refused(kw, message):
    model, opt, loader = toy_setup()
    with pytest.raises(ValueError, match=message):
        lr_find(model, opt, classification_loss(), loader, **kw)


def test_the_default_smoothing_spans_a_fixed_share_of_a_decade_whatever_the_steps():
    """0.9 at the default 100 steps over 8 decades; a shorter test smooths less, so that its
    smoothed curve follows the raw losses instead of lagging them by decades."""
    def run(steps, smoothing=None):
        model, opt, loader = toy_setup()
        return lr_find(model, opt, classification_loss(), loader, start_lr=1e-7, end_lr=10.0,
                       steps=steps, smoothing=smoothing, diverge=1e9)
    assert run(100).losses == pytest.approx(run(100, 0.9).losses, rel=1e-6)

    def lag(r):
        return sum(abs(a - b) for a, b in zip(r.losses, r.raw_losses)) / len(r.losses)
    assert lag(run(30)) < lag(run(30, 0.9))


def test_an_unknown_precision_is_refused_before_any_step():
    model, opt, loader = toy_setup()
    before = [q.clone() for q in model.parameters()]
    with pytest.raises(ValueError, match="precision 'fp16'"):
        lr_find(model, opt, classification_loss(), loader, precision="fp16")
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_a_loss_not_finite_from_the_first_step_is_an_error_not_a_suggestion():
    """Nothing to read off a curve of one NaN: no lr_min of 1e-7 and minimum/10 of 1e-8 (and no
    plot failing on NaN axis limits); a loss that turns NaN later ends the test as diverged."""
    from cnnlab.training import NonFiniteLossError
    model, opt, loader = toy_setup()
    with pytest.raises(NonFiniteLossError, match="the loss is nan at the first step"):
        lr_find(model, opt, lambda z, y: classification_loss()(z, y) * math.nan, loader, steps=10)
    calls = []

    def nan_from_the_fourth(z, y):
        calls.append(1)
        return classification_loss()(z, y) * (math.nan if len(calls) >= 4 else 1.0)
    model, opt, loader = toy_setup()
    r = lr_find(model, opt, nan_from_the_fourth, loader, steps=10)
    assert r.stopped == "diverged" and len(r.lrs) == 3 and all(map(math.isfinite, r.losses))


def test_find_lr_on_a_recipe_writes_only_its_plot(tmp_path):
    recipe = Recipe(name="toy", source="test", dataset="toy", model="lenet5", epochs=1, batch_size=32,
                    optimizer="adam", lr=1e-3, schedule="onecycle", precision="fp32")
    lines = []
    r = find_lr(recipe, ["label_smoothing=0.1"], dataset=toy_dataset(), steps=30, plot=tmp_path / "lr.png",
                log=lines.append)
    assert len(r.lrs) <= 30 and (tmp_path / "lr.png").read_bytes()[:4] == b"\x89PNG"
    assert [p.name for p in tmp_path.iterdir()] == ["lr.png"]
    assert "suggested lr (minimum/10)" in lines[1] and "(the one-cycle peak)" in lines[1]


def test_find_lr_clips_and_mixes_as_the_recipe_trains():
    """--set clip_grad_norm=... and mixup_alpha / cutmix_alpha change the test's steps as they
    change training's (they were left out: the curve was that of another setup)."""
    recipe = Recipe(name="toy", source="test", dataset="toy", model="lenet5", epochs=1, batch_size=32,
                    optimizer="sgd", lr=0.1, precision="fp32")

    def losses(overrides):
        return find_lr(recipe, overrides, dataset=toy_dataset(), steps=6, start_lr=1.0, end_lr=10.0,
                       log=lambda m: None).raw_losses
    plain = losses([])
    assert losses([]) == plain  # deterministic: any difference below comes from the setting
    clipped = losses(["clip_grad_norm=0.001"])
    assert clipped[0] == plain[0] and clipped[1:] != plain[1:]  # the first step's loss is before any clip
    assert losses(["mixup_alpha=1.0"])[0] != plain[0]


def test_command_refuses_unknown_recipes_and_ranges(capsys):
    from cnnlab.cli import main
    assert main(["lr-find", "mnist-lenet"]) == 2
    assert "did you mean 'mnist-lenet5'" in capsys.readouterr().err
    assert main(["lr-find", "mnist-lenet5", "--set", "lr=-1"]) == 2
    assert "lr=-1" in capsys.readouterr().err


def test_command_names_a_recipe_files_plot_after_its_stem_and_refuses_torchrun(tmp_path, capsys, monkeypatch):
    from cnnlab import runs
    from cnnlab.cli import main
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.json").write_text('{"base": "mnist-lenet5-fast", "dataset": "toy"}')
    monkeypatch.setattr(runs, "load_dataset", lambda *a, **k: toy_dataset())
    assert main(["lr-find", str(tmp_path / "mine.json"), "--steps", "10"]) == 0
    assert (tmp_path / "runs" / "mine-lr_find.png").read_bytes()[:4] == b"\x89PNG"
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["lr-find", "mnist-lenet5-fast"]) == 2
    assert "lr-find runs in one process: start it without torchrun" in capsys.readouterr().err
