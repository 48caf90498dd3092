"""Write benchmarks/RECIPES.md: every registered recipe in one table, with an estimated CPU time.

    python benchmarks/recipes_table.py          # rewrite benchmarks/RECIPES.md
    python benchmarks/recipes_table.py --check  # exit 1 if the file is out of date

The estimate is arithmetic, not a measurement of the run: training images per epoch divided by the
model's measured training throughput (below; 2-core CPU, bf16, channels_last, nothing else
running), plus batch augmentation, plus one validation pass per epoch and one test pass at
three times the training throughput (a forward pass is about a third of a training step).
Smaller batches than the one measured are charged ``(measured / batch) ** 0.25`` (per-step
overhead); larger ones get no credit. Early stopping is ignored (the estimate is an upper bound
for recipes that have it). Measured results, when a recipe has been run, are in RESULTS.md.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cnnlab.recipes import RECIPES, Recipe

HERE = Path(__file__).resolve().parent
OUT = HERE / "RECIPES.md"

# Training images/s at the batch given: cnnlab's own training step (``cnnlab.bench.CnnlabRunner``),
# bf16 autocast + channels_last, 2 torch threads on the 2-core Xeon of the development machine.
# mnist-cnn-small, mnist-cnn-wide, cifar10-cnn-3block and resnet20 were measured on the idle
# machine (resnet56: a third of resnet20). The others were measured with one thread while a
# benchmark shared the cores, and scaled by 1.6, the ratio of idle 2-thread to shared 1-thread
# throughput of the first four (1.45-2.2): rough, within about +-30%.
THROUGHPUT: dict[tuple[str, str], tuple[float, int]] = {
    ("mnist-cnn-small", "*"): (2300, 128),
    ("mnist-cnn-wide", "*"): (1200, 128),
    ("cifar10-cnn-3block", "*"): (1600, 64),
    ("resnet20", "*"): (1100, 128),
    ("resnet56", "*"): (370, 128),
    ("lenet5", "*"): (18000, 128),  # the full mnist-lenet5 run: 10 epochs of 48k in 24 s
    ("notmnist-mlp", "*"): (20000, 128),
    ("fashion-cnn-bn", "*"): (2300, 128),
    ("cifar10-cnn-bn", "*"): (1700, 128),
    ("alexnet-cifar", "*"): (776, 32),  # idle AMD EPYC, fused Adam (FUSED_OPTIMIZER.md): its 23M
                                        # parameters' update was a third of a step before
    ("zfnet-cifar", "*"): (470, 128),  # idle, LAYERS.md (after the faster LocalResponseNorm)
    ("mnist-cnn-bn-403k", "*"): (3000, 128),
    ("mnist-cnn-2m", "*"): (1750, 64),
    # mnist-cnn-torch at batch 64: epochs as long as mnist-cnn-small's at 128 in the same reproduce
    # runs on the AMD EPYC (median 23.3 s vs 24.0 s), so mnist-cnn-small's figure x 1.03
    ("mnist-cnn-torch", "*"): (2370, 64),
    ("airbench94", "cifar10"): (880, 512),
    ("airbench94", "*"): (1250, 256),  # 1x28x28: MNIST, Fashion-MNIST
    ("iris-conv1d", "*"): (5000, 32),  # per-step overhead only: 4 numbers per example
}
AUGMENT_S_PER_IMAGE = 10e-6  # crop/flip or affine on the CPU, measured 3-16 us per image

# Training split size (before the validation hold-out) and test split size
DATA = {"mnist": (60_000, 10_000), "fashion-mnist": (60_000, 10_000), "cifar10": (50_000, 10_000),
        "notmnist-small": (16_854, 1_870), "iris-teaching": (97, 23), "iris": (120, 30)}
DATASET_ORDER = list(DATA)
KIND_ORDER = {"faithful": 0, "fast": 1, "best": 2, "transfer": 3}


def throughput(r: Recipe) -> float:
    """Estimated training images/s for ``r``'s model, dataset and batch size."""
    tp, measured_batch = THROUGHPUT.get((r.model, r.dataset)) or THROUGHPUT[(r.model, "*")]
    return tp * min(1.0, (r.batch_size / measured_batch) ** 0.25)


def estimated_minutes(r: Recipe) -> float:
    """Wall minutes of ``r`` on the 2-core CPU, idle, from the throughput table."""
    n_train, n_test = DATA[r.dataset]
    n_val = round(n_train * r.val_fraction)
    tp = throughput(r)
    per_image = 1 / tp + (AUGMENT_S_PER_IMAGE if r.augment else 0.0)
    epoch_s = (n_train - n_val) * per_image + n_val / (3 * tp)
    return (r.epochs * epoch_s + n_test / (3 * tp)) / 60


def _num(x: float) -> str:
    return f"{x:g}"


def optimizer_text(r: Recipe) -> str:
    """``adamw 3e-3 wd 0.01; one-cycle; LS 0.1`` and the like."""
    opt = f"{r.optimizer} {_num(r.lr)}"
    if r.optimizer == "sgd":
        opt += f" m{_num(r.momentum)}" + (" nesterov" if r.nesterov else "")
    if r.weight_decay:
        opt += f" wd {_num(r.weight_decay)}" + (" (not on bias/BN)" if r.filter_bias_and_bn else "")
    if r.eps:
        opt += f" eps {_num(r.eps)}"
    parts = [opt]
    warm = f", warm-up {_num(r.warmup_epochs)} ep" if r.warmup_epochs else ""
    if r.schedule == "step":
        parts.append(f"step x{_num(r.gamma)} every {r.step_size} ep{warm}")
    elif r.schedule == "exponential":
        parts.append(f"x{_num(r.gamma)} per epoch{warm}")
    elif r.schedule == "cosine":
        parts.append(f"cosine{warm}")
    elif r.schedule == "onecycle":
        parts.append("one-cycle" + (f" ({_num(r.warmup_epochs)} ep up)" if r.warmup_epochs else ""))
    if r.label_smoothing:
        parts.append(f"LS {_num(r.label_smoothing)}")
    if r.ema_decay:
        parts.append(f"EMA {_num(r.ema_decay)}")
    if r.reduce_lr:
        c = r.reduce_lr
        parts.append(f"ReduceLROnPlateau({c.monitor}, x{_num(c.factor)}, patience {c.patience})")
    if r.early_stopping:
        c = r.early_stopping
        parts.append(f"EarlyStopping({c.monitor}, patience {c.patience})")
    return "; ".join(parts)


def augment_text(r: Recipe) -> str:
    """``crop 4, flip``, ``rot 10°, shift 0.1/0.1, zoom 0.1`` or ``—``."""
    a = r.augment
    tta = f"; test: {r.tta} TTA" if r.tta != "none" else ""
    if a is None:
        return "—" + tta
    parts = []
    if a.crop_padding:
        parts.append(f"crop {a.crop_padding}")
    if a.rotation:
        parts.append(f"rot {_num(a.rotation)}°")
    if a.width_shift or a.height_shift:
        parts.append(f"shift {_num(a.width_shift)}/{_num(a.height_shift)}")
    if a.shear:
        parts.append(f"shear {_num(a.shear)}°")
    if a.zoom:
        parts.append(f"zoom {_num(a.zoom)}")
    if a.horizontal_flip:
        parts.append("flip")
    if a.cutout:
        parts.append(f"cutout {a.cutout}")
    if a.noise_std:
        parts.append(f"noise {_num(a.noise_std)}")
    return ", ".join(parts) + tta


def _order(r: Recipe):
    base = r.name.removesuffix("-fast")
    return (DATASET_ORDER.index(r.dataset) if r.dataset in DATA else len(DATA),
            KIND_ORDER[r.kind] == 2, base, KIND_ORDER[r.kind])


def recipes_table(recipes=None) -> str:
    """The markdown of benchmarks/RECIPES.md for ``recipes`` (default: every registered one)."""
    recipes = sorted(recipes if recipes is not None else (RECIPES.get(n) for n in RECIPES), key=_order)
    all_train = ", ".join(f"`{r.name}`" for r in recipes if r.val_fraction == 0 and r.kind != "best")
    head = [
        "# Recipes",
        "",
        "Every registered recipe (`cnnlab list recipes`; run one with `cnnlab train NAME`). "
        "**faithful**: the seed experiment as written, Keras' defaults where the seed is silent "
        "(marked in the recipe file); **fast**: the same network with a better schedule and "
        "augmentation, aiming at the seed's accuracy in less time; **best**: one model per "
        "dataset, as accurate as we can make it. Expected: the test top-1 the source reports, or "
        "the issue's target where it reports none (AlexNet: the seed's figure is a validation "
        "accuracy; its fast recipe aims at 75%). Validation is a seeded, stratified hold-out of "
        "the training split; best recipes" + (f" and {all_train}" if all_train else "")
        + " train on all of it.",
        "",
        "Estimated minutes: 2-core CPU, bf16, nothing else running, from measured training "
        "throughputs (see `benchmarks/recipes_table.py`; roughly +-30%; early stopping ignored). "
        "Measured accuracies and times: `RESULTS.md` (`cnnlab reproduce NAME`). Regenerate this "
        "file with `python benchmarks/recipes_table.py`.",
        "",
        "| recipe | kind | source | model | dataset | epochs | batch | optimizer / schedule "
        "| augmentation | expected (%) | est. CPU min |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    rows = []
    for r in recipes:
        expected = f"{100 * r.expected_accuracy:.2f}" if r.expected_accuracy is not None else "—"
        est = f"{estimated_minutes(r):.0f}" if r.dataset in DATA else "?"
        if est == "0":
            est = "<1"
        rows.append(f"| `{r.name}` | {r.kind} | {r.source} | `{r.model}` | {r.dataset} | {r.epochs} "
                    f"| {r.batch_size} | {optimizer_text(r)} | {augment_text(r)} | {expected} | {est} |")
    tp = ["", "Throughputs used (training images/s at the batch given):", "",
          "| model | data | images/s | batch |", "|---|---|---|---|"]
    tp += [f"| `{m}` | {d if d != '*' else 'any'} | {v:g} | {b} |" for (m, d), (v, b) in THROUGHPUT.items()]
    return "\n".join(head + rows + tp) + "\n"


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="exit 1 if RECIPES.md is out of date")
    a = ap.parse_args()
    text = recipes_table()
    if a.check:
        current = OUT.read_text() if OUT.exists() else ""
        sys.exit(0 if current == text else f"{OUT} is out of date: run python {Path(__file__).name}")
    OUT.write_text(text)
    print(f"wrote {OUT} ({text.count(chr(10))} lines)")
