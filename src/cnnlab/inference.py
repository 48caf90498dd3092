"""Classify new images with a trained run: ``cnnlab predict RUN_DIR IMAGE|FOLDER ...``, and
score a folder of labelled ones: ``cnnlab evaluate RUN_DIR --folder DIR``.

Each image file is prepared as the run's training data was: decoded, converted to the run's
channels (grayscale, RGB or RGBA), resized to its input size (the run's resize policy where its dataset
recorded one, else squashed, as Keras' ``image_dataset_from_directory`` does) and normalised with
the run's mean and std. Nothing else is changed: MNIST-style runs saw white digits on black, so a
dark digit on white paper should be inverted first. The prediction uses the run's test-time
augmentation (its recipe's ``tta``) and, by default, its precision (bf16 where its recipe's
``auto`` gives it), as ``cnnlab evaluate`` does, so that both agree on the same files.
"""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from torch import nn

from .runs import load_run, run_meta

COLOUR_MODES = {1: "grayscale", 3: "rgb", 4: "rgba"}  # a run's image channels -> how files are decoded


class WithNormalisation(nn.Module):
    """``model`` behind the run's input normalisation: ``(x * scale + shift)`` with
    ``scale = 1 / (255 std)`` for uint8 pixels (``1 / std`` for float signals) and
    ``shift = -mean / std``, per channel, as :class:`cnnlab.data.loader.BatchLoader` does.
    Used by :func:`predict` and by the ONNX export (:mod:`cnnlab.export`).

    Input pixels ``(N, C, H, W)`` (uint8, or float in 0-255) or float32 signals ``(N, C, L)``;
    output the model's float32 logits."""

    def __init__(self, model: nn.Module, mean, std, images: bool):
        super().__init__()
        self.model = model
        shape = (1, -1, 1, 1) if images else (1, -1, 1)
        std_t = torch.tensor(std, dtype=torch.float32).view(shape)
        self.register_buffer("scale", 1.0 / ((255.0 if images else 1.0) * std_t))
        self.register_buffer("shift", -torch.tensor(mean, dtype=torch.float32).view(shape) / std_t)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw inputs (module docstring) -> logits float32 ``(N, K)``."""
        return self.model(x.float() * self.scale + self.shift).float()


def image_files(paths: Sequence[str | os.PathLike] | str | os.PathLike) -> list[Path]:
    """The files to classify: each path as given, a folder replaced by the image files in it and
    its sub-folders, symlinked ones too (by extension, sorted; hidden files and folders, such as
    ``.ipynb_checkpoints`` or macOS's ``._photo.jpg``, left out as training leaves them out; other
    files left out with a :class:`~cnnlab.data.images.DataSkipWarning`, as training says them).

    Raises:
        FileNotFoundError: a path does not exist, or a folder holds no image file.
    """
    import warnings

    from .data.images import IMAGE_EXTENSIONS, DataSkipWarning, walk_visible
    if isinstance(paths, (str, os.PathLike)):  # one path, not the characters of its name
        paths = [paths]
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            # symlinked sub-folders too, each once, as training reads them (rglob does not follow them)
            files = sorted(d / f for d, names in walk_visible(p) for f in names if (d / f).is_file())
            found = [f for f in files if f.suffix.lower() in IMAGE_EXTENSIONS]
            others = [f.relative_to(p).as_posix() for f in files if f.suffix.lower() not in IMAGE_EXTENSIONS]
            if others:
                warnings.warn(f"{p}: skipped {len(others)} file(s) that are not images by their "
                              f"extension: {', '.join(others[:3])}{' ...' if len(others) > 3 else ''}",
                              DataSkipWarning)  # its own line: a folder listed twice warns once
            if not found:
                raise FileNotFoundError(f"{p}: a folder without image files "
                                        f"({', '.join(sorted(IMAGE_EXTENSIONS))})")
            out += found
        elif not p.is_file():
            raise FileNotFoundError(f"{p}: no such image file")
        else:
            out.append(p)
    return out


def check_finite_logits(logits: torch.Tensor, run_dir: str | os.PathLike, weights: str, outcome: str,
                        on: str = "") -> None:
    """Refuse logits that hold NaN or inf (weights of a diverged run), as predict and export do.

    Raises:
        ValueError: naming the weights file, where the logits were computed (``on``) and the
            ``outcome`` (what was not done).
    """
    if not bool(torch.isfinite(logits).all()):
        raise ValueError(f"{Path(run_dir) / (weights + '.safetensors')}: the model's logits are NaN or inf"
                         f"{on} (weights of a diverged run?); {outcome}")


def _colour_mode(run_dir: str | os.PathLike, channels: int,
                 instead: str = "pass uint8 pixels (N, C, H, W)") -> str:
    """How image files are decoded for a run on ``channels``-channel images (:data:`COLOUR_MODES`).

    Raises:
        ValueError: ``channels`` is not 1, 3 or 4 (the message names the run and says what to do
            ``instead``).
    """
    if channels not in COLOUR_MODES:
        raise ValueError(f"{run_dir} takes {channels}-channel images; image files decode to grayscale/RGB/RGBA "
                         f"only: {instead}")
    return COLOUR_MODES[channels]


def _decode(data: bytes, size: tuple[int, int], colour: str, policy: str) -> np.ndarray:
    """:func:`cnnlab.data.images.decode_image`, with ``"rgba"`` as well: the RGB channels decoded
    as ``"rgb"``, the alpha (255 where the file has none) as a grayscale image, resized alike.

    Raises:
        Exception: whatever PIL raises for an undecodable file, as ``decode_image``.
    """
    from PIL import Image

    from .data.images import decode_image
    if colour != "rgba":
        return decode_image(data, size, colour, policy)
    rgb = decode_image(data, size, "rgb", policy)
    with Image.open(io.BytesIO(data)) as im:
        if "A" not in im.getbands() and "transparency" not in im.info:
            return np.concatenate([rgb, np.full_like(rgb[:, :, :1], 255)], axis=2)
        alpha = io.BytesIO()
        im.convert("RGBA").getchannel("A").save(alpha, "PNG")
    return np.concatenate([rgb, decode_image(alpha.getvalue(), size, "grayscale", policy)], axis=2)


def _resize_policy(meta: dict) -> str:
    """How a file of another size is brought to the run's input size (``meta``: recipe.json's
    ``dataset``): the policy its dataset recorded (:data:`cnnlab.data.images.RESIZE_POLICIES`),
    else ``"squash"``; also ``"squash"`` for ``"none"`` (the run's images all had its input size,
    a new one must get it too)."""
    policy = (meta.get("provenance", {}).get("resize") or {}).get("policy", "squash")
    return "squash" if policy == "none" else policy


def _preprocess(paths: Sequence[str | os.PathLike], meta: dict,
                unreadable: dict[int, str] | None = None, strict: frozenset = frozenset()) -> torch.Tensor:
    """uint8 ``(N, C, H, W)`` images from files, prepared like the run's dataset (module docstring).

    With ``unreadable`` (a dict), a file that is not a readable image is left out, its reason
    recorded there under its index in ``paths``, and one
    :class:`~cnnlab.data.images.DataSkipWarning` names them all, instead of an error; except the
    files in ``strict`` (named by the user), which must be readable.

    Raises:
        FileNotFoundError: a file does not exist.
        ValueError: a file is not a readable image (the message names it), without ``unreadable``;
            with it, no file was readable.
        KeyError: a run on images whose channels are not in :data:`COLOUR_MODES` (check with
            :func:`_colour_mode` first).
    """
    from .data.images import decode_error
    c, h, w = meta["image_shape"]
    colour = COLOUR_MODES[c]
    policy = _resize_policy(meta)
    out = []
    for p in map(Path, paths):
        if not p.is_file():
            raise FileNotFoundError(f"{p}: no such image file")
        data = p.read_bytes()
        try:
            a = _decode(data, (h, w), colour, policy)
        except Exception as e:  # PIL raises OSError (truncated), UnidentifiedImageError, ...
            why = decode_error(e) if data else "empty file, 0 bytes"  # training's words
            if unreadable is None or p in strict:
                raise ValueError(f"{p}: not a readable image ({why})") from None
            unreadable[len(out) + len(unreadable)] = why
            continue
        out.append(torch.from_numpy(a.copy()).permute(2, 0, 1))  # PIL's array is read-only
    if not out:
        raise ValueError("no image files given" if not paths else
                         f"no readable image among {len(paths)} file(s), e.g. {paths[0]}: "
                         f"{next(iter(unreadable.values()))}")
    if unreadable:
        import warnings

        from .data.images import DataSkipWarning
        warnings.warn(f"skipped {len(unreadable)} file(s) that are not readable images: "
                      + "; ".join(f"{paths[i]} ({why})" for i, why in unreadable.items()),
                      DataSkipWarning, stacklevel=3)
    return torch.stack(out)


def predict(run_dir: str | os.PathLike,
            images: Sequence[str | os.PathLike] | str | os.PathLike | torch.Tensor | np.ndarray, *,
            weights: str = "best", top_k: int = 5, device: str | None = None,
            skip_unreadable: bool = False, precision: str | None = None
            ) -> list[list[tuple[str, float]] | None]:
    """The ``top_k`` most probable classes for each image, by a trained run's model.

    Args:
        run_dir: a run folder (``cnnlab train`` wrote it).
        images: image files (JPEG, PNG, ...) or folders of them (:func:`image_files`; one path
            alone as well), or uint8 ``(N, C, H, W)`` pixels (0-255; a tensor or a numpy array)
            of the run's input size, as its dataset holds them.
        weights: ``"best"`` or ``"last"`` checkpoint.
        top_k: classes per image (at most the number of classes).
        device: where to run the model (default: a GPU if there is one).
        skip_unreadable: a file found in a folder of ``images`` that is not a readable image
            gets ``None`` (and a :class:`~cnnlab.data.images.DataSkipWarning` naming it) instead
            of an error, as training skips such files; files named on their own must be readable.
        precision: ``"fp32"``, ``"bf16"`` or ``"auto"``; default: the run's recipe's, as
            ``cnnlab evaluate``.

    Returns:
        For each image (each file of :func:`image_files`), ``[(class name, probability 0-1), ...]``
        in decreasing probability (softmax of the logits; sigmoid for a single-logit two-class
        model); ``None`` for a file skipped by ``skip_unreadable``. No pixels ``(0, C, H, W)``:
        an empty list.

    Raises:
        FileNotFoundError: not a run folder, no such weights, no such image file, or a folder
            without images.
        ValueError: an unreadable image file; pixels of the wrong shape or dtype; a run on 1-D
            signals (e.g. iris), which has no images to read, or image files for a run on images
            of other than 1, 3 or 4 (RGBA) channels; ``top_k`` < 1; an unknown ``precision``;
            weights whose logits are NaN or inf.
        TypeError: ``images`` neither paths nor pixels (e.g. a PIL image).
    """
    return _predict(run_dir, images, weights, top_k, device, skip_unreadable, precision)[1]


def _paths(images) -> list:
    """``images``, one path or several, as a list of paths.

    Raises:
        TypeError: neither a path nor an iterable of paths (a PIL image, a list of them, bytes, ...).
    """
    if isinstance(images, (str, os.PathLike)):
        return [images]
    iterable = isinstance(images, Iterable) and not isinstance(images, (bytes, bytearray))
    named = list(images) if iterable else []
    bad = [type(p).__name__ for p in named if not isinstance(p, (str, os.PathLike))]
    if not iterable or bad:
        raise TypeError("images: image file paths/folders or uint8 (N, C, H, W) pixels, got "
                        + (f"{type(images).__name__} holding {bad[0]}" if bad else type(images).__name__))
    return named


def _predict(run_dir, images, weights: str, top_k: int, device, skip_unreadable: bool,
             precision: str | None) -> tuple[list[Path] | None, list]:
    """:func:`predict`, with the files it read (None for pixels), in the order of its results."""
    from .device import autocast, resolve_precision
    from .report.confidence import log_probabilities
    from .training import predicted_labels, tta_logits
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    run = load_run(run_dir, weights, device, records=False)
    meta = run_meta(run_dir)["dataset"]
    shape = tuple(meta["image_shape"])
    if len(shape) != 3:
        raise ValueError(f"{run_dir} was trained on {meta['name']}, 1-D signals of shape {shape}, "
                         "not images: predict takes image files")
    unreadable, files = None, None  # index -> reason, of the files skip_unreadable leaves out
    if isinstance(images, (torch.Tensor, np.ndarray)):
        if images.dtype not in (torch.uint8, np.uint8) or images.ndim != 4 or tuple(images.shape[1:]) != shape:
            raise ValueError(f"pixels must be uint8 (N, {', '.join(map(str, shape))}) for this run, "
                             f"got {images.dtype} {tuple(images.shape)}")
        # a numpy view's negative strides (a flipped array) need a copy
        x = images if isinstance(images, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(images))
    else:
        named = _paths(images)
        _colour_mode(run_dir, shape[0])
        files, unreadable = image_files(named), ({} if skip_unreadable else None)
        x = _preprocess(files, meta, unreadable, frozenset(Path(f) for f in named if not Path(f).is_dir()))
    dev = next(run.model.parameters()).device
    prec = resolve_precision(precision or run.recipe.precision, dev)
    if not len(x):  # pixels (0, C, H, W): no image, no result
        return files, []
    net = WithNormalisation(run.model, meta["mean"], meta["std"], images=True).to(dev).eval()
    # float pixels: flips and reflect-padded shifts commute with the per-channel normalisation;
    # in batches of the recipe's evaluation size, so that a folder of photos fits in memory
    bs = run.recipe.eval_batch_size
    with torch.no_grad(), autocast(dev, prec):
        logits = torch.cat([tta_logits(net, x[i:i + bs].to(dev).float(), run.recipe.tta).float()
                            for i in range(0, len(x), bs)])
    check_finite_logits(logits, run_dir, weights, "no prediction")
    classes = meta["classes"]
    # softmax, or (1 - p, p) for one sigmoid output; a stable sort of float64 logs ranks ties and
    # saturated probabilities as the metrics' predicted_labels does (the first largest logit)
    logp = log_probabilities(logits.cpu())
    order = logp.argsort(dim=1, descending=True, stable=True)
    if logits.shape[1] == 1:  # below |logit| ~1e-16 both logs are equal: the metrics' class first
        pred = predicted_labels(logits.cpu())
        order = torch.stack([pred, 1 - pred], 1)
    order = order[:, :min(top_k, logp.shape[1])]
    probs = logp.gather(1, order).exp().float()  # float32, the logits' own precision
    out = [[(classes[i], float(p)) for p, i in zip(ps.tolist(), idx.tolist())]
           for ps, idx in zip(probs, order)]
    for i in sorted(unreadable or {}):  # None where a file was skipped, so that out[i] is file i's
        out.insert(i, None)
    return files, out


def evaluate_folder(run_dir: str | os.PathLike, folder: str | os.PathLike, *, weights: str = "best",
                    device: str | None = None, precision: str | None = None) -> dict:
    """A run's model on a folder of labelled images, one sub-folder per class named as the run's
    classes (a subset is fine): the test metrics of :func:`cnnlab.runs.evaluate_model` (loss,
    top-1, per-class accuracy, confusion matrix), each file prepared as :func:`predict` does, with
    the run's test-time augmentation. ``cnnlab evaluate RUN_DIR --folder DIR``.

    Returns:
        The metrics dict, with ``folder`` and ``files`` (the images read) added.

    Raises:
        FileNotFoundError: not a run folder, or no such folder.
        ValueError: a sub-folder that is not one of the run's classes (with close matches), no
            class sub-folders, no readable image (files that are not readable images are skipped
            with a :class:`~cnnlab.data.images.DataSkipWarning`); a run on 1-D signals or on images
            of other than 1, 3 or 4 (RGBA) channels.
    """
    from .data.loader import BatchLoader
    from .device import resolve_precision
    from .registry import did_you_mean
    from .runs import _binary, evaluate_model
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    run = load_run(run_dir, weights, device, records=False)
    meta = run_meta(run_dir)["dataset"]
    if len(meta["image_shape"]) != 3:
        raise ValueError(f"{run_dir} was trained on {meta['name']}, 1-D signals, not images")
    _colour_mode(run_dir, meta["image_shape"][0], "evaluate pixels with cnnlab.evaluate(RUN_DIR, dataset=...)")
    classes = meta["classes"]
    subs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not subs:
        raise ValueError(f"{root}: no class sub-folders (one per class, named as the run's: "
                         f"{', '.join(classes)})")
    files, labels = [], []
    for d in subs:
        if d.name not in classes:
            raise ValueError(f"{d}: {d.name!r} is not a class of this run{did_you_mean(d.name, classes)} "
                             f"(its classes: {', '.join(classes)})")
        found = image_files([d])
        files += found
        labels += [classes.index(d.name)] * len(found)
    unreadable: dict[int, str] = {}  # skipped with a warning, as training skips them
    x = _preprocess(files, meta, unreadable)
    labels = [y for i, y in enumerate(labels) if i not in unreadable]
    dev = next(run.model.parameters()).device
    prec = resolve_precision(precision or run.recipe.precision, dev)
    loader = BatchLoader(x, torch.tensor(labels, dtype=torch.int64), run.recipe.eval_batch_size, mean=meta["mean"],
                         std=meta["std"], device=dev)
    out = evaluate_model(run.model, loader, run.recipe, prec, dev, _binary(run.model), classes)
    out.update({"weights": f"{weights}.safetensors", "precision": prec, "folder": str(root),
                "files": len(labels), "skipped": len(unreadable)})
    return out
