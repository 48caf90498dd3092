"""A look inside a trained network: Grad-CAM heatmaps, first-layer filters and feature maps.

    cnnlab explain RUN_DIR [--images 8] [--select random|worst|best] [--layer NAME]

* :func:`grad_cam` -- Gradient-weighted Class Activation Mapping (Selvaraju et al. 2017,
  "Grad-CAM: Visual Explanations from Deep Networks via Gradient-based Localization",
  arXiv:1610.02391): the feature maps ``A_k`` of a late convolutional layer, weighted by the mean
  gradient of the class's logit with respect to each map, summed, passed through ReLU and
  upsampled to the image: where in the image the evidence for the class lies.
* :func:`cam_layer` -- the layer Grad-CAM uses by default: the last activated map of at least 4x4
  positions, as the Keras Grad-CAM example takes "the last convolutional layer" (with its
  activation); the small seed CNNs end in 2x2 or 1x1 maps, too coarse to show.
* :func:`feature_maps` -- a layer's output for some images (forward hook).
* :func:`explain_run` -- the three pictures for a run folder: ``gradcam.png``, ``filters.png``
  and ``feature_maps.png`` (:mod:`cnnlab.report.plots`).

Everything runs in eval mode (dropout off, BatchNorm's running statistics) and in the model's
dtype (its first floating-point parameter's: float32, or bfloat16 or float64 for a model cast so);
the maps, heatmaps and logits returned are float32.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .registry import UnknownNameError, did_you_mean
from .models.base import eval_mode, param_dtype
from .training.loop import predicted_labels


def _module(model: nn.Module, name: str) -> nn.Module:
    """``model.get_submodule(name)``, or UnknownNameError naming the closest layer names."""
    names = [n for n, _ in model.named_modules() if n]
    if name not in names:
        raise UnknownNameError(f"no layer {name!r} in the model{did_you_mean(name, names)}"
                               " (`cnnlab summary MODEL` lists its layers)")
    return model.get_submodule(name)


def _on_model_device(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``x`` on the device of the model's parameters, in the dtype of its first floating-point one
    (float32 if none): a bfloat16 or float64 model refuses float32 input."""
    param = next(model.parameters(), None)
    return x.to(param.device if param is not None else x.device, param_dtype(model))


def _check_images(x: torch.Tensor) -> None:
    if x.dim() != 4:
        raise ValueError(f"explaining a model needs images (N, C, H, W); got a tensor of shape "
                         f"{tuple(x.shape)} (1-D signals such as iris have no spatial maps to show)")
    if not x.is_floating_point():
        raise ValueError(f"explaining a model needs its normalised float input; got {x.dtype} "
                         "pixels: run.normalize(pixels) prepares them as the run's training did")


@torch.no_grad()
def cam_layer(model: nn.Module, x: torch.Tensor, min_size: int = 4) -> str:
    """Name of Grad-CAM's default layer for ``model`` on images like ``x`` (float ``(N, C, H, W)``).

    It is the module whose forward pass *finishes* last among those returning an activated 4-D map
    (:func:`_after_activation`) of at least ``min_size`` x ``min_size`` positions: the output of
    the last convolutional stage, after its activation (a block or a ``Sequential`` that ends
    there counts as that output; a pooling layer counts only if it pools an activation's very
    output, so after conv -> ReLU -> BatchNorm -> pool it is the ReLU'd conv). Failing that, any
    layer with such a map, then any with at least 2 positions. Dropout and identity layers, no-ops
    in evaluation, are passed over, so the name is that of the layer that computed the maps. A map
    shrunk by unpadded convolutions (lenet5's) is placed a few pixels off by :func:`grad_cam`'s
    upsampling: see its docstring.

    Args:
        model: an image classifier; run once on ``x[:1]`` in eval mode (its mode is restored).
        x: float images ``(N, C, H, W)``, as the model takes them.
        min_size: the smallest height and width of the map to prefer.

    Raises:
        ValueError: ``x`` is not 4-D, no layer keeps a spatial map (e.g. an MLP), or every one
            that does runs more than once per forward pass.
    """
    _check_images(x)
    finished: list[tuple[str, int, int]] = []
    outputs: dict[str, torch.Tensor] = {}
    calls: dict[str, int] = {}
    activated: dict[str, bool] = {}
    act_out: list[torch.Tensor] = []  # the tensors activations computed, compared by identity

    def record(mod, inp, out, name):
        act = _after_activation(mod, inp, act_out)
        # leaves only: a block counts as activated (its layer inside is judged later), but its
        # output may be a BatchNorm's, which a pool after the block must not count as activated
        if act and torch.is_tensor(out) and not any(True for _ in mod.children()):
            act_out.append(out)
        if _passed_over(mod):
            return
        calls[name] = calls.get(name, 0) + 1
        if torch.is_tensor(out) and out.dim() == 4 and out.shape[-1] * out.shape[-2] > 1:
            finished.append((name, out.shape[-2], out.shape[-1]))
            outputs[name], activated[name] = out, act
    handles = [m.register_forward_hook(lambda mod, inp, out, name=name: record(mod, inp, out, name))
               for name, m in model.named_modules() if name]
    try:
        with eval_mode(model):
            model(_on_model_device(model, x[:1]))
    finally:
        for h in handles:
            h.remove()
    if not finished:
        raise ValueError(f"{type(model).__name__} has no layer with a spatial output (N, C, h, w): "
                         "Grad-CAM needs a convolutional network")
    modules = dict(model.named_modules())
    # a module run several times per pass (ResNet blocks' one ReLU) has no single map to name
    finished = [f for f in finished if calls[f[0]] == 1]
    if not finished:
        raise ValueError(f"every layer of {type(model).__name__} with a spatial output runs more than "
                         "once per forward pass: name one with layer=")
    large = [n for n, h, w in finished if min(h, w) >= min_size]
    for name in reversed(large):  # a block counts by the layer that computed its output
        leaf = _leaf_name(name, finished, outputs, modules)
        if activated[name] and activated[leaf]:
            return leaf
    if large:
        return _leaf_name(large[-1], finished, outputs, modules)
    return finished[-1][0]


def _leaf_name(name: str, finished, outputs, modules) -> str:
    """For a block whose output is the very tensor one of its layers computed (a Sequential
    ending in dropout or in that layer), that layer's name: the one ``cnnlab summary`` lists.
    ``finished`` holds only modules run once (a shared ReLU's last output is the block's, but
    hooking it by name would give its first)."""
    if not any(True for _ in modules[name].children()):
        return name
    same = [n for n, _, _ in finished if n.startswith(name + ".") and outputs[n] is outputs[name]
            and not any(True for _ in modules[n].children())]
    return same[-1] if same else name


def _one_output(outputs: list, layer: str):
    """The one output a hooked ``layer`` gave in a forward pass (ValueError for none, or for a
    module run several times in it: which of its outputs would be ambiguous)."""
    if len(outputs) > 1:
        block = layer.rpartition(".")[0]
        raise ValueError(f"layer {layer!r} runs {len(outputs)} times in one forward pass (one module "
                         f"used at several places, as a ResNet block's ReLU): name a layer that runs "
                         f"once{f', e.g. the block {block!r} for its output' if block else ''}")
    if not outputs or not torch.is_tensor(outputs[0]) or outputs[0].dim() != 4:
        raise ValueError(f"layer {layer!r} does not output feature maps (N, C, h, w)")
    return outputs[0]


def _passed_over(m: nn.Module) -> bool:
    """Dropout and identity layers: no-ops in evaluation, never named as Grad-CAM's layer."""
    return isinstance(m, nn.Identity) or "Dropout" in type(m).__name__


def _after_activation(m: nn.Module, inp: tuple, act_out: list) -> bool:
    """Whether ``m``'s output (for input ``inp``) is an activated map: an activation layer's, a
    fused conv + ReLU's, a block's (a module with sub-modules; :func:`cam_layer` then judges the
    layer inside that computed it), or a pooling or dropout layer's whose input is the very tensor
    (``is``: ids are reused) of one in ``act_out``, the outputs found activated so far. Raw
    convolution and BatchNorm outputs are not: they are signed, pre-activation values (with
    airbench94's ``block3.conv1`` as the layer, more of the CIFAR-10 maps came out blank than with
    ``block2``), and so is a pool after conv -> ReLU -> BatchNorm: BatchNorm's shift ``b_k`` adds
    ``sum_k alpha_k b_k`` to every position, which lit up the background."""
    from .models.layers import Conv2dReLU
    if (isinstance(m, Conv2dReLU) or any(True for _ in m.children())
            or type(m).__module__ == "torch.nn.modules.activation"):
        return True
    if type(m).__module__ == "torch.nn.modules.pooling" or _passed_over(m):
        return bool(inp) and any(inp[0] is t for t in act_out)
    return False


def feature_maps(model: nn.Module, x: torch.Tensor, layer: str) -> torch.Tensor:
    """The output of ``layer`` (a dotted module name) for images ``x`` float ``(N, C, H, W)``,
    as float32 ``(N, C', h, w)`` on the CPU, computed in eval mode without gradients.

    Raises:
        UnknownNameError: no such layer (the message suggests close names).
        ValueError: the layer's output is not a 4-D feature map, or the layer runs more than
            once per forward pass (a shared module).
    """
    _check_images(x)
    module = _module(model, layer)
    out: list[torch.Tensor] = []
    handle = module.register_forward_hook(  # a copy: a later in-place ReLU must not change it
        lambda m, i, o: out.append(o.detach().clone() if torch.is_tensor(o) else o))
    try:
        with eval_mode(model), torch.no_grad():
            model(_on_model_device(model, x))
    finally:
        handle.remove()
    return _one_output(out, layer).float().cpu()


def grad_cam(model: nn.Module, x: torch.Tensor, target: torch.Tensor | int | None = None,
             layer: str | None = None) -> tuple[torch.Tensor, torch.Tensor, str]:
    """Grad-CAM heatmaps (Selvaraju et al. 2017, arXiv:1610.02391).

    For each image, with ``A`` the layer's maps ``(K, h, w)`` and ``y`` the target class's logit:
    ``alpha_k = mean_ij dy/dA_kij`` and ``cam = ReLU(sum_k alpha_k A_k)``, upsampled bilinearly
    to ``(H, W)`` and divided by its maximum (an all-zero map stays zero: no positive evidence).

    Limitation: the upsampling stretches the map over the whole image, as the paper's code and
    pytorch-grad-cam do, which assumes its positions tile the input evenly. Where the layer's
    convolutions are unpadded they do not: lenet5's ``features.s4`` (5x5 from 28x28) sees rows
    ~3.5-23.5 of the image, so its heatmap lies up to ~3 px off, stretched outwards from the
    centre; a padded layer (``features.relu2`` of mnist-cnn-small, 14x14) is off by under 1 px.

    Args:
        model: an image classifier, float ``(N, C, H, W)`` -> logits ``(N, K)`` or ``(N, 1)``
            (one sigmoid output: the evidence for class 1 is the logit, for class 0 its negative).
        x: normalised float images ``(N, C, H, W)`` (``run.normalize(pixels)`` for uint8 pixels).
        target: int64 ``(N,)`` classes to explain, or one class index for all; default: the
            predicted ones.
        layer: dotted module name; default :func:`cam_layer`.

    Returns:
        ``(cam, logits, layer)``: float32 ``(N, H, W)`` heatmaps in [0, 1], the float32 logits,
        and the layer's name. Computed in eval mode, in the model's dtype (a bfloat16 or float64
        model gets ``x`` cast to it); the model's weights and mode are left as they were.

    Raises:
        UnknownNameError: ``layer`` names no module (close names suggested).
        ValueError: ``x`` is not 4-D float, the layer runs more than once per forward pass (a
            shared module), its output is not ``(N, C, h, w)`` or is 1x1, ``target`` has the wrong
            length, or, without ``layer``, the model has no default layer (:func:`cam_layer`).
    """
    _check_images(x)
    layer = layer or cam_layer(model, x)
    module = _module(model, layer)
    # requires_grad on the input, so that maps after frozen layers still get gradients
    x = _on_model_device(model, x.detach()).requires_grad_(True)
    maps: list[torch.Tensor] = []

    def keep(mod, inp, out):
        maps.append(out)
        if torch.is_tensor(out):  # later in-place ops (ReLU(inplace=True)) then leave ``out`` intact
            return out.clone()
    handle = module.register_forward_hook(keep)
    try:
        with eval_mode(model), torch.enable_grad():
            logits = model(x).float()
            _one_output(maps, layer)
            if maps[0].shape[-2:].numel() < 2:  # one position: a uniform map that says nothing
                raise ValueError(f"layer {layer!r} outputs 1x1 maps {tuple(maps[0].shape[1:])}: "
                                 "a heatmap of one position is uniform, so it cannot say where "
                                 f"the evidence lies; choose an earlier layer (default: "
                                 f"{cam_layer(model, x.detach())})")
            pred = predicted_labels(logits)
            if isinstance(target, int):
                target = torch.full_like(pred, target)
            target = pred if target is None else target.to(pred.device)
            if target.shape != pred.shape:
                raise ValueError(f"target has shape {tuple(target.shape)}; expected ({len(x)},)")
            if logits.shape[1] == 1:
                score = torch.where(target == 1, logits[:, 0], -logits[:, 0])
            else:
                score = logits.gather(1, target.view(-1, 1)).squeeze(1)
            (grads,) = torch.autograd.grad(score.sum(), maps[0])
    finally:
        handle.remove()
    a = maps[0].detach().float()
    weights = grads.float().mean((2, 3), keepdim=True)  # alpha_k: (N, K, 1, 1)
    cam = F.relu((weights * a).sum(1, keepdim=True))
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    peak = cam.flatten(1).amax(1).clamp_min(1e-12).view(-1, 1, 1)
    return (cam / peak).cpu(), logits.detach().cpu(), layer


def first_conv_weights(model: nn.Module) -> tuple[torch.Tensor, str]:
    """The first convolution's weights, float32 ``(out_channels, in_channels, kh, kw)``, and its
    name (from the model's ``info.first_conv``, else the first ``nn.Conv2d`` found).

    Raises:
        ValueError: the model has no 2-D convolution.
    """
    info = getattr(model, "info", None)
    name = getattr(info, "first_conv", None)
    conv = model.get_submodule(name) if name else None
    if not isinstance(conv, nn.Conv2d):
        name, conv = next(((n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)),
                          (None, None))
    if conv is None:
        raise ValueError(f"{type(model).__name__} has no 2-D convolution, so no filters to show")
    return conv.weight.detach().float().cpu(), name


MAX_IMAGES = 64  # explain_run's panels in one Grad-CAM grid


def explain_run(run_dir: str | os.PathLike, *, weights: str = "best", images: int = 8,
                select: str = "random", layer: str | None = None,
                out_dir: str | os.PathLike | None = None, data_dir=None, seed: int = 0,
                dataset=None, device: str | None = None) -> dict:
    """Write ``gradcam.png``, ``filters.png`` and ``feature_maps.png`` for a run folder's model.

    ``images`` test images (default 8) are shown with their true class, the prediction and its
    probability; Grad-CAM explains the predicted class. ``feature_maps.png`` shows the first
    image's maps at the first convolution and at the Grad-CAM layer.

    Args:
        weights: ``"best"`` or ``"last"`` checkpoint.
        select: which test images: ``"random"`` (a sample drawn with ``seed``), ``"worst"`` (the
            most confident wrong predictions: where is the model looking when it errs?) or
            ``"best"`` (the most confident correct ones); the last two evaluate the test split the run
            was tested on first, as ``cnnlab evaluate`` does but without test-time augmentation
            (the probabilities the panels show), in float32.
        layer: Grad-CAM's layer (dotted name, as ``cnnlab summary`` prints); default
            :func:`cam_layer`.
        out_dir: where the PNGs go (default: the run folder).
        data_dir, dataset: where the run's data are, or the ``ImageDataset`` itself for a run
            trained on one of your own (:func:`cnnlab.load_run`).
        device: where the model runs (default: a GPU if there is one); the PNGs are the same.

    Returns:
        ``{"gradcam": path, "filters": path, "feature_maps": path, "layer": name,
        "first_conv": name, "test_indices": [the images' indices in the test split]}``.

    Raises:
        FileNotFoundError: not a run folder, or its weights are missing.
        UnknownNameError: ``layer`` names no module.
        ValueError: the run's data are not images, ``images`` outside 1..64, an unknown ``select`` (before
            any work), a dataset that is not the run's (:func:`cnnlab.load_run`), or no test
            image fits ``select`` (``"worst"`` when every one is predicted correctly).
    """
    from .report.confidence import select_predictions
    from .report.plots import plot_feature_maps, plot_filters, plot_grad_cam
    from .runs import _evaluate_loaded, _tested, load_run

    if not 1 <= images <= MAX_IMAGES:  # one readable grid (5,000 made a 1280x21470 PNG)
        raise ValueError(f"images must be 1 to {MAX_IMAGES}, got {images}")
    if select not in ("random", "worst", "best"):
        raise ValueError(f"select must be random, worst or best, got {select!r}")
    run = load_run(run_dir, weights, device, data_dir, load_data=True, dataset=dataset)
    ds, model = _tested(run), run.model.float()  # the test split the run was tested on
    if ds.test_images.dim() != 4:
        raise ValueError(f"{run.recipe.dataset} holds 1-D signals {tuple(ds.test_images.shape[1:])}, "
                         "not images: there are no filters or heatmaps to show")
    logits = None
    if select != "random":  # the whole test split's predictions (as cnnlab evaluate), to rank them
        # without test-time augmentation: the logits the panels show (grad_cam's)
        logits = _evaluate_loaded(run, "fp32", keep_logits=True, tta="none")["logits"]
    idx = torch.tensor(select_predictions(ds.test_labels, logits, select, images, seed), dtype=torch.long)
    if len(idx) == 0:
        raise ValueError(f"no test image is predicted {'wrongly' if select == 'worst' else 'correctly'}: "
                         f"nothing to show with select={select!r}")
    pixels, labels = ds.test_images[idx], ds.test_labels[idx]
    x = run.normalize(pixels)  # with the mean and std the run recorded
    cam, cam_logits, layer = grad_cam(model, x, layer=layer)
    kernels, conv_name = first_conv_weights(model)
    out = Path(out_dir) if out_dir is not None else Path(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    title = f"{run.recipe.name} ({run.recipe.model}, {weights} weights)"
    paths = {"gradcam": out / "gradcam.png", "filters": out / "filters.png",
             "feature_maps": out / "feature_maps.png"}
    plot_grad_cam(pixels, labels, cam_logits, cam, ds.classes, paths["gradcam"],
                  title=f"{title}: Grad-CAM at {layer}, {select} test predictions")
    plot_filters(kernels, paths["filters"], title=f"{title}: first convolution {conv_name}")
    maps = [(name, feature_maps(model, x[:1], name)[0]) for name in (conv_name, layer)]
    plot_feature_maps(pixels[0], maps, paths["feature_maps"],
                      title=f"{title}: feature maps of test image {int(idx[0])} "
                            f"(true {ds.classes[int(labels[0])]})")
    return {**{k: str(v) for k, v in paths.items()}, "layer": layer, "first_conv": conv_name,
            "test_indices": idx.tolist()}
