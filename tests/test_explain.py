"""Grad-CAM, first-layer filters and feature maps (cnnlab.explain, `cnnlab explain`)."""
import pytest
import torch
from torch import nn

import cnnlab
from cnnlab.explain import cam_layer, feature_maps, first_conv_weights, grad_cam
from cnnlab.recipes import Recipe
from cnnlab.registry import UnknownNameError
from helpers import toy_dataset


class Spot(nn.Module):
    """features: a 1x1 conv (weight 1, bias 0) + ReLU, i.e. the image itself; head: global mean
    pool then logits ``(m, -m)``, or the single logit ``m`` with ``binary=True``."""

    def __init__(self, binary=False):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 1, 1), nn.ReLU())
        self.classifier = nn.Linear(1, 1 if binary else 2, bias=False)
        with torch.no_grad():
            self.features[0].weight.fill_(1.0)
            self.features[0].bias.zero_()
            self.classifier.weight.copy_(torch.tensor([[1.0]] if binary else [[1.0], [-1.0]]))

    def forward(self, x):
        return self.classifier(self.features(x).mean((2, 3)))


def spot_images():
    x = torch.zeros(2, 1, 8, 8)
    x[0, 0, 1, 2] = 3.0
    x[1, 0, 5:7, 4:6] = 1.0
    return x


def test_grad_cam_of_a_mean_pooled_map_is_the_map_itself():
    """d(mean A)/dA is 1/hw everywhere, so alpha > 0 and the CAM is A scaled to peak 1; for the
    other class alpha < 0 and ReLU leaves nothing (Selvaraju et al. 2017, eq. 1-2)."""
    x = spot_images()
    model = Spot()
    cam, logits, layer = grad_cam(model, x, layer="features")
    assert layer == "features" and cam.shape == (2, 8, 8) and cam.dtype == torch.float32
    assert torch.allclose(cam, x[:, 0] / x.amax((1, 2, 3)).view(-1, 1, 1))
    assert torch.allclose(logits, model(x))
    assert torch.equal(cam, grad_cam(model, x, target=torch.tensor([0, 0]), layer="features")[0])
    assert not grad_cam(model, x, target=torch.tensor([1, 1]), layer="features")[0].any()


def test_grad_cam_single_sigmoid_output_explains_class_0_by_the_negative_logit():
    x = spot_images()
    model = Spot(binary=True)
    cam1, _, _ = grad_cam(model, x, target=torch.tensor([1, 1]), layer="features")
    cam0, _, _ = grad_cam(model, x, target=torch.tensor([0, 0]), layer="features")
    assert torch.allclose(cam1, x[:, 0] / x.amax((1, 2, 3)).view(-1, 1, 1)) and not cam0.any()
    assert torch.equal(grad_cam(model, x, layer="features")[0], cam1)  # both predicted 1 (logit > 0)


def test_grad_cam_matches_a_hand_computation_on_a_real_model():
    model = cnnlab.create_model("mnist-cnn-small").eval()  # features: (N, 64, 14, 14)
    x = torch.randn(3, 1, 28, 28)
    target = torch.tensor([1, 4, 7])
    cam, logits, layer = grad_cam(model, x, target=target, layer="features")
    a = model.forward_features(x).detach().requires_grad_(True)
    score = model.forward_head(a).gather(1, target.view(-1, 1)).sum()
    (g,) = torch.autograd.grad(score, a)
    ref = torch.relu((g.mean((2, 3), keepdim=True) * a.detach()).sum(1, keepdim=True))
    ref = nn.functional.interpolate(ref, size=(28, 28), mode="bilinear", align_corners=False)[:, 0]
    ref = ref / ref.flatten(1).amax(1).clamp_min(1e-12).view(-1, 1, 1)
    assert torch.allclose(cam, ref, atol=1e-5)
    assert torch.allclose(logits, model(x), atol=1e-5)


def test_grad_cam_leaves_the_model_as_it_was():
    model = cnnlab.create_model("mnist-cnn-bn-403k").train()
    model.features.conv1.weight.requires_grad_(False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cam, _, _ = grad_cam(model, torch.randn(2, 1, 28, 28))
    assert model.training and not model.features.conv1.weight.requires_grad
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # BN stats too
    assert cam.min() >= 0 and cam.max() <= 1


def test_in_place_relu_after_the_layer_does_not_change_its_maps():
    """zfnet's ReLU(inplace=True) follows each conv: the conv's own (signed) maps are used."""
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(inplace=True),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    x = torch.randn(2, 1, 6, 6)
    maps = feature_maps(model, x, "0")
    assert torch.allclose(maps, model[0](x)) and (maps < 0).any()
    cam, logits, _ = grad_cam(model, x, layer="0")
    assert torch.allclose(logits, model(x)) and cam.shape == (2, 6, 6)


def test_default_layer_is_the_last_activated_map_of_at_least_4x4():
    def pick(name, shape):
        model = cnnlab.create_model(name, in_chans=shape[0], input_size=shape[1:])
        return cam_layer(model, torch.randn(1, *shape))
    assert pick("mnist-cnn-bn-403k", (1, 28, 28)) == "features.relu6"  # 4x4; conv7 is 2x2
    # a block's output is named by the layer that computed it, as cnnlab summary lists it
    assert pick("airbench94", (3, 32, 32)) == "features.block2.act2"  # 7x7; block3 pools to 3x3
    # the 8x8 stage's output: its blocks run one ReLU module twice, so no ReLU names a map
    assert pick("resnet20", (3, 32, 32)) == "layer3"
    assert pick("mnist-cnn-small", (1, 28, 28)) == "features.relu2"  # not "features" (then dropout)
    assert pick("lenet5", (1, 28, 28)) == "features.s4"  # the 5x5 subsampling after C3
    with pytest.raises(ValueError, match="no layer with a spatial output"):
        cam_layer(cnnlab.create_model("notmnist-mlp"), torch.randn(1, 1, 28, 28))
    with pytest.raises(ValueError, match=r"needs images \(N, C, H, W\).*\(2, 4, 1\)"):
        grad_cam(cnnlab.create_model("iris-conv1d"), torch.randn(2, 4, 1))


def test_a_pool_after_batchnorm_is_not_an_activated_map():
    """conv -> ReLU -> BatchNorm -> pool: the pool's maps are BatchNorm's, whose per-channel shift
    adds sum_k alpha_k b_k everywhere (the background lit up); the ReLU's map is the default."""
    bn = nn.BatchNorm2d(4).eval()
    with torch.no_grad():
        bn.bias.fill_(1.0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), bn, nn.MaxPool2d(2), nn.Dropout(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    assert cam_layer(model, torch.randn(1, 1, 16, 16)) == "1"
    # conv -> BatchNorm -> ReLU (in place) -> pool -> pool: pooled activations stay activated
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(inplace=True),
                          nn.MaxPool2d(2), nn.Dropout(), nn.AvgPool2d(2), nn.Conv2d(4, 4, 1),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    assert cam_layer(model, torch.randn(1, 1, 32, 32)) == "5"
    assert cam_layer(model, torch.randn(1, 1, 32, 32), min_size=16) == "3"
    # the same with the BatchNorm closing a block and the pool outside it: still the ReLU's map

    def block(c_in, c_out):
        return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(c_out))
    model = nn.Sequential(block(1, 4), nn.MaxPool2d(2), block(4, 4), nn.MaxPool2d(2),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    assert cam_layer(model.eval(), torch.randn(1, 1, 32, 32)) == "2.1"


def test_default_layer_of_models_with_batchnorm_after_the_relu():
    def pick(name):
        model = cnnlab.create_model(name)
        return cam_layer(model, torch.randn(1, *model.info.input_size))
    # conv -> ReLU -> BatchNorm -> pool blocks: the last ReLU'd conv, not the pooled BatchNorm
    assert pick("cifar10-cnn-bn") == "features.block2.conv2"
    assert pick("fashion-cnn-bn") == "features.block2.conv2"
    assert pick("cifar10-cnn-3block") == "features.block3.conv2"
    # conv -> BatchNorm -> ReLU -> pool and the others: as before
    assert pick("mnist-cnn-2m") == "features.block2.pool"
    assert pick("mnist-cnn-small") == "features.relu2"
    assert pick("mnist-cnn-bn-403k") == "features.relu6"
    assert pick("lenet5") == "features.s4"
    assert pick("airbench94") == "features.block2.act2"
    assert pick("vgg16_bn-cifar") == "features.32"


def test_densenet_default_layer_is_after_the_final_relu():
    """norm5 is a BatchNorm (about half its outputs negative); the ReLU the head applies is a
    module, relu5, without parameters: the state_dict keys stay torchvision's."""
    from cnnlab.models.densenet import DenseNet
    model = DenseNet(growth_rate=4, block_config=(1, 1, 1, 1), num_init_features=8, num_classes=3).eval()
    x = torch.randn(2, 3, 128, 128)
    assert cam_layer(model, x) == "features.relu5"
    assert not any("relu" in k for k in model.state_dict())
    with torch.no_grad():
        norm5 = model.features[:-1](x)
        ref = model.classifier(torch.relu(norm5).mean((2, 3)))
    assert (norm5 < 0).any() and torch.allclose(model(x), ref, atol=1e-6)


def test_feature_map_panels_keep_their_width_with_long_layer_names(tmp_path, monkeypatch):
    """A row's label as a title made tight_layout shrink all 16 columns to ~10 px to fit it."""
    from cnnlab.report import plots
    figs, save = [], plots._save
    monkeypatch.setattr(plots, "_save", lambda fig, path: (save(fig, path), figs.append(fig)))
    maps = [("features.block1.conv1", torch.rand(32, 32, 32)), ("features.block2.conv2", torch.rand(64, 16, 16))]
    plots.plot_feature_maps(torch.zeros(3, 32, 32, dtype=torch.uint8), maps, tmp_path / "fm.png", title="t")
    (fig,) = figs
    renderer = fig.canvas.get_renderer()
    assert min(ax.get_window_extent(renderer).width for ax in fig.axes) > 40  # pixels at the figure's dpi
    labels = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert labels == ["features.block1.conv1: 32 channels, 32x32", "features.block2.conv2: 32 of 64 channels, 16x16"]


def test_a_bfloat16_or_float64_model_gets_its_input_in_its_dtype():
    """The input used to be cast to float32 always: a bfloat16 or float64 model refused it."""
    from cnnlab.report.summary import summary_rows
    model = cnnlab.create_model("mnist-cnn-small").eval()
    x = torch.randn(2, 1, 28, 28)
    cam, logits, layer = grad_cam(model, x)
    maps = feature_maps(model, x, layer)
    for dtype, tol, cam_tol in ((torch.float64, 1e-4, 1e-4), (torch.bfloat16, 0.1, 0.25)):  # bf16: 8 bits
        cast = cnnlab.create_model("mnist-cnn-small").eval()
        cast.load_state_dict(model.state_dict())
        cast.to(dtype)
        cam2, logits2, layer2 = grad_cam(cast, x)
        maps2 = feature_maps(cast, x, layer2)
        assert layer2 == layer and cam2.dtype == logits2.dtype == maps2.dtype == torch.float32
        assert torch.allclose(cam2, cam, atol=cam_tol) and torch.allclose(maps2, maps, atol=tol, rtol=tol)
        assert torch.allclose(logits2, logits, atol=tol, rtol=tol)
        assert summary_rows(cast) == summary_rows(model)


def test_the_documented_misplacement_of_maps_that_do_not_tile_the_image():
    """lenet5's s4 (5x5 from 28x28, unpadded C3) sees rows ~3.5-23.5: the heatmap, stretched over
    the whole image (as the paper's code and pytorch-grad-cam do), lies ~3 px off at the corners."""
    model = cnnlab.create_model("lenet5").eval()
    x = torch.randn(1, 1, 28, 28, requires_grad=True)
    out = []
    handle = model.features.s4.register_forward_hook(lambda m, i, o: out.append(o))
    model(x)
    handle.remove()
    (g,) = torch.autograd.grad(out[0][0, :, 0, 0].sum(), x)  # what s4's position (0, 0) sees
    rows = torch.arange(28.0)
    seen = g[0, 0].abs().sum(1)
    one = torch.zeros(1, 1, 5, 5)
    one[0, 0, 0, 0] = 1
    drawn = nn.functional.interpolate(one, size=(28, 28), mode="bilinear", align_corners=False)[0, 0].sum(1)
    offset = float((seen * rows).sum() / seen.sum() - (drawn * rows).sum() / drawn.sum())
    assert 2 < offset < 4.5
    assert "lenet5's ``features.s4``" in grad_cam.__doc__ and ":func:`grad_cam`'s" in cam_layer.__doc__


def test_unknown_layer_names_close_matches():
    model = cnnlab.create_model("mnist-cnn-bn-403k")
    with pytest.raises(UnknownNameError, match="no layer 'features.relu9'.*did you mean 'features.relu"):
        grad_cam(model, torch.randn(1, 1, 28, 28), layer="features.relu9")
    with pytest.raises(ValueError, match="does not output feature maps"):
        grad_cam(model, torch.randn(1, 1, 28, 28), layer="classifier")
    with pytest.raises(ValueError, match="target has shape"):
        grad_cam(model, torch.randn(2, 1, 28, 28), target=torch.tensor([1]))
    # LeNet-5's C5 is 120 maps of 1x1: a heatmap of one position would be a uniform square
    lenet = cnnlab.create_model("lenet5")
    with pytest.raises(ValueError, match=r"'features.c5' outputs 1x1 maps \(120, 1, 1\).*choose an "
                                         r"earlier layer \(default: features.s4\)"):
        grad_cam(lenet, torch.randn(1, 1, 28, 28), layer="features.c5")


def test_first_conv_weights():
    w, name = first_conv_weights(cnnlab.create_model("airbench94"))
    assert name == "features.whiten" and w.shape == (24, 3, 2, 2) and w.dtype == torch.float32
    w, name = first_conv_weights(nn.Sequential(nn.Flatten(), nn.Conv2d(1, 5, 3)))
    assert name == "1" and w.shape == (5, 1, 3, 3)
    with pytest.raises(ValueError, match="no 2-D convolution"):
        first_conv_weights(cnnlab.create_model("notmnist-mlp"))


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    """A small CNN trained on the toy set, where class k is a bright square at position k."""
    recipe = Recipe(name="toy", source="test", dataset="toy", model="mnist-cnn-small", epochs=2,
                    batch_size=64, eval_batch_size=100, val_fraction=0.2, precision="fp32")
    out = tmp_path_factory.mktemp("explain") / "run"
    run = cnnlab.train(recipe, dataset=toy_dataset(), run_dir=out, log=lambda m: None)
    assert run.test_metrics["accuracy"] > 0.9
    return out


def test_grad_cam_of_a_trained_model_lights_up_the_class_square(toy_run):
    ds, run = toy_dataset(), cnnlab.load_run(toy_run)
    x = ((ds.test_images[:40].float() / 255 - ds.mean[0]) / ds.std[0])
    cam, logits, layer = grad_cam(run.model, x)
    inside = []
    for i, k in enumerate(ds.test_labels[:40].tolist()):
        r, c = divmod(k, 2)
        mask = torch.zeros(28, 28, dtype=torch.bool)
        mask[3 + 12 * r:10 + 12 * r, 3 + 12 * c:10 + 12 * c] = True
        inside.append(float(cam[i][mask].mean() - cam[i][~mask].mean()))
    assert sum(v > 0 for v in inside) >= 36, inside  # the heat sits on the square


def test_explain_command_writes_three_pngs(toy_run, tmp_path, monkeypatch, capsys):
    from cnnlab import runs
    from cnnlab.cli import main
    monkeypatch.setattr(runs, "load_dataset", lambda name, data_dir=None: toy_dataset())
    assert main(["explain", str(toy_run), "--images", "5", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Grad-CAM at layer features.relu2: " in out and "filters of features.conv1" in out
    for name in ("gradcam.png", "filters.png", "feature_maps.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    assert main(["explain", str(toy_run), "--layer", "features.pool1x", "--out", str(tmp_path)]) == 2
    assert "did you mean" in capsys.readouterr().err
    assert main(["explain", str(tmp_path / "nothing")]) == 2
    assert "not a cnnlab run folder" in capsys.readouterr().err
    # the device is the user's choice, as for evaluate and predict; a bad one is named
    assert main(["explain", str(toy_run), "--images", "2", "--device", "cpu", "--out", str(tmp_path)]) == 0
    assert main(["explain", str(toy_run), "--device", "tpu", "--out", str(tmp_path)]) == 2
    assert "unknown device 'tpu'" in capsys.readouterr().err


def test_select_predictions_ranks_by_confidence():
    from cnnlab.report.confidence import select_predictions
    labels = torch.tensor([0, 1, 0, 1, 0])
    logits = torch.tensor([[3.0, 0.0], [0.0, 1.0], [0.0, 2.0], [4.0, 0.0], [0.5, 0.0]])
    assert select_predictions(labels, logits, "best", 5) == [0, 1, 4]  # correct, most confident first
    assert select_predictions(labels, logits, "worst", 1) == [3]  # wrong at 98% before wrong at 88%
    assert select_predictions(labels, None, "random", 5, seed=1) == torch.randperm(
        5, generator=torch.Generator().manual_seed(1)).tolist()
    binary = torch.tensor([[2.0], [1.0], [0.5], [-3.0], [-1.0]])  # one sigmoid output
    assert select_predictions(labels, binary, "worst", 5) == [3, 0, 2]
    with pytest.raises(ValueError, match="kind must be best, worst or random"):
        select_predictions(labels, logits, "wrong", 5)


def test_explain_run_selects_worst_and_best_predictions(toy_run, tmp_path, monkeypatch):
    from cnnlab import runs
    from cnnlab.explain import explain_run
    ds = toy_dataset()
    monkeypatch.setattr(runs, "load_dataset", lambda name, data_dir=None: ds)
    model = cnnlab.load_run(toy_run).model
    x = (ds.test_images.float() / 255 - ds.mean[0]) / ds.std[0]
    with torch.no_grad():
        probs = torch.softmax(model(x), 1)
    conf, pred = probs.max(1)
    wrong = (pred != ds.test_labels).nonzero().flatten()
    best = explain_run(toy_run, select="best", images=6, out_dir=tmp_path)["test_indices"]
    assert (pred[best] == ds.test_labels[best]).all()
    assert conf[best].tolist() == sorted(conf[best].tolist(), reverse=True)
    if len(wrong):
        worst = explain_run(toy_run, select="worst", images=6, out_dir=tmp_path)["test_indices"]
        assert set(worst) <= set(wrong.tolist()) and len(worst) == min(6, len(wrong))
    else:
        with pytest.raises(ValueError, match="no test image is predicted wrongly"):
            explain_run(toy_run, select="worst", out_dir=tmp_path)
    with pytest.raises(ValueError, match="select must be random, worst or best"):
        explain_run(toy_run, select="wrong", out_dir=tmp_path)
    for n in (0, 65):  # one readable grid: 5,000 drew a 1280x21470 PNG without a word
        with pytest.raises(ValueError, match=f"images must be 1 to 64, got {n}"):
            explain_run(toy_run, images=n, out_dir=tmp_path)


def test_grad_cam_takes_a_class_index_and_refuses_raw_pixels(toy_run):
    ds, run = toy_dataset(), cnnlab.load_run(toy_run)
    pixels = ds.test_images[:4]
    with pytest.raises(ValueError, match="got torch.uint8 pixels: run.normalize\\(pixels\\) prepares them"):
        grad_cam(run.model, pixels)
    x = run.normalize(pixels)  # the run's own normalisation, as its test split was prepared
    assert torch.allclose(x, (pixels.float() / 255 - ds.mean[0]) / ds.std[0], atol=1e-6)  # to rounding
    cam_all, _, _ = grad_cam(run.model, x, target=2)
    cam_each, _, _ = grad_cam(run.model, x, target=torch.full((4,), 2))
    assert torch.equal(cam_all, cam_each)
    with pytest.raises(ValueError, match="takes 1-channel input \\(1, 28, 28\\)"):
        run.normalize(torch.zeros(1, 28, 28, 3, dtype=torch.uint8))


def test_a_module_run_twice_per_pass_is_refused_and_blocks_give_their_output():
    """A ResNet block calls its one ReLU after conv1 and after the sum: hooking `layer3.2.relu`
    gave the first (mid-block) map, while the default layer and the README called it the end of
    layer3."""
    model = cnnlab.create_model("resnet20").eval()
    x = torch.randn(2, 3, 32, 32)
    with pytest.raises(ValueError, match=r"'layer3.2.relu' runs 2 times .* the block 'layer3.2'"):
        grad_cam(model, x, layer="layer3.2.relu")
    with pytest.raises(ValueError, match="runs 2 times"):
        feature_maps(model, x, "layer3.2.relu")
    with torch.no_grad():
        stage = model.layer3(model.layer2(model.layer1(model.relu(model.bn1(model.conv1(x))))))
    torch.testing.assert_close(feature_maps(model, x, "layer3"), stage)
    torch.testing.assert_close(feature_maps(model, x, "layer3.2"), stage)


def test_explain_ranks_the_test_split_the_run_was_tested_on(tmp_path, monkeypatch):
    """A smoke run (limit) is tested on its first test images: --select best ranked all 200."""
    from cnnlab import runs
    from cnnlab.explain import explain_run
    recipe = Recipe(name="toy", source="test", dataset="toy", model="mnist-cnn-small", epochs=1,
                    batch_size=32, eval_batch_size=100, val_fraction=0.2, precision="fp32")
    cnnlab.train(recipe, dataset=toy_dataset(), run_dir=tmp_path / "r", log=lambda m: None, limit=60)
    monkeypatch.setattr(runs, "load_dataset", lambda name, data_dir=None: toy_dataset())
    shown = explain_run(tmp_path / "r", select="best", images=64, out_dir=tmp_path)["test_indices"]
    assert shown and max(shown) < 60


def test_every_modules_own_mode_survives_inspection_and_evaluation():
    """Fine-tuning keeps frozen BatchNorms in eval mode inside a model that trains: Grad-CAM,
    feature maps, the summary and evaluation must hand back each module's mode, not the model's."""
    from cnnlab.models import create_model
    from cnnlab.report.summary import summary
    from cnnlab.training.loop import evaluate
    model = create_model("cifar10-cnn-bn", num_classes=10)
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    model.train()
    norms[0].eval()  # frozen, as frozen_norms_eval leaves it
    x = torch.randn(2, 3, 32, 32)
    layer = cam_layer(model, x)
    grad_cam(model, x)
    feature_maps(model, x, layer)
    summary(model)
    evaluate(model, [(x, torch.tensor([0, 1]))], nn.CrossEntropyLoss(), torch.device("cpu"))
    assert model.training and not norms[0].training and all(m.training for m in norms[1:])


def test_confident_predictions_are_ranked_past_float32_saturation():
    """float32 softmax is exactly 1.0 past a logit margin of ~17: the grids ranked such
    predictions as ties; a binary logit of 1e-8 (probability 0.5 in float32) is class 1 as the
    metrics count it."""
    from cnnlab.report.confidence import predictions, select_predictions
    labels = torch.zeros(4, dtype=torch.long)
    logits = torch.tensor([[18.0, 0.0], [30.0, 0.0], [50.0, 0.0], [5.0, 0.0]])
    assert select_predictions(labels, logits, "best", 4) == [2, 1, 0, 3]
    pred, conf, _ = predictions(torch.tensor([[1e-8], [0.0], [-1e-8]]))
    assert pred.tolist() == [1, 0, 0] and conf.tolist() == [0.5, 0.5, 0.5]
    assert select_predictions(torch.tensor([1]), torch.tensor([[1e-8]]), "worst", 1) == []
