"""A trained run as an ONNX file, for inference without cnnlab or PyTorch.

    cnnlab export RUN_DIR [--out model.onnx] [--weights best|last]

The file takes what the run's dataset holds -- uint8 pixels ``(N, C, H, W)`` (0-255), or float32
signals ``(N, C, L)`` for 1-D datasets -- and does the run's normalisation itself, so a user feeds
decoded images as they are; it returns float32 logits ``(N, K)`` (one logit per image for a
single-sigmoid two-class run), without the recipe's test-time augmentation (``tta``: average
the logits of mirrored copies yourself where the recipe has it). The batch size is free. The
file's metadata (``metadata_props``) holds what ``cnnlab predict`` does around the graph:
``cnnlab.classes`` (JSON list), ``cnnlab.output`` (softmax or sigmoid, in words),
``cnnlab.resize`` (JSON: ``size``, ``policy``, ``color`` -- grayscale, rgb, rgba or null where
files cannot give the run's channels -- and ``resample``, as :mod:`cnnlab.inference` decodes
image files; images only), ``cnnlab.tta`` (the recipe's, in words) and ``cnnlab.normalisation``
(JSON, applied by the graph); and ``cnnlab.recipe``, ``cnnlab.model``, ``cnnlab.weights``,
``cnnlab.input``. Exported with PyTorch's
``torch.export``-based ONNX exporter, then checked: onnxruntime's logits on a random batch must
match PyTorch's (float32, eval mode).

Needs the ``onnx`` extra: ``pip install 'cnnlab[onnx]'`` (onnx, onnxscript, onnxruntime).
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import warnings
from pathlib import Path

import torch

from ._io import atomic_write
from .data.images import RESAMPLE
from .inference import COLOUR_MODES, WithNormalisation, _resize_policy, check_finite_logits
from .runs import load_run, run_meta

ONNX_EXTRA = ("cnnlab export needs the onnx extra: pip install 'cnnlab[onnx]' (in a source checkout: "
              "pip install -e '.[onnx]'; onnx, onnxscript, onnxruntime)")


TTA_VIEWS = {  # the recipe's test-time augmentation (cnnlab.training.tta_logits), for cnnlab.tta
    "none": "none",
    "flip": "flip: not applied by this graph; cnnlab predict averages the logits of the pixels and of their "
            "horizontal mirror (flipped along W)",
    "flip-shift": "flip-shift: not applied by this graph; cnnlab predict takes half the flip logits (the mean of "
                  "the pixels' and their horizontal mirror's) plus a quarter each of the flip logits of the "
                  "pixels moved one pixel down-right and one pixel up-left (reflect padding)"}


class ExportCheckError(RuntimeError):
    """onnxruntime's logits on the exported file differ from PyTorch's (:func:`export_onnx`)."""


def export_onnx(run_dir: str | os.PathLike, out: str | os.PathLike | None = None, *,
                weights: str = "best", check: bool = True) -> dict:
    """Write a run's model, with its normalisation, as an ONNX file (module docstring).

    Args:
        run_dir: a run folder (``cnnlab train`` wrote it).
        out: the file to write, or a folder to write ``model.onnx`` in (an existing one, or a
            path ending in ``/``, created as needed; default:
            ``RUN_DIR/model.onnx``); written atomically, and a ``*.unchecked.onnx`` beside it, left
            by a failed check, removed once this export passes its check.
        weights: ``"best"`` or ``"last"`` checkpoint.
        check: run the file with onnxruntime on a random batch of 3 and compare with PyTorch.

    Returns:
        ``{"file", "input", "output", "classes", "max_abs_diff"}``: the path, the input and output
        names with their dtypes and shapes, the class names, and the largest difference between
        onnxruntime's and PyTorch's logits (None without ``check``).

    Raises:
        FileNotFoundError: not a run folder, or no such weights.
        ModuleNotFoundError: the onnx extra is not installed (the message says how to install it).
        ValueError: weights whose logits are NaN or inf (nothing is written).
        ExportCheckError: onnxruntime cannot run the file, or its logits differ from PyTorch's by
            more than 1e-3; ``out``
            is left as it was, the file is written beside it (``*.unchecked.onnx``) to inspect.
    """
    try:
        import onnx
        import onnxscript  # noqa: F401  (what torch.onnx's exporter needs)
        if check:
            import onnxruntime as ort
    except ModuleNotFoundError:
        raise ModuleNotFoundError(ONNX_EXTRA) from None
    folder = out is not None and str(out).endswith(("/", os.sep))  # Path() drops the slash: a new folder
    out = Path(out) if out is not None else Path(run_dir) / "model.onnx"
    if folder or out.is_dir():  # a folder: model.onnx in it (the result's "file" says so)
        out = out / "model.onnx"
    run = load_run(run_dir, weights, device="cpu", records=False)
    meta = run_meta(run_dir)["dataset"]
    shape = tuple(meta["image_shape"])
    images = len(shape) == 3
    net = WithNormalisation(run.model, meta["mean"], meta["std"], images).eval()
    g = torch.Generator().manual_seed(0)
    x = (torch.randint(0, 256, (3, *shape), generator=g, dtype=torch.uint8) if images
         else torch.randn(3, *shape, generator=g))
    with torch.no_grad():
        expected = net(x)
    check_finite_logits(expected, run_dir, weights, "nothing exported", on=" on a random batch")
    # the exporter prints its progress and warns about torchvision ops; the result is checked below
    quiet = logging.getLogger("torch.onnx")
    level, quiet.level = quiet.level, logging.ERROR
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(net, (x,), dynamo=True, verbose=False,
                                        input_names=["pixels" if images else "signals"],
                                        output_names=["logits"],
                                        dynamic_shapes=({0: torch.export.Dim("batch")},))
    finally:
        quiet.setLevel(level)
    model = program.model_proto
    k = expected.shape[1]
    props = {
        "cnnlab.classes": json.dumps(meta["classes"]), "cnnlab.recipe": run.recipe.name,
        "cnnlab.model": run.recipe.model, "cnnlab.weights": f"{weights}.safetensors",
        "cnnlab.input": "uint8 pixels 0-255, NCHW" if images else "float32 signals (N, C, L)",
        "cnnlab.normalisation": json.dumps({"mean": meta["mean"], "std": meta["std"]}),
        "cnnlab.output": (f"logits (N, {k}), softmax for probabilities" if k > 1 else
                          "one sigmoid logit (N, 1): P(classes[1]) = sigmoid(logit), P(classes[0]) = 1 - that"),
        "cnnlab.tta": TTA_VIEWS[run.recipe.tta]}
    if images:
        props["cnnlab.resize"] = json.dumps({"size": list(shape[1:]), "policy": _resize_policy(meta),
                                             "color": COLOUR_MODES.get(shape[0]),
                                             "resample": RESAMPLE})
    onnx.helper.set_model_props(model, props)
    data = model.SerializeToString()
    out.parent.mkdir(parents=True, exist_ok=True)
    diff, kept = None, out.with_suffix(".unchecked.onnx")
    if check:  # before writing: a file that fails its check does not replace a good one
        try:
            session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
            got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
        except Exception as e:  # onnxruntime's own errors (InvalidGraph, Fail, ...) are Exceptions
            atomic_write(kept, lambda f: f.write(data), mode="wb")
            raise ExportCheckError(f"{out}: onnxruntime cannot run the exported model ({type(e).__name__}: "
                                   f"{e}); not written, the file is in {kept} to inspect") from e
        diff = float((torch.from_numpy(got) - expected).abs().max())
        if not diff <= 1e-3:
            atomic_write(kept, lambda f: f.write(data), mode="wb")
            raise ExportCheckError(f"{out}: onnxruntime's logits differ from PyTorch's by {diff:.3g} "
                                   f"(more than 1e-3); not written, the file is in {kept} to inspect")
    atomic_write(out, lambda f: f.write(data), mode="wb")
    if check:
        kept.unlink(missing_ok=True)  # a failed check's file, now stale: this export passed its check
    name_in = "pixels" if images else "signals"
    dims = ", ".join(map(str, shape))
    return {"file": str(out), "input": f"{name_in}: {'uint8' if images else 'float32'} (N, {dims})",
            "output": f"logits: float32 (N, {expected.shape[1]})", "classes": meta["classes"],
            "max_abs_diff": diff}
