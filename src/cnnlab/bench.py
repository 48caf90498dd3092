"""Training-speed measurement: cnnlab's default path vs a plain PyTorch notebook loop.

``cnnlab bench`` prints, for the seed models at the seeds' batch sizes, training images/s of
(a) the exact path ``cnnlab train`` runs (:func:`cnnlab.runs.prepare`: in-memory uint8 batches,
bf16 autocast where the CPU has native bf16, channels_last) and (b) the loop the seed notebooks
write -- fp32, a ``Dataset`` normalising one sample at a time, a ``DataLoader``, ``nn.Dropout``,
``loss.item()`` every step -- interleaved round by round so both see the same machine state,
plus the achieved GFLOP/s against the machine's measured matmul ceiling.
``benchmarks/speed.py`` adds Keras/TensorFlow as a third contender and writes the table.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .data.core import ImageDataset
from .models import create_model
from .models.layers import Conv2dReLU, Dropout, FlattenNHWC
from .recipes import Recipe

# (model, batch size, input shape): the seeds' settings
SEED_MODELS = (("mnist-cnn-small", 128, (1, 28, 28)), ("mnist-cnn-wide", 128, (1, 28, 28)),
               ("cifar10-cnn-3block", 64, (3, 32, 32)), ("resnet20", 128, (3, 32, 32)))


def random_dataset(shape: tuple[int, int, int], n: int, classes: int = 10, seed: int = 0) -> ImageDataset:
    """Random uint8 images and labels: speed does not depend on pixel values.

    ``shape`` is one image's (C, H, W); the training split is ``n`` uint8 ``(n, C, H, W)`` images
    with int64 ``(n,)`` labels below ``classes``; the test split is its first ``classes`` images,
    labelled ``0 .. classes - 1``.
    """
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, *shape), dtype=torch.uint8, generator=g)
    y = torch.randint(0, classes, (n,), generator=g)
    return ImageDataset("random", x, y, x[:classes], torch.arange(classes), [str(i) for i in range(classes)],
                        mean=(0.5,) * shape[0], std=(0.25,) * shape[0])


def train_flops_per_image(model_name: str, shape) -> float:
    """FLOPs of one training step per image (forward + backward, counted by PyTorch's
    FlopCounterMode on an fp32 batch of 8; a multiply-add is 2 FLOPs). Counted with the fused
    convolution + ReLU switched off: the counter does not see oneDNN's fused op, and missed the
    forward convolutions of the seed CNNs (cifar10-cnn-3block: 154 instead of 232 MFLOP)."""
    from torch.utils.flop_counter import FlopCounterMode

    from .models import layers
    m = create_model(model_name, in_chans=shape[0])
    x = torch.randn(8, *shape)
    y = torch.randint(0, 10, (8,))
    fused, layers._FUSED_CONV_RELU = layers._FUSED_CONV_RELU, False
    try:
        with FlopCounterMode(display=False) as fc:
            F.cross_entropy(m(x), y).backward()
    finally:
        layers._FUSED_CONV_RELU = fused
    return fc.get_total_flops() / 8


def matmul_ceiling(dtype: torch.dtype, n: int = 2048, seconds: float = 1.0) -> float:
    """Practical matmul throughput in GFLOP/s: ``torch.mm`` of two n x n matrices of ``dtype`` on the
    CPU, repeated for at least ``seconds`` (wall-clock seconds) after one warm-up product."""
    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    c = torch.empty(n, n, dtype=dtype)
    torch.mm(a, b, out=c)
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        torch.mm(a, b, out=c)
        reps += 1
    return 2.0 * n ** 3 * reps / (time.perf_counter() - t0) / 1e9


def matmul_ceilings(n: int = 2048, seconds: float = 1.0) -> dict[str, float | None]:
    """``{"fp32": GFLOP/s, "bf16": GFLOP/s or None}`` on the CPU (:func:`matmul_ceiling`).

    bf16 is measured only where the CPU computes it natively (:func:`cnnlab.device.native_bf16`):
    elsewhere PyTorch emulates it at about 1 GFLOP/s (an AVX2-only AMD EPYC: one 2048^3 product
    took ~25 s), cnnlab trains in fp32 there, and the figure would only cost time.
    """
    from .device import native_bf16
    return {"fp32": matmul_ceiling(torch.float32, n, seconds),
            "bf16": matmul_ceiling(torch.bfloat16, n, seconds) if native_bf16(torch.device("cpu")) else None}


def median_ceilings(samples: list[dict[str, float | None]]) -> dict[str, float | None]:
    """The median of several :func:`matmul_ceilings` samples, per dtype (None where not measured)."""
    return {k: statistics.median(s[k] for s in samples) if samples[0][k] else None for k in samples[0]}


def format_ceilings(ceil: dict[str, float | None]) -> str:
    """``"fp32 209 GFLOP/s, bf16 808 GFLOP/s"`` (bf16: "not native" where it was not measured)."""
    return ", ".join(f"{k} {v:.0f} GFLOP/s" if v else f"{k} not native (not measured)" for k, v in ceil.items())


class CnnlabRunner:
    """Times ``Trainer.fit`` over ``steps`` batches: exactly what ``cnnlab train`` runs, for a
    recipe of ``model_name`` with the given recipe fields (e.g. ``optimizer="sgd"``), on random
    uint8 images of ``shape`` (C, H, W), ``batch`` images per step, on the CPU. :meth:`run` returns
    images/s; ``first_s`` is the first sample's wall time in seconds (compilation included)."""

    def __init__(self, model_name: str, batch: int, shape, steps: int, precision: str = "auto",
                 compile: bool = False, **recipe_fields):
        from .runs import prepare
        ds = random_dataset(shape, batch * steps)
        recipe = Recipe(name="bench", source="bench", dataset="random", model=model_name, epochs=1,
                        batch_size=batch, val_fraction=0.0, precision=precision, compile=compile,
                        **recipe_fields)
        self.setup = prepare(recipe, ds, "cpu", checkpoint=None, log=lambda m: None, progress=False)
        self.batch, self.steps = batch, steps
        self.label = (f"cnnlab {self.setup.precision}" + (" channels_last" if self.setup.channels_last else "")
                      + (" torch.compile" if compile else ""))
        self.first_s = None  # wall time of the first run: includes compilation when compiling

    def run(self) -> float:
        """One timed sample: ``steps`` training steps through cnnlab's trainer; images/s."""
        t0 = time.perf_counter()
        self.setup.trainer.fit(self.setup.train, None, epochs=1)
        dt = time.perf_counter() - t0
        if self.first_s is None:
            self.first_s = dt
        return self.batch * self.steps / dt


class _NotebookDataset(torch.utils.data.Dataset):
    """Per-sample ToTensor + Normalize, as torchvision transforms do in the seed notebooks."""

    def __init__(self, images, labels, mean, std):
        self.images, self.labels = images, labels
        self.mean = torch.tensor(mean).view(-1, 1, 1)
        self.std = torch.tensor(std).view(-1, 1, 1)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return (self.images[i].float().div(255) - self.mean) / self.std, self.labels[i]


def plain_model(model_name: str, in_chans: int) -> nn.Module:
    """The same architecture in the stock layers a notebook writes: ``nn.Dropout``, ``nn.Conv2d``
    followed by ``nn.ReLU`` (not cnnlab's fused :class:`~cnnlab.models.layers.Conv2dReLU`), and
    ``nn.Flatten`` (not the Keras-order :class:`~cnnlab.models.layers.FlattenNHWC`, whose
    permutation of the dense layer's inputs is the same work in another order)."""
    m = create_model(model_name, in_chans=in_chans)
    for mod in list(m.modules()):
        for child_name, child in list(mod.named_children()):
            if isinstance(child, Dropout):
                setattr(mod, child_name, nn.Dropout(child.p))
            elif isinstance(child, Conv2dReLU):
                conv = nn.Conv2d(child.in_channels, child.out_channels, child.kernel_size, child.stride,
                                 child.padding, child.dilation, child.groups, child.bias is not None,
                                 child.padding_mode)
                conv.load_state_dict(child.state_dict())
                setattr(mod, child_name, nn.Sequential(conv, nn.ReLU(inplace=True)))
            elif isinstance(child, FlattenNHWC):
                setattr(mod, child_name, nn.Flatten())
    return m


class PlainTorchRunner:
    """A seed-notebook loop: fp32 NCHW, DataLoader(shuffle=True), Adam, ``loss.item()`` per step."""

    label = "plain PyTorch fp32 DataLoader"

    def __init__(self, model_name: str, batch: int, shape, steps: int):
        torch.manual_seed(0)
        ds = random_dataset(shape, batch * steps)
        self.model = plain_model(model_name, shape[0])
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.loader = torch.utils.data.DataLoader(
            _NotebookDataset(ds.train_images, ds.train_labels, ds.mean, ds.std), batch_size=batch, shuffle=True)
        self.batch, self.steps = batch, steps

    def run(self) -> float:
        """One timed sample: ``steps`` steps of the notebook-style DataLoader loop; images/s."""
        t0 = time.perf_counter()
        self.model.train()
        running = 0.0
        for x, y in self.loader:
            self.opt.zero_grad()
            loss = F.cross_entropy(self.model(x), y)
            loss.backward()
            self.opt.step()
            running += loss.item()
        return self.batch * self.steps / (time.perf_counter() - t0)


def median_span(samples) -> str:
    """``"1,234 (1,200-1,260)"``: the median of throughput samples, then their range."""
    return f"{statistics.median(samples):,.0f} ({min(samples):,.0f}-{max(samples):,.0f})"


def machine_line(m: dict) -> str:
    """The machine line of a benchmark table, from :func:`cnnlab.device.describe_machine`."""
    isa = f" ({m['cpu_isa']})" if m.get("cpu_isa") else ""
    return f"Machine: {m['cpu']}{isa}, {m['cores']} cores; torch {m['torch']}, Python {m['python']}."


@dataclass
class Series:
    """Throughput samples of one contender (images/s)."""

    label: str
    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        """Median of the samples, images/s."""
        return statistics.median(self.samples)

    def span(self) -> str:
        """``"1,200-1,260"``: the range of the samples."""
        return f"{min(self.samples):,.0f}-{max(self.samples):,.0f}"


def interleave(runners: dict[str, object], rounds: int, warmup: int = 1,
               log: Callable[[str], None] = print) -> dict[str, Series]:
    """Run each runner once per round, round-robin, after ``warmup`` unrecorded rounds."""
    out = {k: Series(getattr(r, "label", k)) for k, r in runners.items()}
    for rnd in range(warmup + rounds):
        for k, r in runners.items():
            v = r.run()
            if rnd >= warmup:
                out[k].samples.append(v)
                log(f"  round {rnd - warmup}: {out[k].label:<36} {v:9,.0f} images/s")
    return out


def bench(models=SEED_MODELS, rounds: int = 3, steps: int = 20, log=print) -> list[dict]:
    """The ``cnnlab bench`` measurement; returns one dict per model. Both contenders take
    ``steps`` steps per sample; the matmul ceiling is the median of samples taken before the
    first model and after each, as benchmarks/speed.py takes it.

    Returns:
        Per model: ``model``, ``batch`` (images per step), ``cnnlab`` and ``plain`` (:class:`Series`
        of images/s), ``train_mflop_per_image`` (MFLOP), ``gflops`` (cnnlab's median GFLOP/s),
        ``precision``, ``ceiling`` (:func:`matmul_ceilings`, GFLOP/s) and ``ceiling_fraction``
        (``gflops`` over the ceiling of that precision, a fraction; None where not measured).
    """
    torch.set_num_threads(torch.get_num_threads())
    samples = [matmul_ceilings()]
    log(f"matmul ceiling: {format_ceilings(samples[0])}")
    rows = []
    for name, batch, shape in models:
        log(f"{name} (batch {batch})")
        runners = {"cnnlab": CnnlabRunner(name, batch, shape, steps),
                   "plain": PlainTorchRunner(name, batch, shape, steps)}
        res = interleave(runners, rounds, log=log)
        samples.append(matmul_ceilings())
        flops = train_flops_per_image(name, shape)
        prec = runners["cnnlab"].setup.precision
        gflops = res["cnnlab"].median * flops / 1e9
        rows.append({"model": name, "batch": batch, "cnnlab": res["cnnlab"], "plain": res["plain"],
                     "train_mflop_per_image": flops / 1e6, "gflops": gflops, "precision": prec})
    ceil = median_ceilings(samples)
    for r in rows:
        r["ceiling"] = ceil
        r["ceiling_fraction"] = r["gflops"] / ceil[r["precision"]] if ceil[r["precision"]] else None
    return rows


def format_rows(rows: list[dict]) -> str:
    """The markdown table ``cnnlab bench`` prints, one row per timed model."""
    lines = ["| model (batch) | cnnlab images/s | plain PyTorch images/s | ratio | GFLOP/s | of matmul ceiling |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        c, p = r["cnnlab"], r["plain"]
        share = (f"{100 * r['ceiling_fraction']:.0f}% of {r['precision']}" if r["ceiling_fraction"]
                 else f"— ({r['precision']} not measured)")
        lines.append(f"| {r['model']} ({r['batch']}) | {c.median:,.0f} ({c.span()}) | {p.median:,.0f} "
                     f"({p.span()}) | {c.median / p.median:.2f}x | {r['gflops']:.0f} | {share} |")
    return "\n".join(lines)
