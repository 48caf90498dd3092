"""Layer ablation: each of cnnlab's own layers against the stock PyTorch layer it replaces, timed
inside whole training steps of the model that uses it, side by side in one interleaved run.

    python benchmarks/layers.py [--rounds 5]

For every row, two copies of the same model train on the same random in-memory batches through
the exact ``cnnlab train`` path (cnnlab.bench.CnnlabRunner): one as cnnlab builds it, one with
that one kind of layer swapped back for PyTorch's (same parameters). Rounds alternate between the
two, so both see the same machine state; the table gives medians (min-max) in training images/s
and their ratio. Run under the ``cnnlab`` command's launch settings, like benchmarks/speed.py.
Results go to benchmarks/LAYERS.md and benchmarks/results/layers.json.
"""
from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def _stock_conv_relu(m):
    conv = nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, m.dilation,
                     m.groups, m.bias is not None)
    conv.weight, conv.bias = m.weight, m.bias  # the same Parameters: the optimizer is unaffected
    return nn.Sequential(conv, nn.ReLU(inplace=True))


def _swaps():
    from cnnlab.models.layers import Conv2dReLU, Dropout, FlattenNHWC, LocalResponseNorm
    return {
        "Conv2dReLU": (Conv2dReLU, _stock_conv_relu, "nn.Conv2d + nn.ReLU"),
        "Dropout": (Dropout, lambda m: nn.Dropout(m.p), "nn.Dropout"),
        "FlattenNHWC": (FlattenNHWC, lambda m: nn.Flatten(), "nn.Flatten"),
        "LocalResponseNorm": (LocalResponseNorm, lambda m: nn.LocalResponseNorm(m.size, m.alpha, m.beta, m.k),
                              "nn.LocalResponseNorm"),
    }


# (model, batch, input shape, cnnlab layer): each layer in the seed model where it matters most
ROWS = (("mnist-cnn-wide", 128, (1, 28, 28), "Conv2dReLU"),
        ("mnist-cnn-small", 128, (1, 28, 28), "Dropout"),
        ("mnist-cnn-small", 128, (1, 28, 28), "FlattenNHWC"),
        ("zfnet-cifar", 128, (3, 32, 32), "LocalResponseNorm"))


def swap_back(model: nn.Module, layer: str) -> int:
    """Replace every ``layer`` module of ``model`` by its stock PyTorch counterpart; returns how many."""
    cls, make, _ = _swaps()[layer]
    n = 0
    for mod in list(model.modules()):
        for name, child in list(mod.named_children()):
            if type(child) is cls:
                setattr(mod, name, make(child).train(child.training))
                n += 1
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=10, help="training steps per timed sample")
    a = ap.parse_args()
    from speed import ensure_launch_settings
    ensure_launch_settings()
    from cnnlab.bench import CnnlabRunner, interleave
    from cnnlab.device import describe_machine
    rows = []
    for model, batch, shape, layer in ROWS:
        print(f"{model} (batch {batch}): {layer}", flush=True)
        ours = CnnlabRunner(model, batch, shape, a.steps)
        stock = CnnlabRunner(model, batch, shape, a.steps)
        count = swap_back(stock.setup.trainer.model, layer)
        ours.label, stock.label = f"cnnlab ({layer})", f"stock ({_swaps()[layer][2]})"
        res = interleave({"ours": ours, "stock": stock}, a.rounds)
        rows.append({"model": model, "batch": batch, "layer": layer, "stock": _swaps()[layer][2],
                     "modules": count, "precision": ours.setup.precision,
                     "ours": res["ours"].samples, "stock_samples": res["stock"].samples})
    out = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": describe_machine(),
           "rounds": a.rounds, "steps": a.steps, "rows": rows}
    (HERE / "results" / "layers.json").write_text(json.dumps(out, indent=1) + "\n")
    (HERE / "LAYERS.md").write_text(render(out))
    print(render(out))


def render(out: dict) -> str:
    import statistics
    from cnnlab.bench import machine_line, median_span
    lines = ["# Layer ablation: cnnlab's layers vs the stock PyTorch layers they replace", "",
             f"One interleaved run, {out['date'][:10]}, {out['rounds']} rounds of {out['steps']} training steps "
             "per variant (forward, cross-entropy, backward, Adam; the `cnnlab train` path on random "
             "in-memory data). Training images/s, median (min-max). Written by `python benchmarks/layers.py`.", "",
             machine_line(out["machine"]), "",
             "| model (batch) | cnnlab layer | replaced by | modules | precision | cnnlab | stock | ratio |",
             "|---|---|---|---|---|---|---|---|"]
    for r in out["rows"]:
        ours, stock = statistics.median(r["ours"]), statistics.median(r["stock_samples"])
        lines.append(f"| {r['model']} ({r['batch']}) | `{r['layer']}` | `{r['stock']}` | {r['modules']} "
                     f"| {r['precision']} | {median_span(r['ours'])} | {median_span(r['stock_samples'])} "
                     f"| {ours / stock:.2f}x |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
