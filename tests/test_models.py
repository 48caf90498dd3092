"""The model zoo, parametrised over the registry.

Shape-only checks (parameter counts, state_dict keys, channel and size handling, head swaps) build
the models on the ``meta`` device: no memory, no initialisation, so even VGG-19 costs
milliseconds. Only the forward/backward test and a few value checks build real weights.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from cnnlab.models import MODELS, count_params, create_model
from cnnlab.registry import UnknownNameError

FIXTURE = Path(__file__).parent / "fixtures" / "torchvision_state_dicts.json"
TORCHVISION = json.loads(FIXTURE.read_text())
ALL = list(MODELS)


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def meta_model(name: str, **kw):
    with torch.device("meta"):
        return create_model(name, **kw)


def keras_count(module: torch.nn.Module) -> int:
    """Parameters as Keras' summary counts them: BatchNorm's running mean/var included."""
    stats = sum(b.numel() for n, b in module.named_buffers() if n.rsplit(".", 1)[-1] in
                ("running_mean", "running_var"))
    return count_params(module) + stats


def keras_layer_counts(model: torch.nn.Module) -> list[int]:
    """Keras-style counts of the layers that have parameters, in definition order."""
    return [keras_count(m) for m in model.modules()
            if not list(m.children()) and any(True for _ in m.parameters(recurse=False))]


# --- the registry -----------------------------------------------------------------------------

EXPECTED_NAMES = {
    "mnist-cnn-small", "mnist-cnn-wide", "notmnist-mlp", "fashion-cnn-bn", "cifar10-cnn-bn",
    "mnist-cnn-bn-403k", "mnist-cnn-2m", "cifar10-cnn-3block", "iris-conv1d", "mnist-cnn-torch",
    "lenet5", "lenet5-original", "alexnet", "alexnet-cifar", "zfnet", "zfnet-cifar",
    *(f"vgg{d}{bn}{c}" for d in (11, 13, 16, 19) for bn in ("", "_bn") for c in ("", "-cifar")),
    "resnet20", "resnet32", "resnet44", "resnet56", "resnet110", "resnet18", "resnet34", "resnet50",
    "mobilenet_v2", "densenet121",
}


def test_registry_has_the_zoo():
    assert EXPECTED_NAMES <= set(MODELS)
    assert MODELS.list("vgg*") == sorted(n for n in EXPECTED_NAMES if n.startswith("vgg"))
    assert "vgg16_bn-cifar" in MODELS.list("vgg16*")


@pytest.mark.parametrize("name,close", [("vgg16bn", "vgg16_bn"), ("resnet-50", "resnet50"),
                                        ("lenet", "lenet5"), ("mobilenetv2", "mobilenet_v2")])
def test_unknown_name_suggests_close_matches(name, close):
    with pytest.raises(UnknownNameError, match=repr(close)):
        create_model(name)


# --- parameter counts -------------------------------------------------------------------------

@pytest.mark.parametrize("name", ALL)
def test_recorded_param_count(name):
    model = meta_model(name)
    assert model.info.num_params is not None, f"{name}: register_model(num_params=...) missing"
    assert count_params(model) == model.info.num_params


PUBLISHED = {  # torchvision's documented counts (1000 classes)
    "alexnet": 61_100_840, "vgg16": 138_357_544, "vgg16_bn": 138_365_992,
    "resnet18": 11_689_512, "resnet50": 25_557_032, "mobilenet_v2": 3_504_872,
    "densenet121": 7_978_856,
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_param_counts(name):
    assert count_params(meta_model(name)) == PUBLISHED[name]


@pytest.mark.parametrize("depth,paper_millions,option_a,option_b", [
    (20, "0.27", 269_722, 272_474), (32, "0.46", 464_154, 466_906), (44, "0.66", 658_586, 661_338),
    (56, "0.85", 853_018, 855_770), (110, "1.7", 1_727_962, 1_730_714)])
def test_cifar_resnet_counts(depth, paper_millions, option_a, option_b):
    a = count_params(meta_model(f"resnet{depth}"))
    b = count_params(meta_model(f"resnet{depth}", shortcut="B"))
    assert a == option_a  # the paper's option A: parameter-free shortcuts
    # He et al. Table 6 rounds to 2 significant digits
    assert f"{a / 1e6:.{len(paper_millions.split('.')[1])}f}" == paper_millions
    # option B adds two 1x1 projections + BN: 16*32 + 2*32 + 32*64 + 2*64
    assert b - a == 2_752 and b == option_b


def test_seed_counts_mnist_cnn_small():
    assert count_params(meta_model("mnist-cnn-small")) == 1_625_866
    assert keras_layer_counts(meta_model("mnist-cnn-small")) == [320, 18_496, 1_605_760, 1_290]


def test_mnist_cnn_torch_is_pytorch_examples_net():
    """conv1 1->32, conv2 32->64 (3x3, no padding), fc1 9216->128, fc2 128->10."""
    assert keras_layer_counts(meta_model("mnist-cnn-torch")) == [320, 18_496, 1_179_776, 1_290]
    model = meta_model("mnist-cnn-torch")
    assert [m.p for m in model.modules() if type(m).__name__ == "Dropout"] == [0.25, 0.5]


def test_seed_counts_cifar10_cnn_3block_layer_by_layer():
    table = [896, 9_248, 128, 18_496, 36_928, 256, 73_856, 147_584, 512, 262_272, 1_290]
    model = meta_model("cifar10-cnn-3block")
    assert keras_layer_counts(model) == table
    assert keras_count(model) == sum(table) == 551_466


def test_seed_counts_mnist_cnn_bn_403k_within_the_documented_typo():
    table = [128, 128, 9_216, 128, 25_632, 18_432, 256, 36_864, 256, 102_464, 204_928, 5_130]
    assert sum(table) == 403_562  # the seed's printed total
    model = meta_model("mnist-cnn-bn-403k")
    layers = keras_layer_counts(model)
    assert layers[0] == 288  # 3*3*1*32 without bias; the seed prints 128
    assert layers[1:] == table[1:]
    assert keras_count(model) == 403_562 - 128 + 288
    assert count_params(model) == 403_562 - 128 + 288 - (32 + 32 + 64 + 64) * 2


def test_lenet5_original_counts_are_the_papers():
    model = meta_model("lenet5-original")
    # C1, S2, C3 (Table I), S4, C5, F6: 60,000 trainable, as in the paper; the RBF's 840 fixed
    assert keras_layer_counts(model) == [156, 12, 1_516, 32, 48_120, 10_164, 840]
    assert count_params(model, trainable_only=True) == 60_000
    assert count_params(meta_model("lenet5-original", output="linear")) == 60_850


def test_mnist_cnn_2m_is_about_2_2m():
    assert round(count_params(meta_model("mnist-cnn-2m")) / 1e6, 1) == 2.2


# --- torchvision compatibility ----------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_torchvision_state_dict_keys_and_shapes(name):
    model = meta_model(name)
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert ours == TORCHVISION[name]
    assert list(ours) == list(TORCHVISION[name])  # same order too
    zeros = {k: torch.zeros(s, device="meta") for k, s in TORCHVISION[name].items()}
    model.load_state_dict(zeros, strict=True, assign=True)


@pytest.mark.parametrize("name", ["alexnet", "resnet18", "mobilenet_v2", "densenet121"])
def test_torchvision_state_dict_loads_for_real(name):
    model = create_model(name)
    ours = model.state_dict()
    zeros = {k: torch.zeros(s, dtype=ours[k].dtype) for k, s in TORCHVISION[name].items()}
    model.load_state_dict(zeros, strict=True)
    assert all(not p.detach().any() for p in model.parameters())


# --- every model runs -------------------------------------------------------------------------

def run_forward_backward(name: str, batch: int = 2) -> None:
    """Random batch -> logits (shape, finite) -> cross-entropy backward (finite gradients that
    reach every trainable parameter and the input)."""
    model = create_model(name)
    x = torch.randn(batch, *model.info.input_size, requires_grad=True)
    logits = model(x)
    assert logits.shape == (batch, model.num_classes)
    assert torch.isfinite(logits).all()
    F.cross_entropy(logits, torch.randint(0, model.num_classes, (batch,))).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    for pname, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None, f"{name}: no gradient reaches {pname}"
            assert torch.isfinite(p.grad).all(), f"{name}: non-finite gradient in {pname}"


@pytest.mark.parametrize("name", ALL)
def test_forward_backward(name):
    # batch 1 at 224x224: about 1 CPU-second for VGG-16 forward + backward
    big = min(MODELS.get(name).info.input_size[1:]) >= 224
    run_forward_backward(name, batch=1 if big else 2)


@pytest.mark.parametrize("name", ALL)
def test_metadata_names_real_layers(name):
    model = meta_model(name)
    info = model.info
    assert info.paper and info.input_size[0] == model.in_chans
    head = model.get_submodule(info.classifier)
    assert head.out_features == model.num_classes
    if info.first_conv:
        conv = model.get_submodule(info.first_conv)
        assert conv.in_channels == info.input_size[0]
    # `features` and `classifier` exist on every model, as modules
    assert isinstance(model.features, torch.nn.Module)
    assert isinstance(model.classifier, torch.nn.Module)


# --- head swap, channels, sizes ---------------------------------------------------------------

@pytest.mark.parametrize("name", ALL)
def test_reset_classifier_changes_width_and_keeps_the_rest(name):
    model = meta_model(name)
    before = {k: v.shape for k, v in model.state_dict().items()}
    model.reset_classifier(7)
    after = {k: v.shape for k, v in model.state_dict().items()}
    head = model.info.classifier + "."
    assert before.keys() == after.keys()
    assert {k: s for k, s in before.items() if not k.startswith(head)} == \
        {k: s for k, s in after.items() if not k.startswith(head)}
    assert model.num_classes == 7
    x = torch.empty(2, *model.info.input_size, device="meta")
    assert model.eval()(x).shape == (2, 7)


@pytest.mark.parametrize("name", ["mnist-cnn-small", "notmnist-mlp", "iris-conv1d", "resnet20",
                                  "lenet5-original", "vgg11_bn-cifar"])
def test_reset_classifier_keeps_weights(name):
    model = create_model(name)
    head = model.info.classifier + "."
    before = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith(head)}
    model.reset_classifier(3)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert model.eval()(torch.randn(2, *model.info.input_size)).shape == (2, 3)


@pytest.mark.parametrize("name", ALL)
def test_other_input_channels(name):
    default = MODELS.get(name).info.input_size[0]
    chans = 3 if default == 1 else 1
    model = meta_model(name, in_chans=chans)
    assert model.in_chans == chans and model.info.input_size[0] == chans
    x = torch.empty(2, *model.info.input_size, device="meta")
    assert model.eval()(x).shape == (2, model.num_classes)
    with pytest.raises(ValueError, match=f"expects {chans} input channel"):
        model(torch.empty(2, default, *model.info.input_size[1:], device="meta"))


@pytest.mark.parametrize("name", ["mnist-cnn-small", "cifar10-cnn-3block", "resnet20", "lenet5-original"])
def test_other_input_channels_for_real(name):
    default = MODELS.get(name).info.input_size[0]
    model = create_model(name, in_chans=4)
    assert torch.isfinite(model(torch.randn(2, 4, *MODELS.get(name).info.input_size[1:]))).all()
    assert default != 4


@pytest.mark.parametrize("name", ALL)
def test_wrong_input_size_says_which_sizes_work(name):
    model = meta_model(name).eval()
    info = model.info
    c, *size = info.input_size
    if info.fixed_size:
        bad = [s + 4 for s in size]
        expected = "x".join(map(str, size)) if len(size) > 1 else f"length-{size[0]}"
        match = f"takes {expected} inputs only"
    else:
        bad = [info.min_size - 1] * len(size)
        match = "at least " + "x".join([str(info.min_size)] * len(size))
        # ... and the smallest accepted size does run
        assert model(torch.empty(1, c, *[info.min_size] * len(size), device="meta")).shape[0] == 1
    with pytest.raises(ValueError, match=match):
        model(torch.empty(1, c, *bad, device="meta"))


def test_create_model_rejects_sizes_at_build_time():
    with pytest.raises(ValueError, match="built for 32x32 inputs only"):
        create_model("alexnet-cifar", input_size=(64, 64))
    with pytest.raises(ValueError, match="at least 32x32"):
        meta_model("vgg16", input_size=(16, 16))
    # size-flexible models accept a build-time size and ignore it; sized ones resize their head
    assert meta_model("vgg16", input_size=(150, 150)).info.input_size == (3, 150, 150)
    model = meta_model("mnist-cnn-small", input_size=(32, 32))
    assert model(torch.empty(2, 1, 32, 32, device="meta")).shape == (2, 10)
    assert meta_model("lenet5-original", input_size=(32, 32)).features.c1.padding == (0, 0)


def test_alexnet_min_size_is_tight():
    model = meta_model("alexnet").eval()
    model.forward_head(model.forward_features(torch.empty(1, 3, 63, 63, device="meta")))
    with pytest.raises(RuntimeError):  # below 63 the last max-pool has nothing left to pool
        model.forward_features(torch.empty(1, 3, 62, 62, device="meta"))


# --- family specifics -------------------------------------------------------------------------

def test_iris_conv1d_takes_1d_signals():
    model = create_model("iris-conv1d")
    assert model.info.input_size == (1, 4) and model.num_classes == 3
    assert model(torch.randn(5, 1, 4)).shape == (5, 3)
    assert model.forward_features(torch.randn(5, 1, 4)).shape == (5, 4, 2)  # Conv1D(4, 3)
    with pytest.raises(ValueError, match="length-4 inputs only"):
        model(torch.randn(5, 1, 6))
    assert create_model("iris-conv1d", input_size=(6,))(torch.randn(2, 1, 6)).shape == (2, 3)


@pytest.mark.parametrize("name", ["resnet18", "resnet20"])
def test_resnet_features_is_a_view_with_torchvision_keys(name):
    model = create_model(name)
    assert not any(k.startswith(("features.", "classifier.")) for k in model.state_dict())
    assert model.classifier is model.fc
    assert model.features.conv1 is model.conv1 and model.features is model.features  # cached
    seen = []
    handle = model.features.register_forward_hook(lambda m, i, o: seen.append(o.shape))
    x = torch.randn(2, 3, *model.info.input_size[1:])
    model.eval()(x)
    handle.remove()
    assert len(seen) == 1 and seen[0][0] == 2  # the view is what forward runs
    model.features.requires_grad_(False)  # freezing the base leaves only the head trainable
    assert count_params(model, trainable_only=True) == model.fc.weight.numel() + model.fc.bias.numel()
    model.reset_classifier(5)
    assert model.classifier is model.fc and model.fc.out_features == 5
    model.layer1 = copy.deepcopy(model.layer1)  # replacing a stage rebuilds the view
    assert model.features.layer1 is model.layer1
    clone = copy.deepcopy(model)
    assert clone.features.conv1 is clone.conv1 and clone.features.conv1 is not model.conv1


def test_lenet5_original_c3_follows_table_1():
    from cnnlab.models.lenet import C3_TABLE
    model = create_model("lenet5-original").eval()
    c3 = model.features.c3
    assert c3.weight.shape == (60, 5, 5)
    assert [len(t) for t in C3_TABLE] == [3] * 6 + [4] * 9 + [6]
    # input map i reaches exactly the output maps whose table row lists i
    for i in range(6):
        x = torch.zeros(1, 6, 14, 14)
        x[:, i] = 1.0
        reached = (c3(x) - c3.bias.view(1, -1, 1, 1)).abs().amax((0, 2, 3)) > 0
        assert reached.tolist() == [i in inputs for inputs in C3_TABLE], i


def test_lenet5_original_rbf_is_negative_squared_distance():
    model = create_model("lenet5-original").eval()
    rbf = model.classifier.output
    assert not rbf.weight.requires_grad and set(rbf.weight.unique().tolist()) <= {-1.0, 1.0}
    f6 = torch.randn(4, 84)
    expected = -((f6[:, None, :] - rbf.weight[None]) ** 2).sum(-1)
    assert torch.allclose(rbf(f6), expected, atol=1e-4)


def conv_map_sizes(model, x) -> list[tuple[int, ...]]:
    """Output shapes (C, H, W) of each conv / pool of ``features``, on the meta device."""
    sizes = []
    for _, layer in model.features.named_children():
        x = layer(x)
        if isinstance(layer, (torch.nn.Conv2d, torch.nn.MaxPool2d)):
            sizes.append(tuple(x.shape[1:]))
    return sizes


def test_zfnet_map_sizes_follow_fig_3():
    model = meta_model("zfnet")
    assert conv_map_sizes(model, torch.empty(1, 3, 224, 224, device="meta")) == [
        (96, 110, 110), (96, 55, 55), (256, 26, 26), (256, 13, 13), (384, 13, 13),
        (384, 13, 13), (256, 13, 13), (256, 6, 6)]


def test_mnist_cnn_bn_403k_map_sizes_follow_the_seed_table():
    model = meta_model("mnist-cnn-bn-403k")
    assert conv_map_sizes(model, torch.empty(1, 1, 28, 28, device="meta")) == [
        (32, 26, 26), (32, 24, 24), (32, 12, 12), (64, 10, 10), (64, 8, 8), (64, 4, 4),
        (128, 2, 2)]


def test_dropout_matches_nn_dropout_statistics():
    from cnnlab.models.layers import Dropout
    torch.manual_seed(0)
    x = torch.ones(200_000, requires_grad=True)
    d = Dropout(0.35)
    y = d(x)
    dropped = (y == 0).float().mean().item()
    assert abs(dropped - 0.35) < 0.005
    assert torch.allclose(y[y != 0], torch.tensor(1 / 0.65))  # survivors scaled as nn.Dropout
    y.sum().backward()
    assert torch.equal(x.grad == 0, y == 0)  # gradient flows only through kept elements
    d.eval()
    assert d(x) is x
    xc = torch.randn(4, 8, 5, 5).contiguous(memory_format=torch.channels_last)
    d.train()
    assert d(xc).is_contiguous(memory_format=torch.channels_last)
    strided = torch.ones(4, 8, 6, 6)[:, ::2]  # a view with gaps: as_strided ran out of the mask
    out = d(strided)
    assert out.shape == (4, 4, 6, 6) and (out == 0).any()
    assert ((out == 0) | torch.isclose(out, torch.tensor(1 / 0.65))).all()


@pytest.mark.parametrize("stride,padding,bias", [(1, 1, True), (2, 0, False), (1, 2, True)])
def test_conv2d_relu_matches_conv_then_relu_forward_and_backward(stride, padding, bias):
    from cnnlab.models.layers import Conv2dReLU
    torch.manual_seed(0)
    fused = Conv2dReLU(3, 8, 3, stride=stride, padding=padding, bias=bias)
    ref = torch.nn.Conv2d(3, 8, 3, stride=stride, padding=padding, bias=bias)
    ref.load_state_dict(fused.state_dict())  # same keys: a drop-in for Conv2d + ReLU
    x = torch.randn(4, 3, 11, 11)
    xf, xr = x.clone().requires_grad_(), x.clone().requires_grad_()
    yf, yr = fused(xf), torch.relu(ref(xr))
    torch.testing.assert_close(yf, yr)
    g = torch.randn_like(yr)
    yf.backward(g)
    yr.backward(g)
    torch.testing.assert_close(xf.grad, xr.grad)
    torch.testing.assert_close(fused.weight.grad, ref.weight.grad)
    if bias:
        torch.testing.assert_close(fused.bias.grad, ref.bias.grad)


def test_conv2d_relu_under_bf16_autocast_keeps_layout_and_fp32_grads():
    from cnnlab.models.layers import Conv2dReLU
    torch.manual_seed(0)
    fused = Conv2dReLU(1, 16, 3, padding=1).to(memory_format=torch.channels_last)
    ref = torch.nn.Conv2d(1, 16, 3, padding=1).to(memory_format=torch.channels_last)
    ref.load_state_dict(fused.state_dict())
    x = torch.randn(8, 1, 28, 28).to(memory_format=torch.channels_last)
    with torch.autocast("cpu", torch.bfloat16):
        yf, yr = fused(x), torch.relu(ref(x))
    assert yf.dtype == torch.bfloat16 and yf.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(yf, yr)
    yf.float().sum().backward()
    yr.float().sum().backward()
    assert fused.weight.grad.dtype == torch.float32
    torch.testing.assert_close(fused.weight.grad, ref.weight.grad, rtol=1e-2, atol=1e-2)


def test_seed_cnn_with_fused_conv_relu_compiles():
    """torch.compile traces the unfused path (the fused op's fake kernel disagrees on strides)."""
    m = create_model("mnist-cnn-small").eval()  # no dropout: outputs comparable
    x = torch.randn(4, 1, 28, 28)
    ref = m(x)
    out = torch.compile(m)(x)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("size", [5, 4])
@pytest.mark.parametrize("channels_last", [False, True])
def test_local_response_norm_matches_pytorch_forward_and_backward(size, channels_last):
    from cnnlab.models.layers import LocalResponseNorm
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = (torch.randn(3, 11, 5, 6, dtype=torch.float64) * 10).to(memory_format=fmt)
    ref_x, new_x = x.detach().clone().requires_grad_(), x.detach().clone().requires_grad_()
    ref = torch.nn.LocalResponseNorm(size, alpha=5e-4, beta=0.75, k=2.0)(ref_x)
    new = LocalResponseNorm(size, alpha=5e-4, beta=0.75, k=2.0)(new_x)
    assert new.dtype == torch.float64 and new.is_contiguous(memory_format=fmt)
    torch.testing.assert_close(new, ref, rtol=1e-12, atol=1e-12)
    g = torch.randn_like(ref)
    ref.backward(g)
    new.backward(g)
    torch.testing.assert_close(new_x.grad, ref_x.grad, rtol=1e-12, atol=1e-12)


def test_local_response_norm_under_bf16_autocast_and_other_ranks():
    from cnnlab.models.layers import LocalResponseNorm
    lrn = LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0)
    x = (torch.randn(2, 96, 8, 8) * 10).to(memory_format=torch.channels_last)
    with torch.autocast("cpu", torch.bfloat16):
        out = lrn(x.bfloat16())
    ref = torch.nn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0)(x.bfloat16().float())
    assert out.dtype == torch.float32  # as PyTorch's under autocast: the next layer casts it
    torch.testing.assert_close(out, ref, rtol=2e-3, atol=2e-3)
    x3 = torch.randn(2, 7, 9)  # (N, C, L): PyTorch's own path
    torch.testing.assert_close(lrn(x3), torch.nn.LocalResponseNorm(5, 5e-4, 0.75, 2.0)(x3))


@pytest.mark.parametrize("name", ["zfnet-cifar", "zfnet"])
def test_zfnet_cast_to_bfloat16_runs(name):
    """A model cast to bfloat16 (summary and explain take one): the LRN gave float32 maps, which
    the next conv's bfloat16 weights refused."""
    from cnnlab.models.layers import LocalResponseNorm
    model = create_model(name).eval()
    x = torch.randn(1, *model.info.input_size)
    with torch.no_grad():
        ref = model(x)
        model.to(torch.bfloat16)
        assert LocalResponseNorm(5, 5e-4, 0.75, 2.0)(x.bfloat16()).dtype == torch.bfloat16
        out = model(x.bfloat16())
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), ref, rtol=0.05, atol=0.05)


@pytest.mark.parametrize("conv_mode,linear_std", [("fan_out", 0.01), ("fan_in", None)])
def test_torchvision_init_draws_what_torchvisions_loop_draws(conv_mode, linear_std):
    from cnnlab.models.layers import torchvision_init
    make = lambda: torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8),  # noqa: E731
                                       torch.nn.Flatten(), torch.nn.Linear(8, 4))
    torch.manual_seed(0)
    ours = make()
    torchvision_init(ours, conv_mode=conv_mode, linear_std=linear_std)
    torch.manual_seed(0)
    ref = make()
    for m in ref.modules():  # torchvision's models/vgg.py loop
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, mode=conv_mode, nonlinearity="relu")
            torch.nn.init.zeros_(m.bias)
        elif isinstance(m, torch.nn.BatchNorm2d):
            torch.nn.init.ones_(m.weight)
            torch.nn.init.zeros_(m.bias)
        elif isinstance(m, torch.nn.Linear):
            if linear_std is not None:
                torch.nn.init.normal_(m.weight, 0, linear_std)
            torch.nn.init.zeros_(m.bias)
    for (k, a), b in zip(ours.state_dict().items(), ref.state_dict().values()):
        assert torch.equal(a, b), k


@pytest.mark.parametrize("model,layer", [("mnist-cnn-wide", "Conv2dReLU"), ("zfnet-cifar", "LocalResponseNorm"),
                                         ("mnist-cnn-small", "Dropout")])
def test_layer_ablation_swaps_in_the_stock_layer_with_the_same_function(model, layer):
    """benchmarks/layers.py times each cnnlab layer against its stock counterpart: the swap must
    keep the function (and the parameters), or the comparison would be of different models."""
    import importlib.util
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "layers.py"
    spec = importlib.util.spec_from_file_location("layers_bench", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    torch.manual_seed(0)
    m = create_model(model).eval()
    info = MODELS.get(model)
    x = torch.randn(2, *info.info.input_size)
    ref = m(x)
    params = {id(p) for p in m.parameters()}
    assert bench.swap_back(m, layer) >= 1
    assert not any(type(c).__module__.startswith("cnnlab") and type(c).__name__ == layer for c in m.modules())
    assert {id(p) for p in m.parameters()} == params
    torch.testing.assert_close(m(x), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
def test_conv_relu_on_cuda_matches_and_mixed_devices_get_torchs_error():
    """On CUDA the layer is ``relu(conv(x))``; a CPU input to CUDA weights must get PyTorch's own
    device-mismatch error, not the CPU-only fused op's NotImplementedError."""
    from cnnlab.models.layers import Conv2dReLU
    torch.manual_seed(0)
    layer = Conv2dReLU(3, 8, 3, padding=1)
    x = torch.randn(2, 3, 8, 8)
    ref = layer(x)
    layer.cuda()
    assert torch.allclose(layer(x.cuda()).cpu(), ref, atol=1e-4)  # TF32 convolutions on CUDA
    # PyTorch says 'Input type (torch.FloatTensor) and weight type (torch.cuda.FloatTensor) ...'
    with pytest.raises(RuntimeError, match="weight type|device"):
        layer(x)


def test_conv2d_relu_falls_back_where_onednn_has_no_bf16_convolution(monkeypatch):
    """On an AVX2-only CPU oneDNN's bf16 convolution raises ("needs avx512bw, avx512vl and
    avx512dq"): ``--precision bf16`` there takes PyTorch's own conv + ReLU instead of crashing."""
    from cnnlab.models import layers
    monkeypatch.setattr(layers, "_ONEDNN_BF16", False)
    called = []
    monkeypatch.setattr(layers._ConvReLUFunction, "apply", lambda *a: called.append(a))
    conv = layers.Conv2dReLU(3, 8, 3, padding=1)
    x = torch.randn(2, 3, 8, 8)
    with torch.autocast("cpu", torch.bfloat16):
        y = conv(x)
    assert y.dtype == torch.bfloat16 and not called and (y >= 0).all()
    conv(x)  # fp32 still takes the fused path where oneDNN is there
    assert len(called) == int(layers._FUSED_CONV_RELU)


def test_model_options_are_checked_with_close_matches():
    from cnnlab.models.base import model_options
    assert model_options("mnist-cnn-small") == ["dropout1", "dropout2"]
    assert model_options("resnet20") == ["drop_path_rate", "shortcut"]  # depth is the name's, not an option
    assert model_options("vgg16-cifar") == ["dropout", "hidden", "pool"]
    with pytest.raises(ValueError, match="'iris-conv1d' has no option 'width' \\(its options: none\\)"):
        create_model("iris-conv1d", width=3)
    with pytest.raises(ValueError, match="no option 'shortcutt'; did you mean 'shortcut'"):
        create_model("resnet20", shortcutt="B")
    assert create_model("vgg16-cifar", hidden=64).classifier[0].out_features == 64


def test_drop_path_zeroes_whole_samples_in_training_only():
    from cnnlab.models.layers import DropPath
    torch.manual_seed(0)
    dp = DropPath(0.25)
    x = torch.ones(4000, 3, 2, 2).to(memory_format=torch.channels_last)
    y = dp(x)
    per_sample = y.flatten(1)
    assert ((per_sample == 0).all(1) | (per_sample == 1 / 0.75).all(1)).all()  # whole samples
    assert abs((per_sample[:, 0] == 0).float().mean().item() - 0.25) < 0.03
    assert y.is_contiguous(memory_format=torch.channels_last)
    assert dp.eval()(x) is x
    with pytest.raises(ValueError, match=r"drop-path probability must be in \[0, 1\), got 1"):
        DropPath(1.0)


def test_cifar_resnet_stochastic_depth_follows_the_linear_rule_and_keeps_the_state_dict():
    """Huang et al. 2016's linear decay: block i of 3n drops with drop_path_rate * i / (3n - 1)."""
    m = create_model("resnet56", drop_path_rate=0.1)
    rates = [getattr(b.drop_path, "p", 0.0) for layer in (m.layer1, m.layer2, m.layer3) for b in layer]
    assert len(rates) == 27 and rates[0] == 0.0 and rates[-1] == pytest.approx(0.1)
    assert rates == pytest.approx([0.1 * i / 26 for i in range(27)])
    plain = create_model("resnet56")
    assert m.state_dict().keys() == plain.state_dict().keys()
    m.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(m.eval()(x), plain.eval()(x))  # eval: the same network
    with pytest.raises(ValueError, match=r"drop_path_rate must be in \[0, 1\), got 1.5"):
        create_model("resnet20", drop_path_rate=1.5)


def test_summary_builds_its_example_where_the_model_is():
    """A model on another device (here 'meta', where a GPU would be) gets its example there: the
    summary used to build it on the CPU and fail for a CUDA model."""
    from cnnlab.report.summary import summary_rows
    on_cpu = summary_rows(create_model("lenet5"))
    assert summary_rows(create_model("lenet5").to("meta")) == on_cpu


def test_input_size_in_summary_and_create_model():
    """summary takes (C, H, W) or (H, W) (the model's channels) and builds a named model for that
    size; create_model takes (H, W) only and says so."""
    import cnnlab
    first = cnnlab.summary("mnist-cnn-small", input_size=(32, 32)).splitlines()[0]
    assert first == 'Model: "mnist-cnn-small"  (input NCHW: (None, 1, 32, 32))'
    assert cnnlab.summary("mnist-cnn-small", input_size=(1, 32, 32)) == cnnlab.summary("mnist-cnn-small", (32, 32))
    assert "(None, 64, 16, 16)" in cnnlab.summary("mnist-cnn-small", (32, 32))  # after the 2x2 pool
    assert "(None, 16, 64, 64)" in cnnlab.summary(create_model("resnet20"), (64, 64))  # a model: its 3 channels
    with pytest.raises(ValueError, match=r"input_size of 'lenet5' is \(height, width\), without the "
                                         r"channels \(in_chans\); got \(1, 32, 32\)"):
        create_model("lenet5", input_size=(1, 32, 32))


def test_summary_counts_a_shared_weight_once():
    from cnnlab.report.summary import summary_rows
    a, b = torch.nn.Linear(4, 4, bias=False), torch.nn.Linear(4, 4, bias=False)
    b.weight = a.weight  # tied, as in weight-tied language models
    _, trainable, frozen = summary_rows(torch.nn.Sequential(a, torch.nn.ReLU(), b), (4,))
    assert (trainable, frozen) == (16, 0)


@pytest.mark.parametrize("name, least", [("mnist-cnn-small", 2), ("mnist-cnn-torch", 6), ("mnist-cnn-wide", 4),
                                         ("fashion-cnn-bn", 4), ("cifar10-cnn-bn", 4),
                                         ("cifar10-cnn-3block", 8), ("mnist-cnn-2m", 4),
                                         ("mnist-cnn-bn-403k", 13)])
def test_flatten_models_refuse_sizes_their_maps_vanish_at(name, least):
    """Built for another size, a Flatten model sizes its dense layer from the maps: below the
    least size they vanish (a Linear of 0 inputs, or of -1 x -1 = 1 map for mnist-cnn-torch at 3x3)."""
    info = MODELS.get(name).info
    m = create_model(name, input_size=(least, least)).eval()
    assert m(torch.randn(1, info.input_size[0], least, least)).shape == (1, 10)
    with pytest.raises(ValueError, match=rf"model '{name}' needs inputs of at least {least}x{least}; "
                                         rf"got {least - 1}x{least - 1}"):
        create_model(name, input_size=(least - 1, least - 1))


def test_airbench_whitening_bias_starts_at_zero():
    # airbench's Conv.reset_parameters zeroes every conv bias, the whitening layer's included
    assert torch.count_nonzero(create_model("airbench94").features.whiten.bias) == 0
