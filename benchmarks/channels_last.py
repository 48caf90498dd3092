"""The fp32 path's memory format: channels_last (NHWC) vs contiguous NCHW activations, timed inside
whole training steps, side by side in one interleaved run.

    python benchmarks/channels_last.py [--rounds 5]

Why: cnnlab trains in fp32 on CPUs without native bf16 (AVX2-only x86, most laptops and many
cloud machines). For every row, two copies of the same recipe, both forced to fp32, train on the
same random in-memory batches through the exact ``cnnlab train`` path (cnnlab.bench.CnnlabRunner),
one with ``channels_last=true`` (model and batches in NHWC, as the bf16 path always is) and one
with ``false``; rounds alternate between them. Rows: the seed models with the optimizer and batch
size of their recipes (benchmarks/fused_optimizer.py's list). Run under the ``cnnlab`` command's
launch settings (tcmalloc, threads), like benchmarks/speed.py. Writes benchmarks/CHANNELS_LAST.md
(``--out``) and benchmarks/results/channels_last.json (``--json``).
"""
from __future__ import annotations

import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def main() -> None:
    from fused_optimizer import ROWS, parse_args, variant_runners, write_results
    a = parse_args(__doc__, "channels_last")
    from cnnlab.bench import interleave
    rows = []
    for model, batch, shape, fields, recipe in ROWS:
        if a.models and model not in a.models:
            continue
        steps, runners = variant_runners(model, batch, shape, {**fields, "precision": "fp32"},
                                         {"channels_last": {"channels_last": True},
                                          "nchw": {"channels_last": False}}, a.seconds)
        print(f"{model} (batch {batch}, fp32): {steps} steps per sample", flush=True)
        res = interleave(runners, a.rounds)
        rows.append({"model": model, "batch": batch, "recipe": recipe, "steps": steps,
                     "channels_last": res["channels_last"].samples, "nchw": res["nchw"].samples})
    write_results(a, rows, render)


def render(out: dict) -> str:
    from cnnlab.bench import machine_line, median_span
    lines = ["# The fp32 path's memory format: channels_last vs NCHW", "",
             f"One interleaved run, {out['date'][:10]}, {out['rounds']} rounds per variant of fp32 "
             "training steps (forward, cross-entropy, backward, optimizer step; the `cnnlab train` path "
             "on random in-memory data) with model and batches in channels_last (NHWC) and in "
             "contiguous NCHW. Training images/s, median (min-max). Written by "
             "`python benchmarks/channels_last.py`.", "",
             machine_line(out["machine"]), "",
             "| model (batch) | recipe | channels_last | NCHW | channels_last / NCHW |",
             "|---|---|---|---|---|"]
    ratios = []
    for r in out["rows"]:
        c, n = statistics.median(r["channels_last"]), statistics.median(r["nchw"])
        ratios.append(c / n)
        lines.append(f"| {r['model']} ({r['batch']}) | `{r['recipe']}` | {median_span(r['channels_last'])} "
                     f"| {median_span(r['nchw'])} | {c / n:.2f}x |")
    if ratios:
        lines.append(f"| **geometric mean** | | | | **{statistics.geometric_mean(ratios):.2f}x** |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
