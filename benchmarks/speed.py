"""Training speed, side by side, in one interleaved run: cnnlab vs plain PyTorch vs Keras/TF.

    python benchmarks/speed.py [--rounds 5] [--steps 20] [--models mnist-cnn-small ...] [--no-keras]

Contenders, each at the seeds' batch sizes on the same random in-memory data:
  (a) cnnlab's default path: the exact code ``cnnlab train`` runs (cnnlab.runs.prepare +
      Trainer.fit), in this process, with the ``cnnlab`` command's launch settings (tcmalloc
      preloaded when installed; the script installs Debian's libtcmalloc-minimal4 if it can).
  (b) a plain PyTorch fp32 loop with a DataLoader as the seed notebooks write it, in its own
      process without launch settings (benchmarks/torch_peer.py).
  (c) Keras 3 on TensorFlow ``fit``, float32 and mixed_bfloat16, each in its own process from a
      separate virtual environment (benchmarks/keras_peer.py; made on first use in
      benchmarks/_work/tf-venv, not a cnnlab dependency).
Round-robin: every round runs every contender once, so all see the same machine state; the table
gives medians with min-max, ratios of medians, achieved GFLOP/s (PyTorch's FlopCounterMode count
of forward + backward) as a fraction of the matmul ceiling measured in the same run. Results go to
benchmarks/SPEED.md and benchmarks/results/speed.json; ``--out`` and ``--json`` name others (a second
machine's table, e.g. SPEED-amd-epyc.md).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = HERE / "_work"
TF_VENV = WORK / "tf-venv"
TF_PINS = ["tensorflow-cpu==2.21.0", "keras==3.15.1"]


def ensure_launch_settings() -> None:
    """Re-execute under the cnnlab command's launch settings (installing tcmalloc if possible)."""
    from cnnlab import launch
    if launch.find_tcmalloc() is None and os.geteuid() == 0 and shutil.which("apt-get"):
        print("installing libtcmalloc-minimal4 (Debian) for the launch settings ...", flush=True)
        subprocess.run("apt-get update -qq && apt-get install -y -qq libtcmalloc-minimal4",
                       shell=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    launch.relaunch_script()


def ensure_tf_venv() -> Path:
    py = TF_VENV / "bin" / "python"
    if not py.exists():
        print(f"creating {TF_VENV} with {' '.join(TF_PINS)} (one-off, a few minutes) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(TF_VENV)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", *TF_PINS], check=True)
    return py


class Peer:
    """A contender in a subprocess speaking keras_peer.py's JSON protocol."""

    def __init__(self, label, argv, env, build):
        self.label = label
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env=env, cwd=HERE)
        self.info = self.ask(build)

    def ask(self, req):
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.label}: peer process died")
        return json.loads(line)

    def run(self):
        return self.ask({"cmd": "run", "steps": self.steps})["img_s"]

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def geomean(xs):
    return math.exp(sum(math.log(x) for x in xs) / len(xs))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20, help="training steps per timed sample")
    ap.add_argument("--models", nargs="+", default=None)
    ap.add_argument("--no-keras", action="store_true")
    ap.add_argument("--compile", nargs="*", default=["resnet20"],
                    help="models for which cnnlab with torch.compile is timed too")
    ap.add_argument("--out", default=str(HERE / "SPEED.md"))
    ap.add_argument("--json", default=str(HERE / "results" / "speed.json"),
                    help="where the raw timings go (read back by --render-only)")
    ap.add_argument("--no-time-to-accuracy", action="store_true",
                    help="leave out the time-to-accuracy section (its full runs come from "
                         "results/<recipe>.json, i.e. from whatever machine ran them)")
    ap.add_argument("--render-only", action="store_true",
                    help="rewrite the table from --json and results/<recipe>.json without timing")
    ap.add_argument("--recount-flops", action="store_true",
                    help="recount each model's training FLOPs in --json (the timings stay), then rewrite "
                         "the table: for records made before the count saw fused convolutions")
    a = ap.parse_args()
    if a.recount_flops:
        recount_flops(Path(a.json))
    if a.render_only or a.recount_flops:
        Path(a.out).write_text(render(json.loads(Path(a.json).read_text()), not a.no_time_to_accuracy))
        return
    ensure_launch_settings()

    import torch
    from cnnlab.bench import (SEED_MODELS, CnnlabRunner, format_ceilings, interleave, matmul_ceilings,
                              median_ceilings, train_flops_per_image)
    from cnnlab.device import describe_machine

    models = [m for m in SEED_MODELS if not a.models or m[0] in a.models]
    plain_env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "OMP_NUM_THREADS")}
    tf_py = None if a.no_keras else ensure_tf_venv()
    # the ceiling is sampled before the first model and after each one; its median is used
    ceiling_samples = [matmul_ceilings(4096, 3.0)]
    print(f"matmul ceiling (4096^3, {torch.get_num_threads()} threads): {format_ceilings(ceiling_samples[0])}",
          flush=True)
    rows, versions = [], {}
    for name, batch, shape in models:
        print(f"== {name} (batch {batch})", flush=True)
        runners = {"cnnlab": CnnlabRunner(name, batch, shape, a.steps)}
        if name in a.compile:
            runners["cnnlab_compile"] = CnnlabRunner(name, batch, shape, a.steps, compile=True)
        build = {"cmd": "build", "model": name, "batch": batch, "steps": a.steps}
        peers = {"plain": Peer("plain PyTorch fp32 DataLoader", [sys.executable, "torch_peer.py"],
                               plain_env, build)}
        if tf_py:
            # mixed_bfloat16 only where the CPU has native bf16 (emulated, it is no contender)
            native_bf16 = ceiling_samples[0]["bf16"]
            policies = [("float32", "keras_fp32")] + ([("mixed_bfloat16", "keras_bf16")] if native_bf16 else [])
            for pol, key in policies:
                peers[key] = Peer(f"Keras fit {pol}", [str(tf_py), "keras_peer.py"], plain_env,
                                  {**build, "policy": pol})
                versions.update(tensorflow=peers[key].info["tf"], keras=peers[key].info["keras"])
        for p in peers.values():
            p.steps = a.steps
        res = interleave({**runners, **peers}, a.rounds, log=lambda m: print(m, flush=True))
        for p in peers.values():
            p.close()
        ceiling_samples.append(matmul_ceilings(4096, 3.0))
        flops = train_flops_per_image(name, shape)
        prec = runners["cnnlab"].setup.precision
        row = {"model": name, "batch": batch, "train_mflop_per_image": flops / 1e6, "precision": prec,
               **{k: {"label": s.label, "samples": s.samples, "median": s.median} for k, s in res.items()}}
        row["gflops"] = res["cnnlab"].median * flops / 1e9
        row["threads"] = {"cnnlab": torch.get_num_threads(), **{k: p.info.get("threads") for k, p in peers.items()}}
        if "cnnlab_compile" in runners:
            row["compile_first_run_s"] = runners["cnnlab_compile"].first_s
        rows.append(row)
    ceil = median_ceilings(ceiling_samples)
    for row in rows:
        prec = row["precision"]
        row["ceiling_fraction"] = row["gflops"] / ceil[prec] if ceil.get(prec) else None

    machine = describe_machine()
    machine["launch"] = {"LD_PRELOAD": os.environ.get("LD_PRELOAD", ""), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")}
    date = datetime.now(timezone.utc).isoformat(timespec="seconds")
    out = {"date": date, "machine": machine, "versions": versions, "ceiling_gflops": ceil, "rows": rows,
           "ceiling_samples": ceiling_samples, "rounds": a.rounds, "steps": a.steps, "plain_layers": "stock"}
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(out, indent=1))
    Path(a.out).write_text(render(out, not a.no_time_to_accuracy))
    print(render(out, not a.no_time_to_accuracy))


FLOPS_METHOD = ("GFLOP/s: the FLOPs of one training step per image (forward and backward, a "
                "multiply-add counted as 2, by PyTorch's FlopCounterMode on the unfused model) times "
                "cnnlab's median images/s")


def recount_flops(path: Path) -> None:
    """Recount ``train_mflop_per_image`` (and the GFLOP/s and ceiling share derived from it) of
    every row of a speed record with :func:`cnnlab.bench.train_flops_per_image`; the timed
    samples are not touched. The record keeps the date and the former counts."""
    from cnnlab.bench import SEED_MODELS, train_flops_per_image
    out = json.loads(path.read_text())
    shapes = {name: shape for name, _, shape in SEED_MODELS}
    before = {}
    for r in out["rows"]:
        flops = train_flops_per_image(r["model"], shapes[r["model"]])
        before[r["model"]] = r["train_mflop_per_image"]
        r["train_mflop_per_image"] = flops / 1e6
        r["gflops"] = r["cnnlab"]["median"] * flops / 1e9
        prec = r["precision"]
        r["ceiling_fraction"] = r["gflops"] / out["ceiling_gflops"][prec] if out["ceiling_gflops"].get(prec) else None
    out["flops_recounted"] = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                              "former_mflop_per_image": before}
    path.write_text(json.dumps(out, indent=1))


def render(out, with_time_to_accuracy: bool = True) -> str:
    def cell(r, k):
        s = r.get(k)
        return f"{s['median']:,.0f} ({min(s['samples']):,.0f}-{max(s['samples']):,.0f})" if s else "—"

    has_keras = any("keras_fp32" in r for r in out["rows"])
    head = ["# Training speed: cnnlab vs plain PyTorch vs Keras/TensorFlow", "",
            f"One interleaved run, {out['date'][:10]}, {out['rounds']} rounds of {out['steps']} training "
            "steps per contender and model (medians, min-max in brackets, images/s; forward, "
            "cross-entropy, backward, Adam step). Written by `python benchmarks/speed.py`.", "",
            f"Machine: {out['machine']['cpu']}"
            + (f" ({out['machine']['cpu_isa']})" if out["machine"].get("cpu_isa") else "")
            + f", {out['machine']['cores']} cores; torch {out['machine']['torch']}, "
            f"Python {out['machine']['python']}"
            + (f", TensorFlow {out['versions'].get('tensorflow')}, Keras {out['versions'].get('keras')}" if has_keras else "")
            + f"; cnnlab launch settings: LD_PRELOAD={out['machine']['launch']['LD_PRELOAD'] or 'none'}. "
            "Matmul ceiling measured in the same run"
            + (f" (median of {len(out['ceiling_samples'])} samples of a 4096^3 product, before the first "
               "model and after each)" if out.get("ceiling_samples") else " (one sample, at its start)")
            + ": "
            + ", ".join(f"{k} {v:.0f} GFLOP/s" if v else f"{k} not measured (no native bf16: "
                        "PyTorch emulates it at ~1 GFLOP/s, cnnlab trains in fp32, Keras' "
                        "mixed_bfloat16 not timed)" for k, v in out["ceiling_gflops"].items()) + ". "
            + FLOPS_METHOD + "."
            + (f" The FLOPs were recounted on {out['flops_recounted']['date'][:10]}: the run's own count "
               "missed the forward pass of oneDNN's fused convolution + ReLU (former MFLOP per image: "
               + ", ".join(f"{k} {v:.1f}" for k, v in out["flops_recounted"]["former_mflop_per_image"].items())
               + "); the timings are the run's." if out.get("flops_recounted") else ""),
            "",
            "| model (batch) | (a) cnnlab default | (b) plain PyTorch fp32 DataLoader | (c) Keras fit fp32 "
            "| (c) Keras fit mixed_bfloat16 | a / b | a / best Keras | cnnlab GFLOP/s (of ceiling) |",
            "|---|---|---|---|---|---|---|---|"]
    lines, vs_plain, vs_keras = [], [], []
    for r in out["rows"]:
        a = r["cnnlab"]["median"]
        b = r["plain"]["median"]
        vs_plain.append(a / b)
        kbest = max((r[k]["median"] for k in ("keras_fp32", "keras_bf16") if k in r), default=None)
        if kbest:
            vs_keras.append(a / kbest)
        lines.append(f"| {r['model']} ({r['batch']}) | {cell(r, 'cnnlab')} {r['precision']} | {cell(r, 'plain')} "
                     f"| {cell(r, 'keras_fp32')} | {cell(r, 'keras_bf16')} | {a / b:.2f}x "
                     f"| {f'{a / kbest:.2f}x' if kbest else '—'} "
                     f"| {r['gflops']:.0f} ({100 * r['ceiling_fraction']:.1f}% of {r['precision']}) |"
                     if r["ceiling_fraction"] else f"| {r['gflops']:.0f} |")
    lines.append(f"| **geometric mean** | | | | | **{geomean(vs_plain):.2f}x** | "
                 f"**{geomean(vs_keras):.2f}x** |  |" if vs_keras else
                 f"| **geometric mean** | | | | | **{geomean(vs_plain):.2f}x** | — | |")
    comp = [r for r in out["rows"] if "cnnlab_compile" in r]
    notes = [""]
    threads = out["rows"][0].get("threads") if out["rows"] else None
    if threads:
        notes.append("- Threads: " + ", ".join(f"{k} {v}" for k, v in threads.items()) + ".")
    if out.get("plain_layers") != "stock":
        notes.append("- (b) in this run was the notebook loop around cnnlab's own layers: its fused "
                     "convolution + ReLU and its Keras-order flatten (stock `nn.Conv2d` + `nn.ReLU` "
                     "and `nn.Flatten` since 2026-12-03). A notebook's stock layers are slower, so "
                     "a / b here understates cnnlab's lead over the notebook loop.")
    for r in comp:
        c = r["cnnlab_compile"]["median"]
        notes.append(f"- torch.compile (`--set compile=true`) on {r['model']}: {cell(r, 'cnnlab_compile')} "
                     f"images/s, {c / r['cnnlab']['median']:.2f}x the default path; the first "
                     f"{out['steps']} steps took {r['compile_first_run_s']:.0f} s including compilation.")
    tta = time_to_accuracy(out) if with_time_to_accuracy else []
    return "\n".join(head + lines + notes + tta) + "\n"


# the seed recipes of each timed model, and training-split sizes, for time-to-accuracy
SEED_RECIPES = {"mnist-cnn-small": ("mnist-cnn-small", "mnist-cnn-small-fast"),
                "mnist-cnn-wide": ("mnist-cnn-wide", "mnist-cnn-wide-fast"),
                "cifar10-cnn-3block": ("cifar10-cnn-3block", "cifar10-cnn-3block-fast"),
                "resnet20": ("cifar10-resnet20", "cifar10-resnet20-fast")}
TRAIN_IMAGES = {"mnist": 60_000, "cifar10": 50_000}


def time_to_accuracy(out) -> list[str]:
    """Time-to-accuracy of the seed recipes, from the full runs in results/ (``cnnlab reproduce``),
    next to the time the seed's own schedule would take at Keras' measured speed."""
    from statistics import mean, median

    from cnnlab.recipes import get_recipe
    from cnnlab.reproduce import format_time_to_target
    lines = ["", "## Time to accuracy", "",
             "Full runs recorded by `cnnlab reproduce` (benchmarks/results/*.json, plain recipes only): "
             "test top-1 (mean over seeds), median training minutes, and median minutes until the "
             "validation top-1 first reached the seed's reported figure (— where the run predates "
             "that record). *Seed schedule at Keras speed* is the faithful recipe's epochs x training "
             "images / Keras' best images/s above: training steps only, an estimate, not a run. The "
             "full runs' machine may differ from this page's (column *run on*).", "",
             "| model | recipe | target (%) | test top-1 (%) | seeds | minutes | to target (val, min) "
             "| seed schedule at Keras speed (min) | run on |", "|---|---|---|---|---|---|---|---|---|"]
    for r in out["rows"]:
        kbest = max((r[k]["median"] for k in ("keras_fp32", "keras_bf16") if k in r), default=None)
        faithful = get_recipe(SEED_RECIPES[r["model"]][0])
        n = TRAIN_IMAGES[faithful.dataset] * (1 - faithful.val_fraction)
        keras_min = f"{faithful.epochs * n / kbest / 60:.1f}" if kbest else "—"
        for name in SEED_RECIPES[r["model"]]:
            path = HERE / "results" / f"{name}.json"
            recs = [x for x in json.loads(path.read_text()) if not x.get("overrides")
                    and not x.get("superseded")] if path.exists() else []
            if not recs:
                lines.append(f"| {r['model']} | {name} | — | not run yet | 0 | — | — | {keras_min} | — |")
                continue
            target = get_recipe(name).expected_accuracy
            to_t = format_time_to_target(recs)
            cpus = " and ".join(dict.fromkeys(x["machine"]["cpu"] for x in recs))
            lines.append(f"| {r['model']} | {name} | {100 * target:.2f} | "
                         f"{mean(100 * x['test_accuracy'] for x in recs):.2f} | {len(recs)} | "
                         f"{median(x['train_time_s'] for x in recs) / 60:.1f} | {to_t} | {keras_min} "
                         f"| {cpus} |")
    return lines


if __name__ == "__main__":
    main()
