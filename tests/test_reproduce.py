import json

import pytest

from cnnlab.reproduce import build_table, time_to_accuracy
from conftest import real_data


def test_table_from_records(tmp_path):
    machine = {"cpu": "Test CPU", "cores": 2, "torch": "2.13.0", "python": "3.11"}
    recs = [{"recipe": "mnist-cnn-small", "seed": s, "test_accuracy": a, "test_loss": 0.03,
             "epochs_run": 10, "best_epoch": 9, "train_time_s": 300.0, "precision": "bf16",
             "dataset_lossy": False, "overrides": {}, "date": "2026-11-26T05:00:00+00:00",
             "machine": machine} for s, a in ((0, 0.9920), (1, 0.9930))]
    recs.append({**recs[0], "overrides": {"epochs": 1}, "test_accuracy": 0.5})  # not a full run
    (tmp_path / "mnist-cnn-small.json").write_text(json.dumps(recs))
    table = build_table(tmp_path)
    row = next(line for line in table.splitlines() if line.startswith("| mnist-cnn-small"))
    assert "| 99.20 |" in row and "99.25 ± 0.07 | yes |" in row and "| 2 |" in row and "5.0" in row
    assert "Test CPU, 2 cores, torch 2.13.0" in table
    variant = next(line for line in table.splitlines() if '{"epochs": 1}' in line)
    assert "| 50.00 |" in variant  # runs with overrides are listed apart, never mixed in
    assert variant.startswith("| mnist-cnn-small | `")  # on the table's machine: unmarked
    recs[2]["machine"] = {**machine, "cpu": "Other CPU"}
    (tmp_path / "mnist-cnn-small.json").write_text(json.dumps(recs))
    lines = build_table(tmp_path).splitlines()
    variant = next(line for line in lines if '{"epochs": 1}' in line)
    assert variant.startswith("| mnist-cnn-small ‡1 | `") and "‡1: Other CPU, 2 cores" in lines[-1]
    recs[1]["machine"] = {**machine, "cpu": "Other CPU"}  # the seeds of one row on two machines
    (tmp_path / "mnist-cnn-small.json").write_text(json.dumps(recs))
    lines = build_table(tmp_path).splitlines()
    assert lines[-1] == ("Machine: Other CPU, 2 cores, torch 2.13.0, Python 3.11 and Test CPU, 2 cores, "
                         "torch 2.13.0, Python 3.11; ‡1: Other CPU, 2 cores, torch 2.13.0, Python 3.11")
    recs[1]["machine"] = recs[2]["machine"] = machine
    assert "| 5.0 | — |" in row  # records without time-to-target say so
    assert "TTA" not in row
    for r, plain in zip(recs, (0.9900, 0.9910)):
        r.update(tta="flip", test_accuracy_without_tta=plain)
    (tmp_path / "mnist-cnn-small.json").write_text(json.dumps(recs))
    row = next(line for line in build_table(tmp_path).splitlines() if line.startswith("| mnist-cnn-small"))
    assert "99.25 ± 0.07 (flip TTA; without: 99.05) | yes |" in row
    assert row.endswith("| 2026-11-26 |")
    recs[1]["date"] = "2026-11-29T10:59:54+00:00"  # a second seed run days later: the span
    (tmp_path / "mnist-cnn-small.json").write_text(json.dumps(recs))
    row = next(line for line in build_table(tmp_path).splitlines() if line.startswith("| mnist-cnn-small"))
    assert row.endswith("| 2026-11-26 to 2026-11-29 |")
    recs[2]["resumed"] = [{"after_epoch": 1}]  # a run with overrides, stopped and resumed: marked too
    (tmp_path / "mnist-cnn-small.json").write_text(json.dumps(recs))
    table = build_table(tmp_path)
    assert next(line for line in table.splitlines() if '{"epochs": 1}' in line).startswith("| mnist-cnn-small § | `")
    assert "§ Stopped and resumed" in table
    # a mean just under the target rounds to it: the "no" says by how much (target 99.20)
    for r, acc in zip(recs, (0.99195, 0.99199)):
        r.update(test_accuracy=acc)
    (tmp_path / "mnist-cnn-small.json").write_text(json.dumps(recs))
    row = next(line for line in build_table(tmp_path).splitlines() if line.startswith("| mnist-cnn-small |"))
    assert "| 99.20 ± 0.00 (flip TTA; without: 99.05) | **no** (mean 99.197) |" in row
    # a mean equal to the target in decimal, a rounding step under it in binary, meets it
    for r, acc in zip(recs, (0.9919, 0.9921)):
        r.update(test_accuracy=acc)
    (tmp_path / "mnist-cnn-small.json").write_text(json.dumps(recs))
    row = next(line for line in build_table(tmp_path).splitlines() if line.startswith("| mnist-cnn-small |"))
    assert "| yes |" in row


def test_table_names_the_gpu_of_runs_made_on_one(tmp_path):
    """Records keep the device; a GPU run's row says so and the machine line names the GPU,
    so GPU minutes are never read as CPU minutes. Records without a device are CPU runs."""
    machine = {"cpu": "Test CPU", "cores": 16, "torch": "2.11.0+cu130", "python": "3.12",
               "gpu": "NVIDIA H200", "cuda": "13.0"}
    rec = {"recipe": "mnist-cnn-small", "seed": 0, "test_accuracy": 0.99, "test_loss": 0.03,
           "epochs_run": 10, "best_epoch": 9, "train_time_s": 20.0, "precision": "bf16",
           "dataset_lossy": False, "overrides": {}, "date": "2026-11-27T05:00:00+00:00",
           "machine": machine, "device": "cuda"}
    (tmp_path / "mnist-cnn-small.json").write_text(json.dumps([rec]))
    cpu = {"cpu": "Test CPU", "cores": 2, "torch": "2.13.0", "python": "3.11"}
    for name in ("mnist-lenet5", "mnist-cnn-wide"):  # the most common machine: the table's own
        (tmp_path / f"{name}.json").write_text(json.dumps([{**rec, "recipe": name, "machine": cpu,
                                                             "device": "cpu"}]))
    table = build_table(tmp_path)
    row = next(line for line in table.splitlines() if line.startswith("| mnist-cnn-small"))
    assert row.startswith("| mnist-cnn-small ‡1 |") and "| bf16 on cuda |" in row
    assert "Machine: Test CPU, 2 cores, torch 2.13.0, Python 3.11; ‡1: NVIDIA H200 (CUDA 13.0) with Test CPU, 16 cores" in table
    assert "| mnist-lenet5 | faithful |" in table and "| bf16 | official files |" in table
    for name in ("mnist-lenet5", "mnist-cnn-wide"):
        (tmp_path / f"{name}.json").unlink()
    del rec["device"]
    (tmp_path / "mnist-cnn-small.json").write_text(json.dumps([rec]))
    table = build_table(tmp_path)
    assert "| bf16 |" in table and "H200" not in table


def test_superseded_records_stay_out_of_the_table_and_test_informed_rows_are_marked(tmp_path, monkeypatch):
    from cnnlab.recipes import RECIPES, get_recipe
    from cnnlab.reproduce import supersede_records
    machine = {"cpu": "Test CPU", "cores": 2, "torch": "2.13.0", "python": "3.11"}
    recs = [{"recipe": "mnist-cnn-small", "seed": s, "test_accuracy": a, "test_loss": 0.03,
             "epochs_run": 10, "best_epoch": 9, "train_time_s": 300.0, "precision": "bf16",
             "dataset_lossy": False, "overrides": {}, "date": "2026-11-26T05:00:00+00:00",
             "machine": machine} for s, a in ((0, 0.9920), (1, 0.9930))]
    path = tmp_path / "mnist-cnn-small.json"
    path.write_text(json.dumps(recs))
    assert supersede_records(path, "the data changed") == 2
    saved = json.loads(path.read_text())
    assert all(r["superseded"]["reason"] == "the data changed" for r in saved)
    assert "| mnist-cnn-small" not in build_table(tmp_path)  # no current record: no row
    path.write_text(json.dumps(saved + [{**recs[0], "test_accuracy": 0.9900}]))
    table = build_table(tmp_path)
    row = next(line for line in table.splitlines() if line.startswith("| mnist-cnn-small"))
    assert row.startswith("| mnist-cnn-small ° |") and "| 99.00 |" in row and "| 1 |" in row
    assert "° Earlier records of this row's recipe (and overrides) stay in its file" in table
    assert "¶" not in table
    monkeypatch.setitem(RECIPES._items, "mnist-cnn-small",
                        get_recipe("mnist-cnn-small").override({"test_informed": "epochs 5 -> 10 after a test miss"}))
    table = build_table(tmp_path)
    assert next(line for line in table.splitlines() if line.startswith("| mnist-cnn-small")).startswith(
        "| mnist-cnn-small ¶ ° |")
    assert "¶ A choice of this recipe was made after a test figure" in table
    assert "mnist-cnn-small: epochs 5 -> 10 after a test miss." in table


def test_time_to_accuracy_sums_epochs_until_validation_reaches_target():
    epochs = [{"val_accuracy": 0.97, "time_s": 10.0}, {"val_accuracy": 0.991, "time_s": 12.0},
              {"val_accuracy": 0.995, "time_s": 11.0}]
    assert time_to_accuracy(epochs, 0.99) == 22.0
    assert time_to_accuracy(epochs, 0.999) is None
    assert time_to_accuracy(epochs, None) is None


def test_table_time_to_target_column(tmp_path):
    machine = {"cpu": "Test CPU", "cores": 2, "torch": "2.13.0", "python": "3.11"}
    base = {"recipe": "mnist-cnn-small-fast", "test_loss": 0.03, "epochs_run": 8, "best_epoch": 8,
            "train_time_s": 120.0, "precision": "bf16", "dataset_lossy": False, "overrides": {},
            "date": "2026-11-26T05:00:00+00:00", "machine": machine, "test_accuracy": 0.994}
    recs = [{**base, "seed": 0, "val_time_to_target_s": 60.0}, {**base, "seed": 1, "val_time_to_target_s": 84.0}]
    (tmp_path / "mnist-cnn-small-fast.json").write_text(json.dumps(recs))
    row = next(line for line in build_table(tmp_path).splitlines() if line.startswith("| mnist-cnn-small-fast"))
    assert "| 2.0 | 1.2 |" in row
    recs[1]["val_time_to_target_s"] = None
    (tmp_path / "mnist-cnn-small-fast.json").write_text(json.dumps(recs))
    row = next(line for line in build_table(tmp_path).splitlines() if line.startswith("| mnist-cnn-small-fast"))
    assert "not reached (1 of 2)" in row


@pytest.mark.realdata
def test_run_and_record_on_real_iris(tmp_path):
    """A real (tiny) recipe end to end: one record per seed, with the validation fields, and a row."""
    import cnnlab
    from cnnlab.reproduce import run_and_record
    recs = run_and_record("iris-conv1d-fast", [0], tmp_path, data_dir=real_data("iris").parent, keep_runs=tmp_path / "runs",
                          log=lambda m: None)
    saved = json.loads((tmp_path / "iris-conv1d-fast.json").read_text())
    assert saved == recs and saved[0]["seed"] == 0 and saved[0]["device"] in ("cpu", "cuda", "mps")
    # the record is the kept run's: its test figures and its best validation epoch
    kept = tmp_path / "runs" / "iris-conv1d-fast-seed0"
    test = json.loads((kept / "test_metrics.json").read_text())
    assert (saved[0]["test_accuracy"], saved[0]["best_epoch"]) == (test["accuracy"], test["best_epoch"])
    val = cnnlab.load_run(kept).history["val_accuracy"]
    assert saved[0]["best_val_accuracy"] == max(val) and max(val) > val[0]  # it learned
    assert saved[0]["test_accuracy"] > 0.8  # iris: 3 classes, chance is 1/3
    assert saved[0]["val_time_to_target_s"] is None  # the recipe has no target to reach
    assert (tmp_path / "runs" / "iris-conv1d-fast-seed0" / "test_metrics.json").exists()
    row = next(line for line in build_table(tmp_path).splitlines() if line.startswith("| iris-conv1d-fast"))
    assert "not reached" not in row  # no target, nothing to reach


def test_committed_results_table_is_what_its_records_make():
    """benchmarks/RESULTS.md is generated, never edited: it must equal the table its committed
    records build (this also catches marks and footnotes that appear without their rows, e.g.
    from the '§' of the sources' section numbers)."""
    from pathlib import Path
    bench = Path(__file__).resolve().parent.parent / "benchmarks"
    assert build_table(bench / "results") == (bench / "RESULTS.md").read_text()


@pytest.mark.parametrize("name", ["speed", "speed-amd-epyc", "speed-amd-epyc-avx2", "speed-amd-epyc-zen4"])
def test_committed_speed_tables_are_what_their_records_make(name):
    """The SPEED tables are generated too (their time-to-accuracy part from the recipe records):
    a table left behind when the records changed showed figures of deleted runs."""
    import importlib.util
    from pathlib import Path
    bench = Path(__file__).resolve().parent.parent / "benchmarks"
    spec = importlib.util.spec_from_file_location("speed_bench", bench / "speed.py")
    speed = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(speed)
    out = json.loads((bench / "results" / f"{name}.json").read_text())
    assert speed.render(out) == (bench / f"SPEED{name[5:]}.md").read_text()


def test_a_pattern_that_matches_no_recipe_suggests_names_and_writes_nothing(tmp_path):
    """`cnnlab reproduce resnet20` matched nothing (PATTERN is a shell pattern over whole names):
    the error names the recipes that contain it and says how to write the pattern."""
    import pytest
    from cnnlab.registry import UnknownNameError
    from cnnlab.reproduce import reproduce
    with pytest.raises(UnknownNameError, match=r"no recipe matches 'resnet20'; did you mean "
                                               r".*'cifar10-resnet20-fast'.*'\*resnet20\*'"):
        reproduce("resnet20", out_dir=tmp_path / "b")
    with pytest.raises(UnknownNameError, match=r"no recipe of kind best matches 'mnist-lenet5'"):
        reproduce("mnist-lenet5", kind="best", out_dir=tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_bad_overrides_and_retest_with_training_options_are_refused_before_anything_runs(tmp_path):
    # an override one recipe of the pattern cannot take printed its header and made results/ first
    import pytest
    from cnnlab.recipes import RecipeError
    from cnnlab.reproduce import reproduce
    with pytest.raises(RecipeError, match="unknown recipe key 'lrr'"):
        reproduce("mnist-lenet5*", out_dir=tmp_path / "b", overrides={"lrr": 1}, log=print)
    with pytest.raises(ValueError, match="--retest re-evaluates kept runs as they are: it takes no --set"):
        reproduce("mnist-lenet5", out_dir=tmp_path / "b", retest_from=tmp_path, keep_runs=tmp_path / "k")
    assert not (tmp_path / "b").exists()


@pytest.fixture
def toy(monkeypatch, one_thread):
    """A registered 1-epoch recipe "toy" on a small learnable dataset: a seed trains in seconds."""
    from cnnlab import runs
    from cnnlab.recipes import RECIPES, Recipe
    from helpers import toy_dataset
    ds = toy_dataset(n_train=200, n_test=100)
    monkeypatch.setattr(runs, "load_dataset", lambda name, data_dir=None, **kw: ds)
    recipe = Recipe(name="toy", source="test", dataset="toy", model="mnist-cnn-small", epochs=1, batch_size=64,
                    eval_batch_size=100, val_fraction=0.2, precision="fp32")
    monkeypatch.setitem(RECIPES._items, "toy", recipe)
    return recipe


def test_a_kept_run_whose_record_was_superseded_is_not_recorded_again(tmp_path, toy):
    """--keep-runs K --resume after the seed was run again elsewhere: the kept run's record is
    superseded, yet it is the kept run's; recording it again superseded the newer record."""
    from cnnlab.reproduce import _save_record, run_and_record
    [kept] = run_and_record("toy", [0], tmp_path, keep_runs=tmp_path / "K", log=lambda m: None, device="cpu")
    newer = {**kept, "test_accuracy": 0.123, "train_time_s": kept["train_time_s"] + 5,
             "run_started": "2099-01-01T00:00:00+00:00", "date": "2099-01-01T01:00:00+00:00"}
    _save_record(tmp_path / "toy.json", newer, log=lambda m: None)
    msgs = []
    run_and_record("toy", [0], tmp_path, keep_runs=tmp_path / "K", log=msgs.append, device="cpu", resume=True)
    assert any("recorded already" in m for m in msgs)
    current = [r for r in json.loads((tmp_path / "toy.json").read_text()) if not r.get("superseded")]
    assert current == [newer]
    # a record from before run_started was kept, its test figure changed by --retest: still the run's
    old = {k: v for k, v in kept.items() if k != "run_started"}
    (tmp_path / "toy.json").write_text(json.dumps([{**old, "test_accuracy": 0.5, "retested": {"tta": "flip"}}]))
    msgs.clear()
    run_and_record("toy", [0], tmp_path, keep_runs=tmp_path / "K", log=msgs.append, device="cpu", resume=True)
    assert any("recorded already" in m for m in msgs) and len(json.loads((tmp_path / "toy.json").read_text())) == 1


def test_resuming_after_retest_leaves_the_retested_kept_runs_alone(tmp_path, toy, monkeypatch):
    """After --retest adopted TTA, --resume with the old seeds and a new one refused the retested
    runs as "trained with other settings ... tta"; a finished kept run is not trained again."""
    from cnnlab.recipes import RECIPES
    from cnnlab.reproduce import retest, run_and_record

    def quiet(m):
        pass
    run_and_record("toy", [0], tmp_path, keep_runs=tmp_path / "K", log=quiet, device="cpu")
    monkeypatch.setitem(RECIPES._items, "toy", toy.override({"tta": "flip"}))
    [retested] = retest("toy", tmp_path / "K", tmp_path, log=quiet)
    msgs = []
    run_and_record("toy", [0, 1], tmp_path, keep_runs=tmp_path / "K", log=msgs.append, device="cpu", resume=True)
    assert any("seed0: finished and recorded already" in m for m in msgs)
    saved = json.loads((tmp_path / "toy.json").read_text())
    assert [r["seed"] for r in saved] == [0, 1] and saved[0] == retested and saved[1]["tta"] == "flip"


def test_a_stopped_reproduce_leaves_the_table_of_its_saved_records_and_no_empty_folders(tmp_path, toy,
                                                                                      monkeypatch):
    """Ctrl-C in seed 1: seed 0's record was saved but RESULTS.md was not rebuilt, and a temporary
    run folder had been made for every seed before the first trained (those of seeds not reached
    were left behind)."""
    import tempfile
    from cnnlab.reproduce import reproduce
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    trained = []

    def log(m):
        if m.startswith("training toy"):
            trained.append(m)
            if len(trained) == 2:
                raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        reproduce("toy", seeds=(0, 1, 2), out_dir=tmp_path / "b", log=log, device="cpu")
    assert [r["seed"] for r in json.loads((tmp_path / "b" / "results" / "toy.json").read_text())] == [0]
    assert "| toy |" in (tmp_path / "b" / "RESULTS.md").read_text()
    assert not any((tmp_path / "tmp").glob("toy-*"))


def test_a_seed_override_is_refused_and_overrides_of_one_value_are_one_row(tmp_path, toy):
    """--set seed=5 was ignored (each run's seed is one of --seeds) yet recorded as an override;
    lr=1 and lr=1.0 superseded each other as one run but made two rows."""
    from cnnlab.reproduce import _save_record, reproduce
    with pytest.raises(ValueError, match="--seeds"):
        reproduce("toy", seeds=(0,), out_dir=tmp_path / "b", overrides={"seed": 5}, log=lambda m: None, device="cpu")
    assert not (tmp_path / "b").exists()
    machine = {"cpu": "Test CPU", "cores": 2, "torch": "2.13.0", "python": "3.11"}
    base = {"recipe": "mnist-cnn-small", "test_loss": 0.03, "epochs_run": 10, "best_epoch": 9, "train_time_s": 300.0,
            "precision": "bf16", "dataset_lossy": False, "date": "2026-11-26T05:00:00+00:00", "machine": machine}
    path = tmp_path / "mnist-cnn-small.json"
    for seed, lr in ((0, 1), (1, 1.0), (1, 1)):  # the last one runs seed 1 again
        _save_record(path, {**base, "seed": seed, "test_accuracy": 0.9, "overrides": {"lr": lr}}, log=lambda m: None)
    assert [bool(r.get("superseded")) for r in json.loads(path.read_text())] == [False, True, False]
    [row] = [line for line in build_table(tmp_path).splitlines() if '`{"lr": 1}`' in line or '"lr": 1.0' in line]
    assert "| 90.00 ± 0.00 | 2 |" in row


def _machine():
    return {"cpu": "Test CPU", "cores": 2, "torch": "2.13.0", "python": "3.11"}


def _recs(name="mnist-cnn-small", n=2, **fields):
    """``n`` current records of recipe ``name`` (seeds 0, 1, ...) with ``fields``."""
    base = {"recipe": name, "test_loss": 0.03, "epochs_run": 10, "best_epoch": 9, "train_time_s": 300.0,
            "precision": "bf16", "dataset_lossy": False, "overrides": {}, "date": "2026-11-26T05:00:00+00:00",
            "machine": _machine(), "device": "cpu", "test_accuracy": 0.99}
    return [{**base, "seed": s, **fields} for s in range(n)]


def _rows(tmp_path, records, start="| mnist-cnn-small"):
    (tmp_path / f"{records[0]['recipe']}.json").write_text(json.dumps(records))
    table = build_table(tmp_path)
    return [line for line in table.splitlines() if line.startswith(start)], table


def test_rows_say_which_records_were_evaluated_with_tta(tmp_path, monkeypatch):
    """A row of records with and without TTA showed a plain mean (deciding "meets") as if all
    were alike; override rows never said TTA, so rows without it sat under one with it."""
    from cnnlab.recipes import RECIPES, get_recipe
    recs = _recs(test_accuracy=0.9930)
    recs[0].update(tta="flip", test_accuracy_without_tta=0.9900)
    recs[1]["test_accuracy"] = 0.9912
    [row], table = _rows(tmp_path, recs)
    assert "| 99.21 ± 0.13 (mixed: 1 of 2 with flip TTA; all without: 99.06) |" in row
    assert "*mixed*: only some were" in table
    variants = _recs(n=2, overrides={"epochs": 5}, test_accuracy=0.98)
    variants[1]["overrides"] = {"epochs": 50}
    variants[1].update(tta="flip", test_accuracy_without_tta=0.97)
    rows, table = _rows(tmp_path, recs[1:] + variants)
    assert rows[0].split(" | ")[5] == "99.12" and "TTA" not in rows[1]  # a recipe without TTA, none used
    assert '| `{"epochs": 50}` | 98.00 (flip TTA; without: 97.00) |' in rows[2]
    monkeypatch.setitem(RECIPES._items, "mnist-cnn-small", get_recipe("mnist-cnn-small").override({"tta": "flip"}))
    rows, table = _rows(tmp_path, recs[1:] + variants)
    assert "| 99.12 (no TTA) |" in rows[0] and '| `{"epochs": 5}` | 98.00 (no TTA) |' in rows[1]
    assert "*no TTA*: the recipe now evaluates with it" in table


def test_retest_warns_of_current_records_it_could_not_retest(tmp_path, toy, monkeypatch):
    from cnnlab.recipes import RECIPES
    from cnnlab.reproduce import retest, run_and_record
    run_and_record("toy", [0], tmp_path, keep_runs=tmp_path / "K", log=lambda m: None, device="cpu")
    run_and_record("toy", [1], tmp_path, log=lambda m: None, device="cpu")  # its run folder not kept
    monkeypatch.setitem(RECIPES._items, "toy", toy.override({"tta": "flip"}))
    msgs = []
    assert [r["seed"] for r in retest("toy", tmp_path / "K", tmp_path, log=msgs.append)] == [0]
    assert any(m.startswith("warning: toy.json: seed 1 (tta=none) not retested (no kept run folder") for m in msgs)


def test_rows_name_all_their_machines_precisions_and_data_copies(tmp_path):
    """An override row named its last record's machine and first record's precision (no Machine
    line at all where a table had override rows only); a main row took its last record's
    precision and data copy."""
    other = {**_machine(), "cpu": "Other CPU"}
    recs = _recs(overrides={"epochs": 5})
    recs[0].update(machine=other, precision="fp32")
    [row], table = _rows(tmp_path, recs)
    assert row.endswith("| bf16/fp32 |") and row.startswith("| mnist-cnn-small | `")
    assert table.splitlines()[-1] == ("Machine: Other CPU, 2 cores, torch 2.13.0, Python 3.11 and Test CPU, 2 cores, "
                                      "torch 2.13.0, Python 3.11")
    recs = _recs()
    recs[0].update(precision="fp32", dataset_lossy=True)
    [row], _ = _rows(tmp_path, recs)
    assert row.endswith("| bf16/fp32 | mixed: a lossy copy and official files | 2026-11-26 |")


def test_machines_are_told_apart_by_their_isa_and_named_alike_in_any_order(tmp_path):
    """Two "AMD EPYC" machines, AVX-512 and AVX2, were one machine in the table; a row with seeds on
    [A, B] and one on [B, A] were named (and marked) as two sets of machines."""
    zen4 = {**_machine(), "cpu": "AMD EPYC", "cpu_isa": "AVX-512, AVX512-BF16", "cpu_family_model": "25/17"}
    avx2 = {**_machine(), "cpu": "AMD EPYC", "cpu_isa": "AVX2"}
    for name, machines in (("mnist-lenet5", [zen4]), ("mnist-cnn-wide", [zen4]), ("mnist-cnn-2m", [zen4]),
                           ("mnist-lenet5-fast", [avx2]), ("mnist-cnn-small", [zen4, avx2]),
                           ("mnist-cnn-wide-fast", [avx2, zen4])):
        recs = _recs(name, n=len(machines))
        for r, m in zip(recs, machines):
            r["machine"] = m
        (tmp_path / f"{name}.json").write_text(json.dumps(recs))
    lines = build_table(tmp_path).splitlines()
    assert lines[-1] == (
        "Machine: AMD EPYC (AVX-512, AVX512-BF16; family/model 25/17), 2 cores, torch 2.13.0, Python 3.11; "
        "‡1: AMD EPYC (AVX-512, AVX512-BF16; family/model 25/17), 2 cores, torch 2.13.0, Python 3.11 and "
        "AMD EPYC (AVX2), 2 cores, torch 2.13.0, Python 3.11; ‡2: AMD EPYC (AVX2), 2 cores, torch 2.13.0, "
        "Python 3.11")
    assert [line.split(" |")[0] for line in lines if line.startswith("| mnist")] == [
        "| mnist-cnn-2m", "| mnist-cnn-small ‡1", "| mnist-cnn-wide-fast ‡1", "| mnist-cnn-wide",
        "| mnist-lenet5-fast ‡2", "| mnist-lenet5"]


def test_a_recipe_without_a_validation_split_says_so_where_time_to_target_would_be(tmp_path, monkeypatch):
    """Runs without a validation split have nothing to time: their row showed "—", which the
    header explained as "recorded before it was kept"."""
    from cnnlab.recipes import RECIPES, get_recipe
    monkeypatch.setitem(RECIPES._items, "mnist-cnn-small", get_recipe("mnist-cnn-small").override({"val_fraction": 0}))
    [row], table = _rows(tmp_path, _recs())
    assert "| 5.0 | no val. split |" in row and "*no val. split* for recipes trained without" in table


def test_override_rows_with_superseded_records_are_marked(tmp_path):
    """supersede_records "marks the recipe's row °", but a row of overrides never got the mark."""
    from cnnlab.reproduce import supersede_records
    path = tmp_path / "mnist-cnn-small.json"
    path.write_text(json.dumps(_recs(n=1, overrides={"epochs": 5}, test_accuracy=0.9)))
    assert supersede_records(path, "the data changed") == 1
    rows, table = _rows(tmp_path, json.loads(path.read_text()) + _recs(overrides={"epochs": 5}) + _recs(n=1))
    assert rows[0].startswith("| mnist-cnn-small | faithful")  # its plain records were never superseded
    assert rows[1].startswith('| mnist-cnn-small ° | `{"epochs": 5}` | 99.00 ± 0.00 | 2 |')
    assert "° Earlier records of this row's recipe (and overrides) stay in its file" in table


def test_a_kept_feature_extraction_run_is_what_fine_tuning_starts_from(tmp_path, toy, monkeypatch):
    """reproduce 'catsdogs-*' --keep-runs K: the fine-tuning recipe names its source by recipe name,
    which was looked for under ./runs only, so K's fresh run was not found (or an older one used)."""
    import json
    from cnnlab.recipes import RECIPES
    from cnnlab.reproduce import run_and_record
    monkeypatch.setitem(RECIPES._items, "toy-ft", toy.override(
        {"name": "toy-ft", "pretrained": "toy", "pretrained_part": "all", "trainable_from": "classifier"}))
    run_and_record("toy", [0], tmp_path, keep_runs=tmp_path / "K", log=lambda m: None, device="cpu")
    monkeypatch.chdir(tmp_path / "K")  # no runs/ here
    run_and_record("toy-ft", [0], tmp_path, keep_runs=tmp_path / "K", log=lambda m: None, device="cpu")
    saved = json.loads((tmp_path / "K" / "toy-ft-seed0" / "recipe.json").read_text())["recipe"]
    assert saved["pretrained"] == str(tmp_path / "K" / "toy-seed0")
