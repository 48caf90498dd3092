"""One process vs a torchrun job of N processes, `cnnlab train` on real MNIST, interleaved.

    python benchmarks/ddp.py [--recipe mnist-cnn-small] [--epochs 2] [--rounds 2] [--nproc 2]
                             [--data-dir ../shared/data]

Each round runs ``cnnlab train RECIPE --epochs E`` once as one process (the cnnlab command's
own thread settings: one OpenMP thread per core) and once as ``torchrun --nproc_per_node=N -m
cnnlab.cli train ...`` (torchrun gives each process one thread), alternating, on the same data.
Per run it reads the epochs' seconds from ``metrics.csv`` (the first epoch, which includes
warm-up, is left out when there are more) and the final validation and test top-1. Writes
``benchmarks/DDP.md`` (atomically) with machine, versions and date; the figures answer "what
does DDP cost or gain on *this* machine", not on a GPU cluster.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))


def run(cmd: list[str], run_dir: Path) -> dict:
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode:
        raise SystemExit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stdout[-2000:]}{p.stderr[-2000:]}")
    rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
    times = [float(r["time_s"]) for r in rows]
    test = json.loads((run_dir / "test_metrics.json").read_text())
    return {"epoch_s": statistics.median(times[1:] if len(times) > 1 else times),
            "val": float(rows[-1]["val_accuracy"]), "test": test["accuracy"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", default="mnist-cnn-small")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--data-dir", default=str(HERE.parent.parent / "shared" / "data"))
    ap.add_argument("--out", default=str(HERE / "DDP.md"))
    a = ap.parse_args(argv)
    from cnnlab._io import write_text
    from cnnlab.device import describe_machine
    import torch

    bin_dir = Path(sys.executable).parent
    common = ["train", a.recipe, "--epochs", str(a.epochs), "--data-dir", a.data_dir]
    results: dict[str, list[dict]] = {"one": [], "ddp": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.rounds):
            for kind in ("one", "ddp"):
                d = Path(tmp) / f"{kind}-{r}"
                head = ([str(bin_dir / "cnnlab")] if kind == "one" else
                        [str(bin_dir / "torchrun"), f"--nproc_per_node={a.nproc}", "-m", "cnnlab.cli"])
                results[kind].append(run(head + common + ["--run-dir", str(d)], d))
                print(kind, r, results[kind][-1], flush=True)

    def cell(kind, key, fmt):
        vals = [x[key] for x in results[kind]]
        return fmt(statistics.median(vals)) + (f" ({fmt(min(vals))}-{fmt(max(vals))})" if len(vals) > 1 else "")

    m = describe_machine()
    one_s = statistics.median(x["epoch_s"] for x in results["one"])
    ddp_s = statistics.median(x["epoch_s"] for x in results["ddp"])
    sec, pct = (lambda v: f"{v:.1f}"), (lambda v: f"{100 * v:.2f}")
    lines = [
        "# One process vs DDP (torchrun) on this machine",
        "",
        f"Written by `python benchmarks/ddp.py --recipe {a.recipe} --epochs {a.epochs} --rounds "
        f"{a.rounds} --nproc {a.nproc}`; runs interleaved, one at a time.",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores; torch {torch.__version__}, Python "
        f"{m['python']}; {datetime.now(timezone.utc).isoformat(timespec='seconds')}.",
        "",
        "| run | processes x threads | seconds per epoch | val top-1 (%) | test top-1 (%) |",
        "|---|---|---|---|---|",
        f"| `cnnlab train {a.recipe}` | 1 x {m['cores']} | {cell('one', 'epoch_s', sec)} | "
        f"{cell('one', 'val', pct)} | {cell('one', 'test', pct)} |",
        f"| `torchrun --nproc_per_node={a.nproc} -m cnnlab.cli train {a.recipe}` | {a.nproc} x 1 | "
        f"{cell('ddp', 'epoch_s', sec)} | {cell('ddp', 'val', pct)} | {cell('ddp', 'test', pct)} |",
        "",
        f"DDP takes {ddp_s / one_s:.2f}x the time per epoch of one process ({a.epochs} epochs a run, medians "
        f"over {a.rounds} rounds; the first epoch of each run left out). On one multi-core CPU the "
        "processes share the cores that one process's threads would use, and add a gradient "
        "all-reduce per step: DDP is for several GPUs or machines, and this table shows what it "
        "costs where it cannot gain.",
        "",
    ]
    write_text(Path(a.out), "\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
