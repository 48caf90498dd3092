"""cnnlab compare: several run folders side by side, read from their text files alone."""
import pytest

import cnnlab
from cnnlab.cli import main
from cnnlab.recipes import Recipe
from cnnlab.report.compare import compare_runs, format_comparison
from helpers import toy_dataset

RECIPE = Recipe(name="toy", source="test", dataset="toy", model="lenet5", epochs=2, batch_size=64,
                val_fraction=0.2, precision="fp32")


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    a = cnnlab.train(RECIPE, dataset=toy_dataset(), run_dir=root / "a", log=lambda m: None)
    b = cnnlab.train(RECIPE.override({"val_fraction": 0.0, "epochs": 1, "name": "toy-noval"}),
                     dataset=toy_dataset(), run_dir=root / "x" / "b", log=lambda m: None)
    return root, a, b


def test_rows_hold_each_runs_figures_and_the_plot_is_written(two_runs, tmp_path):
    root, a, b = two_runs
    rows = compare_runs([root / "a", root / "x" / "b"], plot=tmp_path / "c.png")
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    ra, rb = rows
    assert (ra["label"], ra["recipe"], ra["epochs"]) == ("a", "toy", 2)
    assert ra["best_val_accuracy"] == max(a.history["val_accuracy"])
    assert ra["best_val_epoch"] == 1 + a.history["val_accuracy"].index(ra["best_val_accuracy"])
    assert ra["test_accuracy"] == a.test_metrics["accuracy"] and ra["minutes"] > 0
    assert (rb["recipe"], rb["best_val_accuracy"], rb["best_val_epoch"]) == ("toy-noval", None, None)
    table = format_comparison(rows)
    assert table.splitlines()[0].startswith("| run | recipe | epochs | best val top-1 (%)")
    assert f"| a | toy | 2 | {100 * ra['best_val_accuracy']:.2f} |" in table
    assert "| b | toy-noval | 1 | — | — |" in table


def test_same_named_folders_are_labelled_by_path_and_non_runs_are_named(two_runs, tmp_path):
    root, _, _ = two_runs
    rows = compare_runs([root / "a", root / "a"])
    assert [r["label"] for r in rows] == [str(root / "a")] * 2
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=f"{tmp_path / 'empty'} is not a cnnlab run folder"):
        compare_runs([root / "a", tmp_path / "empty"])
    with pytest.raises(ValueError, match="at least one run folder"):
        compare_runs([])


def test_command_prints_the_table_and_writes_the_plot(two_runs, tmp_path, capsys):
    root, _, _ = two_runs
    assert main(["compare", str(root / "a"), str(root / "x" / "b"), "--out", str(tmp_path / "p.png")]) == 0
    out = capsys.readouterr().out
    assert "| a | toy | 2 |" in out and f"plot: {tmp_path / 'p.png'}" in out
    assert (tmp_path / "p.png").exists()
    assert main(["compare", str(tmp_path)]) == 2
    assert "is not a cnnlab run folder" in capsys.readouterr().err


def test_the_plot_is_titled_with_the_runs_and_their_recipes(two_runs, tmp_path, monkeypatch):
    from cnnlab.report import plots
    root, _, _ = two_runs
    seen = {}
    monkeypatch.setattr(plots, "plot_comparison", lambda h, path, title="": seen.update(title=title))
    compare_runs([root / "a", root / "x" / "b", root / "a"], plot=tmp_path / "c.png")
    assert seen["title"] == "3 runs of toy, toy-noval"
    compare_runs([root / "a"], plot=tmp_path / "c.png")
    assert seen["title"] == "1 run of toy"


def test_a_run_resumed_for_more_epochs_has_no_test_figures_until_it_is_tested_again(two_runs, tmp_path):
    """`cnnlab train --resume RUN --set epochs=N` of a tested run keeps the old test_metrics.json
    while it trains on: the table showed that earlier end's test top-1 and minutes."""
    import shutil
    root, a, _ = two_runs
    run = tmp_path / "a"
    shutil.copytree(root / "a", run)
    rows = (run / "metrics.csv").read_text().splitlines()
    (run / "metrics.csv").write_text("\n".join(rows + ["3" + rows[-1][1:]]) + "\n")  # epoch 3 written
    r = compare_runs([run])[0]
    assert r["epochs"] == 3 and r["test_accuracy"] is None and r["best_epoch"] is None
    assert r["minutes"] == pytest.approx(sum(r["history"]["time_s"]) / 60)
    assert compare_runs([root / "a"])[0]["test_accuracy"] == a.test_metrics["accuracy"]
    assert cnnlab.load_run(run, load_data=False).test_metrics == {}  # load_run, evaluate, predict alike
    assert cnnlab.load_run(root / "a", load_data=False).test_metrics == a.test_metrics


def test_a_finished_run_whose_metrics_csv_lost_its_last_row_keeps_its_test_figures(two_runs, tmp_path):
    """Only a test of fewer epochs than metrics.csv holds is an earlier end's. A run finished by
    an older cnnlab after a kill between the last epoch's state and its metrics.csv row has one
    row fewer than its test's epochs_run (resume did not rewrite metrics.csv then): its test
    figures are those of its end, and were left out by a check of epochs_run != rows."""
    import shutil
    root, a, _ = two_runs
    run = tmp_path / "a"
    shutil.copytree(root / "a", run)
    rows = (run / "metrics.csv").read_text().splitlines()
    (run / "metrics.csv").write_text("\n".join(rows[:-1]) + "\n")
    assert compare_runs([run])[0]["test_accuracy"] == a.test_metrics["accuracy"]
    assert cnnlab.load_run(run, load_data=False).test_metrics == a.test_metrics
