"""Denormal floats and training speed: cnnlab's flush-to-zero mode on vs off, side by side.

    python benchmarks/denormals.py --state runs/reproduce/cifar10-alexnet-seed0/last_state.pt

Takes the training state of a long run (weights and Adam's moments, as ``cnnlab`` keeps it in
``last_state.pt``) and times further training steps from it in two processes, interleaved round
by round on the same random in-memory batches: one with denormals flushed to zero from its first
instruction (``cnnlab.device.flush_denormals``, what ``cnnlab train`` does), one without (the
PyTorch default). Each process builds the run's recipe with ``cnnlab.runs.prepare`` (the
``cnnlab train`` path) and loads the state into it. Reports images/s (median, min-max), the
share of Adam's first and second moments that are denormal before and after the timed steps,
and the run's own epoch times from its metrics.csv. With ``--fresh`` a third process, flush on,
starts from the recipe's initial weights instead of the state, to show whether a trained state
is slower for other reasons. Writes benchmarks/DENORMALS.md.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent


def denormal_share(optimizer) -> dict[str, float]:
    """Fraction of the entries of Adam's ``exp_avg`` and ``exp_avg_sq`` that are denormal, read
    from their bits (zero exponent, nonzero mantissa): float comparisons would see zeros where
    denormals-are-zero is on."""
    import torch
    out = {}
    for key in ("exp_avg", "exp_avg_sq"):
        bad = total = 0
        for st in optimizer.state.values():
            bits = st[key].float().contiguous().view(torch.int32)
            bad += int(((bits & 0x7F800000) == 0).logical_and_((bits & 0x007FFFFF) != 0).sum())
            total += bits.numel()
        out[key] = bad / max(total, 1)
    return out


def child(flush: bool) -> None:
    """A JSON server: ``build`` loads the state into the recipe's model and optimizer, ``run``
    trains ``steps`` batches and answers images/s."""
    if flush:  # first, so that PyTorch's OpenMP workers inherit the mode
        from cnnlab.device import flush_denormals
        flush_denormals()
    import torch
    torch.ones(1 << 20).sum()  # start the OpenMP workers now, in this process's mode
    from cnnlab.bench import random_dataset
    from cnnlab.runs import prepare, run_meta, saved_recipe
    from cnnlab.training import load_optimizer_state
    s = batch = None
    for line in sys.stdin:
        req = json.loads(line)
        if req["cmd"] == "build":
            run_dir = Path(req["state"]).parent
            recipe = saved_recipe(run_dir).override({"epochs": 1, "val_fraction": 0.0})
            batch = recipe.batch_size
            meta = run_meta(run_dir)["dataset"]
            ds = random_dataset(tuple(meta["image_shape"]), batch * req["steps"], classes=len(meta["classes"]))
            s = prepare(recipe, ds, "cpu", checkpoint=None, log=lambda m: None, progress=False)
            state = torch.load(req["state"], weights_only=True)
            if not req.get("fresh"):  # else: the recipe's initial weights, Adam without moments
                s.model.load_state_dict(state["model"])
                load_optimizer_state(s.optimizer, state["optimizer"])  # as a resumed run does
            reply = {"recipe": recipe.name, "model": recipe.model, "batch": batch, "epoch": state["epoch"] + 1,
                     "precision": s.precision, "denormal_before": denormal_share(s.optimizer)}
        elif req["cmd"] == "run":
            t0 = time.perf_counter()
            s.trainer.fit(s.train, None, epochs=1)
            reply = {"img_s": len(s.train.labels) / (time.perf_counter() - t0)}
        else:  # "finish"
            reply = {"denormal_after": denormal_share(s.optimizer)}
        print(json.dumps(reply), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--state", help="a run's last_state.pt (required)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=40, help="training steps per timed sample")
    ap.add_argument("--fresh", action="store_true",
                    help="also time flush on from the recipe's initial weights instead of the state")
    ap.add_argument("--out", default=str(HERE / "DENORMALS.md"))
    ap.add_argument("--child", choices=("on", "off"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        return child(a.child == "on")
    if not a.state or not Path(a.state).is_file():
        ap.error(f"--state: no such file: {a.state}")
    from cnnlab import launch
    launch.relaunch_script()  # the cnnlab command's launch settings, as speed.py
    from cnnlab.bench import interleave, machine_line, median_span
    from cnnlab.device import describe_machine
    from speed import Peer

    build = {"cmd": "build", "state": str(Path(a.state).resolve()), "steps": a.steps}
    peers = {mode: Peer(f"flush denormals {mode}", [sys.executable, __file__, "--child", mode], None, build)
             for mode in ("on", "off")}
    if a.fresh:  # flush on from the recipe's initial weights: is a trained state slower otherwise?
        peers["fresh"] = Peer("flush on, initial weights", [sys.executable, __file__, "--child", "on"], None,
                              {**build, "fresh": True})
    for p in peers.values():
        p.steps = a.steps
    res = interleave(peers, a.rounds, log=lambda m: print(m, flush=True))
    after = {mode: p.ask({"cmd": "finish"})["denormal_after"] for mode, p in peers.items()}
    for p in peers.values():
        p.close()
    info = peers["on"].info
    epochs = []
    metrics = Path(a.state).parent / "metrics.csv"
    if metrics.exists():
        rows = metrics.read_text().splitlines()
        col = rows[0].split(",").index("time_s")
        epochs = [float(r.split(",")[col]) for r in rows[1:]]
    m = describe_machine()
    date = datetime.now(timezone.utc).isoformat(timespec="seconds")
    on, off = res["on"].median, res["off"].median

    def share(d):
        return f"{100 * d['exp_avg']:.0f}% / {100 * d['exp_avg_sq']:.0f}%"
    lines = [
        "# Denormal floats: flush-to-zero on vs off", "",
        f"One interleaved run, {date[:10]}, {a.rounds} rounds of {a.steps} training steps per mode "
        f"(forward, cross-entropy, backward, Adam; the `cnnlab train` path, random in-memory batches), "
        f"starting from the state of `{info['recipe']}` after epoch {info['epoch']} "
        f"({info['model']}, batch {info['batch']}, {info['precision']}). Training images/s, median "
        "(min-max). Written by `python benchmarks/denormals.py`.", "",
        machine_line(m), "",
        "| flush denormals to zero | images/s | ms per step | Adam moments denormal before (exp_avg / exp_avg_sq) | after the timed steps |",
        "|---|---|---|---|---|",
        f"| on (cnnlab's default) | {median_span(res['on'].samples)} | {1000 * info['batch'] / on:.0f} | {share(info['denormal_before'])} | {share(after['on'])} |",
        f"| off (PyTorch's default) | {median_span(res['off'].samples)} | {1000 * info['batch'] / off:.0f} | {share(peers['off'].info['denormal_before'])} | {share(after['off'])} |",
    ]
    summary = f"On / off: **{on / off:.2f}x**."
    if a.fresh:
        fresh = res["fresh"].median
        lines.append(f"| on, from the recipe's initial weights instead of the state | {median_span(res['fresh'].samples)} | "
                     f"{1000 * info['batch'] / fresh:.0f} | (no moments yet) | {share(after['fresh'])} |")
        summary += f" On, trained state / initial weights: **{on / fresh:.2f}x**."
    lines += ["", summary]
    if len(epochs) >= 20:
        lines += ["", f"The run itself (its metrics.csv, as recorded, in whatever flush mode it ran "
                      f"and with any epoch that shared the machine with other work): median epoch {statistics.median(epochs[:10]):.0f} s "
                      f"over epochs 1-10, {statistics.median(epochs[-10:]):.0f} s over epochs "
                      f"{len(epochs) - 9}-{len(epochs)}."]
    Path(a.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
