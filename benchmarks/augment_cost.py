"""Cost of batch augmentation relative to one training step, for the seed CNNs.

    python benchmarks/augment_cost.py [--repeats 15] [--device cpu]

For each case, a training step (forward, cross-entropy, backward, Adam step; cnnlab's default
precision for the device -- bf16 autocast + channels_last where bf16 is native) and the
augmentation of one batch with the seed's settings are timed *interleaved*, so load from other
processes hits both alike; the medians over repeats give the ratio augmentation / step. The target
(issue: "augmentation ... at a measured cost below 10% of a training step") is ratio < 0.10.
Writes benchmarks/AUGMENT_COST.md (machine, versions, date included).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F

import cnnlab
from cnnlab.registry import UnknownNameError
from cnnlab.data.augment import build_augment
from cnnlab.device import autocast, describe_machine, resolve_device, resolve_precision
from cnnlab.recipes import AugmentConfig
from cnnlab.training.mix import BatchMix

HERE = Path(__file__).resolve().parent

# (model, batch, input (C, H, W), augmentation, where the settings come from)
CASES = [
    ("mnist-cnn-small", 128, (1, 28, 28),
     AugmentConfig(rotation=10, width_shift=0.1, height_shift=0.1, shear=0.2, zoom=0.1,
                   fill_mode="nearest", noise_std=0.05),
     "seed 002 ImageDataGenerator (shear 0.2 read as degrees, as Keras 2 does)"),
    ("mnist-cnn-bn-403k", 128, (1, 28, 28),
     AugmentConfig(rotation=10, width_shift=0.1, height_shift=0.1, shear=0.2, zoom=0.1,
                   fill_mode="nearest", noise_std=0.05),
     "seed 002, on the model seed 002 trains (batch not given in the seed: 128)"),
    ("mnist-cnn-bn-403k", 128, (1, 28, 28),
     AugmentConfig(rotation=10, width_shift=0.1, height_shift=0.1, zoom=0.1, fill_mode="nearest",
                   elastic_alpha=36, elastic_sigma=6),
     "affine + elastic distortion (Ciresan et al. 2010's alpha 36, sigma 6 px; no recipe uses it)"),
    ("cifar10-cnn-3block", 64, (3, 32, 32),
     AugmentConfig(crop_padding=4, horizontal_flip=True, cutout=8),
     "CIFAR practice: crop after 4 px padding, flip, cutout 8"),
    # MixUp / CutMix run in the training loop on the normalized batch (after the augmentation
    # above); their second cross-entropy is part of the step and not counted here
    ("mnist-cnn-bn-403k", 128, (1, 28, 28), BatchMix(cutmix_alpha=1.0),
     "CutMix (Yun et al. 2019's alpha 1), every batch"),
    ("cifar10-cnn-3block", 64, (3, 32, 32), BatchMix(mixup_alpha=0.2, cutmix_alpha=1.0),
     "MixUp 0.2 or CutMix 1.0 with even odds (timm's switch), every batch"),
]


def _sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def measure(name, batch, shape, cfg, dev, precision, repeats, steps=4, augs=20):
    """Median seconds of one training step and of one batch augmentation, timed interleaved."""
    channels_last = precision == "bf16"
    model = cnnlab.create_model(name).to(dev)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (batch, *shape), generator=g).float().to(dev)
    x = (pixels / 255 - 0.5) / 0.25
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,), generator=g).to(dev)
    if isinstance(cfg, BatchMix):  # mixes the normalized batch with its labels, as Trainer does
        augment = cfg
        def augment_once():
            return cfg(x, y)
    else:
        augment = build_augment(cfg)
        def augment_once():
            return augment(pixels, g)

    def step():
        with autocast(dev, precision):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def timed(fn, n):
        _sync(dev)
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        _sync(dev)
        return (time.perf_counter() - t0) / n

    timed(step, 3), timed(augment_once, 5)  # warm-up: allocator, kernels, Adam state
    step_t, aug_t = [], []
    for _ in range(repeats):
        step_t.append(timed(step, steps))
        aug_t.append(timed(augment_once, augs))
    return statistics.median(step_t), statistics.median(aug_t), augment


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=str(HERE / "AUGMENT_COST.md"))
    a = ap.parse_args()
    dev = resolve_device(a.device)
    precision = resolve_precision("auto", dev)
    rows = []
    for name, batch, shape, cfg, source in CASES:
        try:
            step_s, aug_s, augment = measure(name, batch, shape, cfg, dev, precision, a.repeats)
        except UnknownNameError as e:  # a model not (yet) in the registry
            print(f"skipping {name}: {e}")
            continue
        ratio = aug_s / step_s
        print(f"{name}: step {1e3 * step_s:.2f} ms, augment {1e3 * aug_s:.3f} ms, ratio {ratio:.1%}")
        rows.append(f"| {name} | {batch} | {'x'.join(map(str, shape))} | `{augment!r}` | {source} "
                    f"| {1e3 * step_s:.2f} | {1e3 * aug_s:.3f} | {100 * ratio:.1f}% "
                    f"| {'yes' if ratio < 0.10 else '**no**'} |")
    m = describe_machine()
    text = "\n".join([
        "# Batch augmentation cost vs one training step",
        "",
        "Written by `python benchmarks/augment_cost.py`. Target (issue): augmentation below 10% of "
        "a training step for the seed CNNs.",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores ({m['torch_threads']} torch threads)"
        + (f", GPU {m['gpu']}" if dev.type == "cuda" else "")
        + f"; device {dev}, precision {precision}{' + channels_last' if precision == 'bf16' else ''}; "
        f"torch {m['torch']}, Python {m['python']}; "
        f"{datetime.now(timezone.utc).isoformat(timespec='seconds')}; load average at the end "
        f"{os.getloadavg()[0]:.1f} (other jobs share the cores; short augmentation calls lose "
        "proportionally more to time-slicing than steps, so the ratio is pessimistic).",
        "",
        "Step = forward, cross-entropy, backward, Adam step on one batch. Augment = one call of "
        "`build_augment(cfg)` on the same batch (float32 pixels 0-255), or for `BatchMix` "
        "(MixUp / CutMix) one call on the normalized batch and its labels, as the training loop "
        "makes it (its second cross-entropy, part of the step, not counted). Times are medians over "
        f"{a.repeats} interleaved repeats (4 steps / 20 augmentations each) on a shared, noisy "
        "machine.",
        "",
        "| model | batch | input | augmentation | settings from | step (ms) | augment (ms) "
        "| augment / step | < 10% |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows, ""])
    Path(a.out).write_text(text)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
