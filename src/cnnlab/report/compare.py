"""Several runs side by side (``cnnlab compare RUN_DIR ...``): a table of their figures and one
plot of their validation curves, the way TensorBoard's scalars page is used to compare runs.

Only the run folders' text files are read (``recipe.json``, ``metrics.csv``,
``test_metrics.json``): no model is built and no data is loaded, so it works on runs that are
still training or were stopped.
"""
from __future__ import annotations

import json
import os
from pathlib import Path


def compare_runs(run_dirs: list[str | os.PathLike], plot: str | os.PathLike | None = None) -> list[dict]:
    """The figures of several runs, and optionally their curves as one PNG.

    Args:
        run_dirs: run folders (``cnnlab train``'s output).
        plot: where to write the PNG: validation top-1 and validation loss per epoch, one line
            per run (training loss where a run has no validation split); None for no plot.

    Returns:
        One dict per run, in the given order: ``run`` (the folder), ``label`` (a unique short
        name), ``recipe``, ``epochs`` (run so far), ``best_val_accuracy`` and ``best_val_epoch``
        (the highest validation top-1, None without validation), ``test_accuracy`` (None until
        the run has finished: one resumed for more epochs has not), ``best_epoch`` (the checkpoint
        the test used), ``minutes`` (training time) and ``history`` (:class:`cnnlab.training.History`).

    Raises:
        FileNotFoundError: a folder that is not a run folder (named).
        ValueError: no run folder given, or a ``recipe.json`` that is not one cnnlab wrote (named).
    """
    from ..runs import current_test_metrics, read_metrics_csv, run_meta
    from ..training import History
    if not run_dirs:
        raise ValueError("give at least one run folder to compare")
    rows = []
    for d in map(Path, run_dirs):
        meta = run_meta(d)
        history = read_metrics_csv(d / "metrics.csv") if (d / "metrics.csv").is_file() else History()
        test = json.loads((d / "test_metrics.json").read_text()) if (d / "test_metrics.json").is_file() else {}
        test = current_test_metrics(test, history)  # {} for an earlier end's: resumed since
        val = history["val_accuracy"]
        best = max(range(len(val)), key=val.__getitem__) if val else None
        seconds = test.get("train_time_s", sum(history["time_s"]))
        rows.append({"run": str(d), "label": d.name or str(d), "recipe": meta["recipe"]["name"],
                     "epochs": len(history), "best_val_accuracy": val[best] if val else None,
                     "best_val_epoch": history["epoch"][best] if val else None,
                     "test_accuracy": test.get("accuracy"), "best_epoch": test.get("best_epoch"),
                     "minutes": seconds / 60, "history": history})
    labels = [r["label"] for r in rows]
    for r in rows:  # two folders of the same name (a/run, b/run): label them by their paths
        if labels.count(r["label"]) > 1:
            r["label"] = r["run"]
    if plot is not None:
        from .plots import plot_comparison
        recipes = list(dict.fromkeys(r["recipe"] for r in rows))
        plot_comparison({r["label"]: r["history"] for r in rows}, plot,
                        title=f"{len(rows)} run{'s' * (len(rows) > 1)} of {', '.join(recipes[:3])}"
                              + (f" and {len(recipes) - 3} more recipes" if len(recipes) > 3 else ""))
    return rows


def format_comparison(rows: list[dict]) -> str:
    """:func:`compare_runs`' rows as a markdown table (top-1 in %; — where a figure is missing)."""
    def pct(x):
        return "—" if x is None else f"{100 * x:.2f}"
    lines = ["| run | recipe | epochs | best val top-1 (%) | at epoch | test top-1 (%) | minutes |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['label']} | {r['recipe']} | {r['epochs']} | {pct(r['best_val_accuracy'])} | "
                     f"{r['best_val_epoch'] or '—'} | {pct(r['test_accuracy'])} | {r['minutes']:.1f} |")
    return "\n".join(lines)
