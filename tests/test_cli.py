import pytest

from cnnlab.cli import main


def test_summary_prints_seed_counts(capsys):
    assert main(["summary", "mnist-cnn-small"]) == 0
    out = capsys.readouterr().out
    for n in ("320", "18,496", "1,605,760", "1,290", "Total params: 1,625,866", "Non-trainable params: 0"):
        assert n in out


def test_list(capsys):
    assert main(["list", "recipes", "mnist-*"]) == 0
    out = capsys.readouterr().out
    assert "mnist-cnn-small" in out and "mnist-lenet5" in out


def test_unknown_recipe_is_a_clean_error(capsys):
    assert main(["train", "mnist-cnn-smal"]) == 2
    err = capsys.readouterr().err
    assert "did you mean 'mnist-cnn-small'" in err and "Traceback" not in err


def test_bad_override_is_a_clean_error(capsys):
    assert main(["train", "mnist-cnn-small", "--set", "epoch=2"]) == 2
    assert "Did you mean epochs" in capsys.readouterr().err


def test_repeated_set_options_add_up():
    from cnnlab.cli import build_parser
    for cmd in ("train", "reproduce"):
        a = build_parser().parse_args([cmd, "x", "--set", "epochs=2", "lr=0.1", "--set", "seed=3"])
        assert a.overrides == ["epochs=2", "lr=0.1", "seed=3"]  # argparse's default kept only the last


def test_missing_data_is_a_clean_error(tmp_path, capsys):
    assert main(["train", "mnist-cnn-small", "--data-dir", str(tmp_path)]) == 2
    assert "not found" in capsys.readouterr().err


def test_summary_wrong_input_size(capsys):
    assert main(["summary", "lenet5", "--input-size", "1", "64", "64"]) == 2
    assert "28x28 or 32x32" in capsys.readouterr().err


def test_summary_other_input_size_resizes_dense_layer(capsys):
    assert main(["summary", "mnist-cnn-small", "--input-size", "1", "32", "32"]) == 0
    assert "(None, 16384)" in capsys.readouterr().out  # Flatten 64*16*16


@pytest.mark.parametrize("argv, hint", [
    (["train", "mnist-cnn-small"], "cnnlab train --resume RUN_DIR"),
    (["reproduce", "mnist-cnn-small", "--keep-runs", "kept"], "the same command with --resume"),
    (["reproduce", "mnist-cnn-small"], "with --keep-runs DIR"),
])
def test_ctrl_c_says_how_to_continue(monkeypatch, capsys, argv, hint):
    from cnnlab import cli

    def interrupted(a):
        raise KeyboardInterrupt
    monkeypatch.setattr(cli, f"cmd_{argv[0]}", interrupted)
    assert main(argv) == 130
    assert hint in capsys.readouterr().err


def test_bench_prints_the_machine_and_a_row_per_model(capsys):
    assert main(["bench", "lenet5", "--rounds", "1", "--steps", "2"]) == 0
    out = capsys.readouterr().out
    assert "\nMachine: " in out and " cores; torch " in out and "{'cpu'" not in out
    [row] = [line for line in out.splitlines() if line.startswith("| lenet5 (64) |")]
    assert row.endswith("|") and "x |" in row
