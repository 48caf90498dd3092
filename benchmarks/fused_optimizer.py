"""The optimizer's update: PyTorch's fused kernels (cnnlab's default) vs the multi-tensor
``foreach`` ones, timed inside whole training steps, side by side in one interleaved run.

    python benchmarks/fused_optimizer.py [--rounds 5]

For every row, two copies of the same recipe train on the same random in-memory batches through
the exact ``cnnlab train`` path (cnnlab.bench.CnnlabRunner), one with ``fused_optimizer=true``
and one with ``false``; rounds alternate between them. The rows are the seed models with the
optimizer and batch size of their recipes, from the largest (AlexNet, 23M parameters, whose update
dominates a step at batch 32) to the smallest. Run under the ``cnnlab`` command's launch settings
(tcmalloc, threads), like benchmarks/speed.py. Writes benchmarks/FUSED_OPTIMIZER.md and
benchmarks/results/fused_optimizer.json.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

# (model, batch, input shape, recipe fields, the recipe it stands for)
ROWS = (("alexnet-cifar", 32, (3, 32, 32), {"optimizer": "adam"}, "cifar10-alexnet"),
        ("zfnet-cifar", 32, (3, 32, 32), {"optimizer": "adam"}, "cifar10-zfnet"),
        ("mnist-cnn-2m", 64, (1, 28, 28), {"optimizer": "adam"}, "mnist-cnn-2m"),
        ("mnist-cnn-small", 128, (1, 28, 28), {"optimizer": "adam"}, "mnist-cnn-small"),
        ("mnist-cnn-wide", 128, (1, 28, 28), {"optimizer": "adam"}, "mnist-cnn-wide"),
        ("cifar10-cnn-3block", 64, (3, 32, 32), {"optimizer": "adam"}, "cifar10-cnn-3block"),
        ("resnet20", 128, (3, 32, 32), {"optimizer": "sgd", "nesterov": True, "weight_decay": 5e-4},
         "cifar10-resnet20-fast"))


def parse_args(doc: str, name: str) -> argparse.Namespace:
    """Command line of an A/B benchmark writing benchmarks/NAME.md and results/name.json, then
    the ``cnnlab`` command's launch settings (re-executes) and its denormal flush, as
    ``cnnlab train`` starts. Shared with benchmarks/channels_last.py."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=2.0, help="about how long one timed sample takes")
    ap.add_argument("--models", nargs="+", help="only these rows (model names)")
    ap.add_argument("--out", default=str(HERE / f"{name.upper()}.md"))
    ap.add_argument("--json", default=str(HERE / "results" / f"{name}.json"))
    a = ap.parse_args()
    from speed import ensure_launch_settings
    ensure_launch_settings()
    from cnnlab.device import flush_denormals
    flush_denormals()  # as cnnlab train does, before PyTorch starts its threads
    return a


def variant_runners(model: str, batch: int, shape, fields: dict, variants: dict[str, dict],
                    seconds: float) -> tuple[int, dict]:
    """``(steps, {variant: CnnlabRunner})``: one runner per variant (its recipe fields on top of
    ``fields``), each timed sample ``steps`` steps, about ``seconds`` long (sized on a warmed
    probe of the first variant)."""
    from cnnlab.bench import CnnlabRunner
    first = next(iter(variants.values()))
    probe = CnnlabRunner(model, batch, shape, 2, **{**fields, **first})
    probe.run()  # warm, then size the samples
    steps = max(2, round(seconds * probe.run() / batch))
    return steps, {k: CnnlabRunner(model, batch, shape, steps, **{**fields, **v}) for k, v in variants.items()}


def write_results(a: argparse.Namespace, rows: list[dict], render) -> None:
    """Write the rows with date, machine and rounds to ``a.json``, the table ``render`` makes of
    them to ``a.out``, and print the table."""
    from cnnlab.device import describe_machine
    out = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": describe_machine(),
           "rounds": a.rounds, "rows": rows}
    Path(a.json).write_text(json.dumps(out, indent=1) + "\n")
    Path(a.out).write_text(render(out))
    print(render(out))


def main() -> None:
    a = parse_args(__doc__, "fused_optimizer")
    from cnnlab.bench import interleave
    rows = []
    for model, batch, shape, fields, recipe in ROWS:
        if a.models and model not in a.models:
            continue
        steps, runners = variant_runners(model, batch, shape, fields, {"fused": {"fused_optimizer": True},
                                                                       "foreach": {"fused_optimizer": False}},
                                         a.seconds)
        assert bool(runners["fused"].setup.optimizer.defaults.get("fused"))
        print(f"{model} (batch {batch}, {fields['optimizer']}): {steps} steps per sample", flush=True)
        res = interleave(runners, a.rounds)
        params = sum(p.numel() for p in runners["fused"].setup.model.parameters())
        rows.append({"model": model, "batch": batch, "recipe": recipe, "optimizer": fields["optimizer"],
                     "params": params, "steps": steps, "precision": runners["fused"].setup.precision,
                     "fused": res["fused"].samples, "foreach": res["foreach"].samples})
    write_results(a, rows, render)


def render(out: dict) -> str:
    from cnnlab.bench import machine_line, median_span
    lines = ["# The optimizer update: fused vs foreach kernels", "",
             f"One interleaved run, {out['date'][:10]}, {out['rounds']} rounds per variant of training "
             "steps (forward, cross-entropy, backward, optimizer step; the `cnnlab train` path on random "
             "in-memory data) with PyTorch's fused optimizer kernels (`fused_optimizer=true`, cnnlab's "
             "default) and with the multi-tensor foreach kernels (`false`). Training images/s, median "
             "(min-max). Written by `python benchmarks/fused_optimizer.py`.", "",
             machine_line(out["machine"]), "",
             "| model (batch) | recipe | parameters | optimizer | precision | fused | foreach | fused / foreach |",
             "|---|---|---|---|---|---|---|---|"]
    for r in out["rows"]:
        f, e = statistics.median(r["fused"]), statistics.median(r["foreach"])
        lines.append(f"| {r['model']} ({r['batch']}) | `{r['recipe']}` | {r['params'] / 1e6:.2f}M | {r['optimizer']} "
                     f"| {r['precision']} | {median_span(r['fused'])} | {median_span(r['foreach'])} | {f / e:.2f}x |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
