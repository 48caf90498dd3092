"""Does test-time augmentation help a trained run? Checked on its validation split only.

    python benchmarks/val_tta.py RUN_DIR [RUN_DIR ...] [--views flip flip-shift shift] [--data-dir DIR]

For each run folder (``cnnlab train --out`` or ``cnnlab reproduce --keep-runs``) it loads the best
checkpoint, rebuilds the run's own seeded validation split and prints validation top-1 without
TTA and with each kind of views: ``flip`` and ``flip-shift`` (cnnlab's ``tta`` of those names:
the mirror image, and airbench's mirror image plus one-pixel shifts) and ``shift`` (each image and
its four one-pixel shifts, edges replicated: a candidate for digits, which must not be mirrored).
The test split is never read: this is how a recipe's ``tta`` is chosen (the decisions and their
figures are in the recipes' comments). One thread, so it can run beside a training job.
"""
import argparse
import os

import torch
import torch.nn.functional as F

from cnnlab.device import autocast, resolve_precision
from cnnlab.runs import _loaders, load_run
from cnnlab.training import tta_logits

KINDS = ("flip", "flip-shift", "shift")


def shift_views(x: torch.Tensor) -> list[torch.Tensor]:
    """The batch ``(N, C, H, W)`` and its four copies moved by one pixel, edges replicated."""
    h, w = x.shape[-2:]
    p = F.pad(x, (1, 1, 1, 1), mode="replicate")
    return [x] + [p[..., 1 + dy:1 + dy + h, 1 + dx:1 + dx + w].contiguous(memory_format=torch.channels_last)
                  for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1))]


@torch.no_grad()
def top1(model, loader, precision: str, kind: str | None) -> float:
    """Validation top-1 (%) with the logits averaged over the views of ``kind`` (``None``: no TTA;
    ``flip`` and ``flip-shift``: :func:`cnnlab.training.tta_logits`; ``shift``: :func:`shift_views`)."""
    correct = total = 0
    for x, y in loader:
        with autocast(torch.device("cpu"), precision):
            if kind == "shift":
                logits = sum(model(v).float() for v in shift_views(x))
            else:
                logits = tta_logits(model, x, kind or "none")
        correct += int((logits.argmax(1) == y).sum())
        total += len(y)
    return 100.0 * correct / total


def check(run_dir, kinds=KINDS, data_dir=None) -> dict | None:
    """Validation top-1 (%) of a run folder's best checkpoint: ``{"none": ..., kind: ...}`` for each
    of ``kinds``; ``None`` when the run held out no validation split."""
    run = load_run(run_dir, "best", "cpu", data_dir, load_data=True)
    if run.recipe.val_fraction == 0:
        return None
    prec = resolve_precision(run.recipe.precision, torch.device("cpu"))
    cl = run.recipe.channels_last if run.recipe.channels_last is not None else prec == "bf16"
    _, val, _ = _loaders(run.recipe, run.dataset, torch.device("cpu"), cl)
    if cl:
        run.model.to(memory_format=torch.channels_last)
    return {k: top1(run.model, val, prec, None if k == "none" else k) for k in ("none", *kinds)}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--views", nargs="+", choices=KINDS, default=list(KINDS))
    ap.add_argument("--data-dir", default=os.environ.get("CNNLAB_DATA"))
    a = ap.parse_args()
    torch.set_num_threads(1)
    for rd in a.runs:
        acc = check(rd, a.views, a.data_dir)
        if acc is None:
            print(f"{rd}: no validation split (val_fraction 0): nothing to check on")
            continue
        print(f"{rd}: validation top-1 {acc['none']:.2f}%, "
              + ", ".join(f"{k} TTA {acc[k]:.2f}%" for k in a.views), flush=True)
