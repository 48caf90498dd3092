"""``cnnlab reproduce``: run recipes in full, several seeds each, and keep a results table.

Each finished (recipe, seed) run writes one JSON record to ``benchmarks/results/<recipe>.json``:
one current record per seed and overrides (a seed run again supersedes its record, which stays
in the file marked ``superseded``); other seeds and overrides accumulate, whenever and wherever
they ran. ``benchmarks/RESULTS.md`` is then rebuilt
from all records. Every record carries the machine, versions, date, precision, the dataset
copy (lossy or not) and its run's start time (``run_started``: with the seed, which run it is).
"""
from __future__ import annotations

import json
import shutil
import statistics
import tempfile
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from ._io import write_json, write_text
from .device import describe_machine
from .recipes import RECIPES, Recipe, get_recipe
from .registry import UnknownNameError, did_you_mean


def time_to_accuracy(epochs: list[dict], target: float | None, key: str = "val_accuracy") -> float | None:
    """Training seconds until ``key`` first reached ``target`` (a fraction), summing the epochs'
    ``time_s`` up to and including that epoch; ``None`` when it never did or there is no target.
    Measured on the validation split, so that the test split stays untouched until the end."""
    if not target:
        return None
    elapsed = 0.0
    for e in epochs:
        elapsed += e.get("time_s", 0.0)
        if e.get(key, -1.0) >= target:
            return round(elapsed, 1)
    return None


def format_time_to_target(records: list[dict]) -> str:
    """Median minutes until validation reached the target over ``records``, for the tables:
    "—" where any record lacks the field (recorded before it was kept, or trained without a
    validation split), "not reached (k of n)" where some run never reached the target (or had
    no target). :func:`build_table` itself prints "—" for a recipe without a target and "no val.
    split" for one trained without a validation split."""
    if not records or any("val_time_to_target_s" not in r for r in records):
        return "—"
    reached = [r["val_time_to_target_s"] for r in records]
    if None in reached:
        return f"not reached ({reached.count(None)} of {len(reached)})"
    return f"{statistics.median(reached) / 60:.1f}"


# recipe fields that describe a run rather than set its training
_DESCRIPTIVE = {"source", "literature", "expected_accuracy", "test_informed"}


def _training_settings(recipe: Recipe, ignore=()) -> dict:
    return {k: v for k, v in recipe.model_dump().items() if k not in _DESCRIPTIVE | set(ignore)}


def _check_same_training(run_dir: Path, recipe: Recipe, ignore=()) -> None:
    """Raise ValueError naming the fields where the run in ``run_dir`` was trained otherwise."""
    from .runs import saved_recipe
    had = _training_settings(saved_recipe(run_dir), ignore)
    want = _training_settings(recipe, ignore)
    if had != want:
        diff = sorted(k for k in want if had.get(k) != want[k])
        raise ValueError(f"{run_dir}: trained with other settings than recipe {recipe.name} "
                         f"now has: {', '.join(diff)}")


def run_and_record(name: str, seeds: list[int], results_dir: Path, data_dir=None, overrides=None,
                   keep_runs: Path | None = None, log=print, device: str | None = None,
                   resume: bool = False, on_saved=None) -> list[dict]:
    """Train recipe ``name`` once per seed and append a record per run to its JSON file, calling
    ``on_saved()`` after each (:func:`reproduce` rebuilds the table, so that a stop keeps it current).

    With ``resume`` (and ``keep_runs``), a seed whose kept run folder holds an unfinished run (one
    killed mid-way: ``last_state.pt`` but no ``test_metrics.json``) continues from its last
    finished epoch instead of starting again, so a recipe that takes hours can run in pieces;
    its record lists the resumptions and sums the pieces' training time. A kept run that finished
    is left alone (it was recorded when it finished; a ``tta`` the recipe adopted since is
    :func:`retest`'s to apply). Every seed's kept folder is checked against the recipe's settings
    before any training starts; the data it read are checked when it resumes (a refusal then
    comes after the seeds before it have trained and been recorded).

    Raises:
        ValueError: ``resume`` without ``keep_runs``, ``seed`` in ``overrides`` (the seeds are
            ``seeds``), or a kept run trained with other settings.
        FileExistsError: without ``resume``, a seed's kept folder already holds a run (training
            into it would mix two runs' files).
    """
    from .runs import run_meta, train
    _refuse_seed(overrides)
    if resume and keep_runs is None:
        raise ValueError("resuming needs the folder the runs were kept in (--keep-runs DIR)")

    def save(rec: dict) -> None:
        _save_record(results_dir / f"{name}.json", rec, log)
        if on_saved:
            on_saved()

    plan = []  # (seed, recipe, kept run folder or None, resume it?)
    for seed in seeds:
        recipe = _pretrained_kept(get_recipe(name, overrides).override({"seed": seed}), keep_runs)
        run_dir = (keep_runs / f"{name}-seed{seed}") if keep_runs else None
        started = run_dir is not None and (run_dir / "last_state.pt").exists()
        if started and not resume:
            raise FileExistsError(f"{run_dir}: holds an earlier run of {name}; continue it with "
                                  "--resume, or move the folder away to train afresh")
        if started:
            finished = (run_dir / "test_metrics.json").exists()
            # a finished run is not trained again: a test-time augmentation adopted since is --retest's
            _check_same_training(run_dir, recipe, ignore=("tta",) if finished else ())
            if finished:
                test = json.loads((run_dir / "test_metrics.json").read_text())
                started_at = run_meta(run_dir).get("started")
                if _recorded(results_dir / f"{name}.json", seed, overrides, started_at, test["train_time_s"]):
                    log(f"{run_dir}: finished and recorded already; not run again")
                    continue
                # killed after its test figures, before its record (while plotting): record it now
                from .runs import _plots_missing, load_run
                log(f"{run_dir}: finished, not yet recorded; recording it")
                run = (train(recipe, data_dir=data_dir, log=log, progress=False, device=device, resume=run_dir)
                       if _plots_missing(run_dir) else load_run(run_dir, device="cpu"))  # and its plots
                save(_record(name, seed, overrides, run, recipe))
                continue
        plan.append((seed, recipe, run_dir, started))
    records = []
    for seed, recipe, run_dir, started in plan:
        run_dir = run_dir or Path(tempfile.mkdtemp(prefix=f"{name}-"))  # made when its seed trains
        try:
            run = train(recipe, data_dir=data_dir, run_dir=run_dir, log=log, progress=False, device=device,
                        resume=run_dir if started else None)
            rec = _record(name, seed, overrides, run, recipe)
            save(rec)
        finally:
            if keep_runs is None:  # a temporary folder: the record is what is kept
                shutil.rmtree(run_dir, ignore_errors=True)
        records.append(rec)
    return records


def _pretrained_kept(recipe: Recipe, keep_runs: Path | None) -> Recipe:
    """``recipe`` with a ``pretrained`` recipe name resolved to that recipe's run in ``keep_runs``
    (the same seed's first), where the folder holds one: ``reproduce 'catsdogs-*' --keep-runs DIR``
    fine-tunes the feature extraction runs it just made there, not what is newest under ``runs/``
    (where the name alone looks; one level deeper only, so a DIR elsewhere was never searched).

    Raises:
        FileNotFoundError: ``keep_runs`` holds runs of that recipe, but none has finished.
    """
    from .transfer import _run_recipe, find_weights
    source = recipe.pretrained
    if keep_runs is None or source not in RECIPES or Path(source).exists():
        return recipe
    if not any(_run_recipe(d).get("name") == source for d in Path(keep_runs).glob("*")):
        return recipe
    return recipe.override({"pretrained": str(find_weights(source, keep_runs, recipe.seed).parent)})


def _record(name: str, seed: int, overrides, run, recipe: Recipe) -> dict:
    """A results record of a finished run (:class:`cnnlab.runs.Run`)."""
    t = run.test_metrics
    rec = {"recipe": name, "seed": seed, "test_accuracy": t["accuracy"], "test_loss": t["loss"],
           "epochs_run": t["epochs_run"], "best_epoch": t["best_epoch"],
           "train_time_s": t["train_time_s"], "precision": t["precision"],
           "dataset_lossy": t["dataset_lossy"], "overrides": overrides or {},
           "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    from .runs import run_meta
    meta = run_meta(run.dir)
    rec["run_started"] = meta.get("started")  # with the seed, which run this is (kept folders)
    # where the run trained (its last piece's machine), not where this record is written
    rec.update(device=meta["resolved"]["device"].split(":")[0],
               machine=(meta.get("resumed") or [{}])[-1].get("machine") or meta.get("machine") or describe_machine())
    if "accuracy_without_tta" in t:  # the recipe's figure is with test-time augmentation
        rec.update(tta=t["tta"], test_accuracy_without_tta=t["accuracy_without_tta"])
    if meta.get("resumed"):  # where the first piece ran, and each piece after it
        rec.update(started_on=meta["machine"], resumed=meta["resumed"])
    if run.history["val_accuracy"]:  # no validation split (best recipes): nothing to time
        rec.update(best_val_accuracy=max(run.history["val_accuracy"]),
                   val_time_to_target_s=time_to_accuracy(run.history.epochs, recipe.expected_accuracy))
    return rec


def _refuse_seed(overrides) -> None:
    if overrides and "seed" in overrides:
        raise ValueError("--set seed=N would be ignored (each run's seed is one of --seeds): give the "
                         "seeds with --seeds N [N ...]")


def _overrides_key(overrides) -> str:
    """The one text of a set of overrides, by which records are one run (:func:`_same_run`) and
    one row: sorted keys, a whole float as an int (``lr=1`` and ``lr=1.0`` train alike)."""
    def canonical(v):
        if isinstance(v, dict):
            return {k: canonical(x) for k, x in v.items()}
        if isinstance(v, list):
            return [canonical(x) for x in v]
        return int(v) if isinstance(v, float) and v.is_integer() else v
    return json.dumps(canonical(overrides or {}), sort_keys=True)


def _same_run(rec: dict, seed: int, overrides) -> bool:
    return rec.get("seed") == seed and _overrides_key(rec.get("overrides")) == _overrides_key(overrides)


def _of_run(rec: dict, seed: int, overrides, started: str | None, train_time_s: float) -> bool:
    """Whether ``rec`` is the record of the run of ``seed`` and ``overrides`` that started at
    ``started`` (its recipe.json's); a record from before ``run_started`` was kept: by training
    time (never by test figures, which --retest changes)."""
    if not _same_run(rec, seed, overrides):
        return False
    return rec["run_started"] == started if "run_started" in rec else rec["train_time_s"] == train_time_s


def _recorded(path: Path, seed: int, overrides, started: str | None, train_time_s: float) -> bool:
    """Whether the results hold the record of the run that started at ``started``, current or
    superseded since (the seed run again elsewhere), not just an earlier run of the same seed.
    Records from before ``run_started`` was kept count while current."""
    return path.exists() and any(
        _of_run(r, seed, overrides, started, train_time_s) and ("run_started" in r or not r.get("superseded"))
        for r in json.loads(path.read_text()))


def _save_record(path: Path, rec: dict, log) -> None:
    """Add ``rec`` to the recipe's records; one current record per seed and overrides: a seed run
    again supersedes its earlier record (said in the log), which stays in the file marked
    ``superseded``, so that the table counts each seed once and reruns stay visible."""
    old = json.loads(path.read_text()) if path.exists() else []
    for r in old:
        if _same_run(r, rec["seed"], rec["overrides"]) and not r.get("superseded"):
            r["superseded"] = {"date": rec["date"], "reason": "the same seed and overrides run again"}
            log(f"{path.name}: seed {rec['seed']}'s earlier record (of {str(r.get('date', '?'))[:10]}) "
                "superseded by this run's (kept in the file)")
    write_json(path, old + [rec])


def supersede_records(path: Path, reason: str) -> int:
    """Mark every current record in the results file ``path`` superseded, with ``reason`` (e.g.
    the dataset's split changed, so they no longer measure the recipe); returns how many. They
    stay in the file; the table leaves them out and marks ° the rows that counted them (the
    recipe's, and that of each set of overrides)."""
    records = json.loads(path.read_text())
    date = datetime.now(timezone.utc).isoformat(timespec="seconds")
    n = 0
    for r in records:
        if not r.get("superseded"):
            r["superseded"] = {"date": date, "reason": reason}
            n += 1
    write_json(path, records)
    return n


def retest(name: str, kept_runs: Path, results_dir: Path, data_dir=None, log=print) -> list[dict]:
    """Re-evaluate the kept run folders of recipe ``name`` on the test split under its *current*
    test-time augmentation (``tta``), and update their records; nothing is trained.

    For a recipe that adopts ``tta`` after its runs were recorded (the choice made on the
    validation split): TTA changes only the final evaluation, so the kept best checkpoints are
    exactly what a new run would have trained. Each updated record gets ``retested`` (date, tta)
    and the table marks the row. Run folders are ``kept_runs/<name>-seed<N>`` as written by
    ``--keep-runs``; a record matches its folder by seed and start time (older records: training time).

    Raises:
        FileNotFoundError: no run folder of ``name`` under ``kept_runs``.
        ValueError: a run was trained with other settings than the current recipe (anything but
            ``tta``, ``seed`` and the descriptive fields), or has no matching record.
    """
    from .runs import evaluate_run, run_meta
    recipe = get_recipe(name)
    path = results_dir / f"{name}.json"
    records = json.loads(path.read_text()) if path.exists() else []
    dirs = sorted(Path(kept_runs).glob(f"{name}-seed*"))
    if not dirs:
        raise FileNotFoundError(f"{kept_runs}: no run folder {name}-seed<N> to retest")
    updated = []
    for d in dirs:
        _check_same_training(d, recipe, ignore=("tta", "seed"))
        meta = run_meta(d)
        seed = meta["recipe"]["seed"]
        train_time = json.loads((d / "test_metrics.json").read_text())["train_time_s"]
        match = [r for r in records if not r.get("superseded")
                 and _of_run(r, seed, None, meta.get("started"), train_time)]
        if len(match) != 1:
            raise ValueError(f"{d}: no current record of seed {seed}'s run (started {meta.get('started')}, "
                             f"train_time_s {train_time}) in {path}")
        t = evaluate_run(d, "best", data_dir=data_dir, tta=recipe.tta)
        rec = match[0]
        rec.update(test_accuracy=t["accuracy"], test_loss=t["loss"],
                   retested={"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "tta": recipe.tta})
        for key in ("tta", "test_accuracy_without_tta"):  # the old evaluation's, if any
            rec.pop(key, None)
        if "accuracy_without_tta" in t:
            rec.update(tta=t["tta"], test_accuracy_without_tta=t["accuracy_without_tta"])
        log(f"{d.name}: test top-1 {100 * t['accuracy']:.2f}% with tta={recipe.tta}"
            + (f" (without: {100 * t['accuracy_without_tta']:.2f}%)" if "accuracy_without_tta" in t else ""))
        updated.append(rec)
    write_json(path, records)
    left = [r for r in records if not r.get("superseded") and not r.get("overrides")
            and not any(r is u for u in updated)]
    if left:
        log(f"warning: {path.name}: " + ", ".join(f"seed {r['seed']} (tta={r.get('tta', 'none')})" for r in left)
            + f" not retested (no kept run folder under {kept_runs}); the table says where a row mixes TTA")
    return updated


def mean_std(values) -> str:
    """``"91.08 ± 0.10"``: mean and sample standard deviation to 2 decimals; the mean alone for
    one value."""
    values = list(values)
    spread = f" ± {statistics.stdev(values):.2f}" if len(values) > 1 else ""
    return f"{statistics.mean(values):.2f}{spread}"


def _accuracy_cell(recs: list[dict], tta_now: str) -> str:
    """Test top-1 (:func:`mean_std`) and the test-time augmentation it was measured with: "(flip
    TTA; without: ...)", "(mixed: k of n with flip TTA; all without: ...)" where only some records
    were, "(no TTA)" where none was but ``tta_now`` (the recipe's now) is one: a record without
    ``tta`` was evaluated without (made before the recipe adopted it)."""
    cell = mean_std(100 * r["test_accuracy"] for r in recs)
    with_tta = [r for r in recs if "test_accuracy_without_tta" in r]
    plain = statistics.mean(100 * r.get("test_accuracy_without_tta", r["test_accuracy"]) for r in recs)
    kinds = "/".join(sorted({r["tta"] for r in with_tta}))
    if len(with_tta) == len(recs):
        return f"{cell} ({kinds} TTA; without: {plain:.2f})"
    if with_tta:
        return f"{cell} (mixed: {len(with_tta)} of {len(recs)} with {kinds} TTA; all without: {plain:.2f})"
    return cell + (" (no TTA)" if tta_now != "none" else "")


def _machine_line(m: dict, device: str) -> str:
    """How a record's machine is named under the table: the GPU first where the run used one; the
    CPU's instruction set and family/model where recorded (one CPU name covers several generations)."""
    about = "; ".join(a for a in (m.get("cpu_isa"), m.get("cpu_family_model") and
                                  f"family/model {m['cpu_family_model']}") if a)
    cpu = f"{m['cpu']} ({about})" if about else m["cpu"]
    line = f"{cpu}, {m['cores']} cores, torch {m['torch']}, Python {m['python']}"
    if device != "cpu":
        line = f"{m.get('gpu', device)} (CUDA {m.get('cuda', '?')}) with {line}"
    return line


def _machines(recs: list[dict]) -> str:
    """The machines a row's records ran on: all of them (its minutes are their median), sorted, so
    that the records' order does not make two names of one set of machines."""
    return " and ".join(sorted({_machine_line(r["machine"], r.get("device", "cpu")) for r in recs}))


def _joined(values) -> str:
    """``"bf16/fp32"``: a row's distinct values of a field."""
    return "/".join(sorted(set(values)))


def _variant_rows(records: list[dict]) -> list[tuple[str, str, bool, bool]]:
    """``(row, machine, resumed, superseded)`` of the override table for one results file (all its
    records): one row per set of overrides with current records, marked ° where it has superseded
    ones."""
    by_override: dict[str, list] = {}
    for r in records:
        if r.get("overrides") and not r.get("superseded") and r["recipe"] in RECIPES:
            by_override.setdefault(_overrides_key(r["overrides"]), []).append(r)
    old = {_overrides_key(r["overrides"]) for r in records if r.get("overrides") and r.get("superseded")}
    out = []
    for okey, rs in by_override.items():
        key = json.dumps(rs[0]["overrides"], sort_keys=True)  # as the first record spells them
        resumed = any("resumed" in r for r in rs)
        tta_now = rs[0]["overrides"].get("tta", get_recipe(rs[0]["recipe"]).tta)
        marks = (" §" if resumed else "") + (" °" if okey in old else "")
        row = (f"| {rs[0]['recipe']}{marks} | `{key}` "
               f"| {_accuracy_cell(rs, tta_now)} | {len(rs)} "
               f"| {statistics.median(r['train_time_s'] for r in rs) / 60:.1f} "
               f"| {_joined(r['precision'] for r in rs)} |")
        out.append((row, _machines(rs), resumed, okey in old))
    return out


def _recipe_row(recs: list[dict]) -> tuple[str, str, bool, bool]:
    """``(row, machines, retested, resumed)`` of the main table for one recipe's plain records."""
    recipe = get_recipe(recs[0]["recipe"])
    mean = statistics.mean(100 * r["test_accuracy"] for r in recs)
    cell = _accuracy_cell(recs, recipe.tta)
    times = [r["train_time_s"] for r in recs]
    to_target = ("—" if not recipe.expected_accuracy else "no val. split" if recipe.val_fraction == 0
                 else format_time_to_target(recs))
    expected = f"{100 * recipe.expected_accuracy:.2f}" if recipe.expected_accuracy else "—"
    # a mean equal to the target in decimal can fall a rounding step under it in binary
    met = mean >= 100 * recipe.expected_accuracy - 1e-9 if recipe.expected_accuracy else None
    meets = "—" if met is None else ("yes" if met else "**no**")
    if meets == "**no**" and f"{mean:.2f}" == expected:  # 90.996 shows as 91.00 beside "no": say why
        meets = f"**no** (mean {mean:.3f})"
    # the lossy copy in shared data is CIFAR-10's
    lossy = "CIFAR-10 JPEG copy (lossy)" if recipe.dataset.startswith("cifar10") else "a lossy copy"
    copies = sorted({lossy if r["dataset_lossy"] else "official files" for r in recs})
    copy = copies[0] if len(copies) == 1 else "mixed: " + " and ".join(copies)
    devices = _joined(r.get("device", "cpu") for r in recs)  # records from before "device" ran on the CPU
    retested, resumed = any("retested" in r for r in recs), any("resumed" in r for r in recs)
    mark = (" †" if retested else "") + (" §" if resumed else "")
    first, final = min(r["date"][:10] for r in recs), max(r["date"][:10] for r in recs)
    dates = first if first == final else f"{first} to {final}"  # seeds run on different days
    row = (f"| {recipe.name}{mark} | {recipe.kind} | {recipe.source} | {expected} | {recipe.literature or '—'} "
           f"| {cell} | {meets} "
           f"| {len(recs)} | {statistics.mean(r['epochs_run'] for r in recs):g} "
           f"| {statistics.median(times) / 60:.1f} | {to_target} "
           f"| {_joined(r['precision'] for r in recs)}{'' if devices == 'cpu' else ' on ' + devices} | {copy} "
           f"| {dates} |")
    return row, _machines(recs), retested, resumed


def build_table(results_dir: Path) -> str:
    """The markdown results table from every record under ``results_dir``: one row per recipe
    (its plain records), then one per recipe and set of overrides."""
    rows, machines, variants, variant_machines = [], [], [], []  # a machine per row of each table
    retested, resumed = [], []  # whether the row's records were re-tested / resumed, per row
    variants_resumed = False
    superseded, informed = False, []
    for path in sorted(results_dir.glob("*.json")):
        records = json.loads(path.read_text())
        if not isinstance(records, list):  # another benchmark's file (speed.json)
            continue
        for row, machine, was_resumed, had_old in _variant_rows(records):
            variants.append(row)
            variant_machines.append(machine)
            variants_resumed = variants_resumed or was_resumed
            superseded = superseded or had_old
        old = [r for r in records if r.get("superseded") and not r.get("overrides")]
        recs = [r for r in records if not r.get("superseded") and not r.get("overrides")]
        if not recs or recs[0]["recipe"] not in RECIPES:
            continue
        row, machine, was_retested, was_resumed = _recipe_row(recs)
        recipe = get_recipe(recs[0]["recipe"])
        marks = (" ¶" if recipe.test_informed else "") + (" °" if old else "")
        if recipe.test_informed:
            informed.append(f"{recipe.name}: {recipe.test_informed}")
        superseded = superseded or bool(old)
        name, rest = row.split(" |", 1)
        row = f"{name}{marks} |{rest}"
        rows.append(row)
        machines.append(machine)
        retested.append(was_retested)
        resumed.append(was_resumed)
    head = ["# Results: every recipe run in full", "",
            "Test top-1 on the official test split (mean ± sample std over the seeds run); the best "
            "checkpoint is chosen on the validation split (on the training split for the *no val. "
            "split* rows, where it is in practice the last, annealed epoch), never on the test split. "
            "Wall time is the "
            "median training time per run on the machine below; *to target* is the median training "
            "time until the validation top-1 first reached the reported figure (time-to-accuracy; "
            "measured on validation so that the test split stays untouched; — for recipes without "
            "a reported figure and for runs recorded before it was kept; *no val. split* for recipes "
            "trained without a validation split, "
            "with nothing to time); *date* is the day of the row's runs (first to last, where its seeds ran on "
            "different days). Regenerate with `cnnlab reproduce PATTERN`.", "",
            "| recipe | kind | source | reported (%) | literature | ours (%) | meets reported | seeds | epochs | minutes | to target (val, min) | precision | data | date |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    foot = ["", ""]
    if machines or variant_machines:  # the most common machine is "the machine below"; others are marked
        main = Counter(machines or variant_machines).most_common(1)[0][0]
        others = sorted(set(machines + variant_machines) - {main})
        for table, table_machines in ((rows, machines), (variants, variant_machines)):
            for i, m in enumerate(table_machines):
                if m != main:
                    name, rest = table[i].split(" |", 1)
                    table[i] = f"{name} ‡{others.index(m) + 1} |{rest}"
        foot[1] = f"Machine: {main}" + "".join(f"; ‡{j + 1}: {m}" for j, m in enumerate(others))
    if variants:
        rows += ["", "## The same recipes with overrides (e.g. the fp32 check of the bf16 default)", "",
                 "| recipe | overrides | ours (%) | seeds | minutes | precision |", "|---|---|---|---|---|---|",
                 *variants]
    if any("(no TTA)" in row or "(mixed:" in row for row in rows):
        foot += ["", "TTA: test-time augmentation (the recipe's `tta`). *no TTA*: the recipe now evaluates "
                     "with it, but the row's records were evaluated without (records without a `tta` field, "
                     "made before the recipe adopted it); *mixed*: only some were, the mean (which decides "
                     "*meets reported*) mixes both, and *all without* is every record's figure without it."]
    if any(retested):
        foot += ["", "† Test top-1 re-evaluated from the kept best checkpoints after the recipe adopted "
                     "test-time augmentation, a choice made on the validation split (`cnnlab reproduce "
                     "NAME --retest DIR`): TTA changes only the final evaluation, so training, epochs and "
                     "minutes are those of the recorded runs."]
    if informed:
        foot += ["", "¶ A choice of this recipe was made after a test figure of an earlier version "
                     "had been seen, so its figure is not a clean held-out estimate (each recipe's "
                     "`test_informed` field): " + "; ".join(informed) + "."]
    if superseded:
        foot += ["", "° Earlier records of this row's recipe (and overrides) stay in its file under "
                     "benchmarks/results/, marked `superseded` with the reason (a seed run again, or data "
                     "that changed since); the row counts the current records only."]
    if any(resumed) or variants_resumed:
        foot += ["", "§ Stopped and resumed from its last finished epoch (`cnnlab reproduce NAME "
                     "--keep-runs DIR --resume`): minutes are the training time of the pieces "
                     "together; the record in results/ names each piece's machine."]
    return "\n".join(head + rows + foot) + "\n"


def reproduce(pattern: str = "*", kind: str | None = None, seeds=(0, 1), data_dir=None,
              out_dir: str | Path = "benchmarks", keep_runs: Path | None = None, log=print,
              overrides: dict | None = None, retest_from: Path | None = None,
              device: str | None = None, resume: bool = False) -> str:
    """Run every recipe matching ``pattern`` (and ``kind``), then rewrite ``RESULTS.md``.

    With ``retest_from`` (a ``keep_runs`` folder of earlier runs) nothing is trained: the kept
    runs are re-evaluated under each recipe's current test-time augmentation (:func:`retest`).
    With ``resume``, unfinished runs kept in ``keep_runs`` continue (:func:`run_and_record`).

    Returns:
        The table's markdown.

    Raises:
        UnknownNameError: no recipe (of ``kind``) matches ``pattern``; close names suggested.
        RecipeError: an override one of the recipes cannot take (before anything runs).
        ValueError: ``retest_from`` with ``overrides``, ``keep_runs`` or ``resume``; ``seed`` in
            ``overrides`` (the seeds are ``seeds``).
    """
    names = [n for n in RECIPES.list(pattern) if kind is None or RECIPES.get(n).kind == kind]
    if not names:
        of_kind = [n for n in RECIPES if kind is None or RECIPES.get(n).kind == kind]
        raise UnknownNameError(f"no recipe{f' of kind {kind}' if kind else ''} matches {pattern!r}"
                               f"{did_you_mean(pattern, of_kind)} (PATTERN is a shell pattern: "
                               "'mnist-*', '*resnet20*'; `cnnlab list recipes` shows all)")
    if retest_from is not None and (overrides or keep_runs is not None or resume):
        raise ValueError("--retest re-evaluates kept runs as they are: it takes no --set, "
                         "--keep-runs or --resume")
    _refuse_seed(overrides)
    for name in names:  # every override checked against every recipe before anything runs
        get_recipe(name, overrides)
    out_dir = Path(out_dir)
    results = out_dir / "results"
    results.mkdir(parents=True, exist_ok=True)

    def rebuild() -> str:  # after each record saved: a run stopped later leaves the table current
        table = build_table(results)
        write_text(out_dir / "RESULTS.md", table)
        return table

    for name in names:
        if retest_from is not None:
            log(f"== {name}: retesting the runs kept in {retest_from}")
            retest(name, Path(retest_from), results, data_dir, log=log)
            rebuild()
        else:
            log(f"== {name}: seeds {list(seeds)}")
            run_and_record(name, list(seeds), results, data_dir, overrides=overrides, keep_runs=keep_runs,
                           log=log, device=device, resume=resume, on_saved=rebuild)
    return rebuild()
