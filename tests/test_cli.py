import json
import sys

import pytest
import torch

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


def test_list_says_when_a_pattern_matches_nothing_and_suggests_names(capsys):
    assert main(["list", "recipes", "resnet20"]) == 0  # shell patterns match whole names
    out = capsys.readouterr().out
    assert "recipes (0):" in out and "did you mean 'cifar10-resnet20'" in out and "'*resnet20*'" in out


def test_list_takes_a_pattern_alone_as_the_usage_line_says(capsys):
    # `cnnlab list [models|datasets|recipes] [PATTERN]`: a pattern in the first place searches all
    assert main(["list", "lenet*"]) == 0
    out = capsys.readouterr().out
    assert "models (2):" in out and "  lenet5 " in out and "recipes (0):" in out
    assert main(["list", "modles", "x*"]) == 2
    assert "'modles' is not one of models, datasets, recipes; did you mean 'models'" in capsys.readouterr().err
    assert main(["list", "modles"]) == 2  # alone: three "none match 'modles'" lines, not a word of models
    assert "'modles' is not one of models, datasets, recipes; did you mean 'models'" in capsys.readouterr().err
    assert main(["list", "recipe"]) == 2 and "did you mean 'recipes'" in capsys.readouterr().err


@pytest.mark.parametrize("args", [["--rounds", "0"], ["--steps", "0"], ["--steps", "-3"]])
def test_bench_refuses_counts_below_one_naming_the_option(args, capsys):
    with pytest.raises(SystemExit) as e:
        main(["bench", *args])
    assert e.value.code == 2
    assert f"argument {args[0]}: must be at least 1, got {int(args[1])}" in capsys.readouterr().err


def test_summary_lists_the_binary_option_and_refuses_empty_sizes(capsys):
    assert main(["summary", "lenet5"]) == 0
    assert "Options (--set model_kwargs.KEY=VALUE): binary" in capsys.readouterr().out
    assert main(["summary", "lenet5", "--input-size", "0", "28", "28"]) == 2
    assert "--input-size 0 28 28: sizes are at least 1" in capsys.readouterr().err
    for n in ("0", "-1"):  # -1 was torch's RuntimeError (a negative dimension) as a traceback
        with pytest.raises(SystemExit) as e:
            main(["summary", "resnet20", "--num-classes", n])
        assert e.value.code == 2
        assert f"argument --num-classes: must be at least 1, got {n}" in capsys.readouterr().err


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
    assert "square inputs up to 32x32 with an even side (padded to 32x32 in c1), got 64x64" in capsys.readouterr().err


def test_summary_other_input_size_resizes_dense_layer(capsys):
    assert main(["summary", "mnist-cnn-small", "--input-size", "1", "32", "32"]) == 0
    assert "(None, 16384)" in capsys.readouterr().out  # Flatten 64*16*16


@pytest.mark.parametrize("argv, where, hint", [
    (["train", "mnist-cnn-small"], ("runs/x", True), "resume with `cnnlab train --resume runs/x`"),
    (["train", "mnist-cnn-small"], ("runs/x", False), "no epoch had finished, so runs/x holds nothing"),
    (["train", "mnist-cnn-small"], None, "training had not begun"),  # still reading the data
    (["train", "--resume", "runs/y"], None, "training had not begun; runs/y is as it was"),
    (["reproduce", "mnist-cnn-small", "--keep-runs", "kept"], None, "the same command with --resume"),
    (["reproduce", "mnist-cnn-small"], None, "with --keep-runs DIR"),
    (["evaluate", "runs/x"], None, "interrupted\n"),
])
def test_ctrl_c_says_how_to_continue(monkeypatch, capsys, argv, where, hint):
    """cnnlab.runs.train marks the KeyboardInterrupt with the run folder and whether an epoch
    had finished; the command names the folder to resume, or says there is none."""
    from cnnlab import cli

    def interrupted(a):
        e = KeyboardInterrupt()
        if where:
            e.run_dir, e.resumable = where
        raise e
    monkeypatch.setattr(cli, f"cmd_{argv[0]}", interrupted)
    assert main(argv) == 130
    assert hint in capsys.readouterr().err


def test_bench_names_a_model_of_1d_signals(capsys):
    # its random uint8 batch was refused as "random: train_images must be uint8 (N, C, H, W) images ..."
    assert main(["bench", "iris-conv1d"]) == 2
    assert "bench times image models; iris-conv1d takes 1-D signals (1, 4)" in capsys.readouterr().err


def test_bench_prints_the_machine_and_a_row_per_model(capsys):
    assert main(["bench", "lenet5", "--rounds", "1", "--steps", "2"]) == 0
    out = capsys.readouterr().out
    assert "\nMachine: " in out and " cores; torch " in out and "{'cpu'" not in out
    [row] = [line for line in out.splitlines() if line.startswith("| lenet5 (64) |")]
    assert row.endswith("|") and "x |" in row


def test_matmul_ceilings_skip_bf16_where_the_cpu_only_emulates_it(monkeypatch):
    """On a CPU without native bf16 (an AVX2-only AMD EPYC) PyTorch emulates bf16 matmuls at about
    1 GFLOP/s: the bf16 ceiling is then not measured (it took ~25 s per product there), and the
    tables say so instead of a fraction."""
    from cnnlab import bench, device
    timed = []
    monkeypatch.setattr(bench, "matmul_ceiling", lambda dtype, n, s: timed.append(dtype) or 100.0)
    monkeypatch.setattr(device, "native_bf16", lambda dev: False)
    ceil = bench.matmul_ceilings(64, 0.01)
    assert ceil == {"fp32": 100.0, "bf16": None} and timed == [torch.float32]
    assert bench.format_ceilings(ceil) == "fp32 100 GFLOP/s, bf16 not native (not measured)"
    monkeypatch.setattr(device, "native_bf16", lambda dev: True)
    assert bench.matmul_ceilings(64, 0.01) == {"fp32": 100.0, "bf16": 100.0}
    s = bench.Series("x", [10.0])
    row = {"model": "m", "batch": 8, "cnnlab": s, "plain": s, "gflops": 1.0, "ceiling_fraction": None,
           "precision": "fp32"}
    assert bench.format_rows([row]).splitlines()[-1].endswith("| 1 | — (fp32 not measured) |")


def test_cpu_isa_names_the_instruction_sets_benchmarks_depend_on(monkeypatch):
    from cnnlab import device
    for flags, isa in (({"avx2", "fma"}, "AVX2"), ({"avx2", "avx512f", "avx512_bf16"}, "AVX-512, AVX512-BF16"),
                       ({"avx2", "avx512f", "avx512_bf16", "amx_bf16"}, "AVX-512, AVX512-BF16, AMX-BF16"),
                       ({"asimd", "bf16"}, "NEON, BF16"), (set(), "")):
        monkeypatch.setattr(device, "cpu_flags", lambda flags=flags: frozenset(flags))
        assert device.cpu_isa() == isa
    assert "cpu_isa" in device.describe_machine()


def test_auto_precision_counts_no_emulated_gpu_bf16(monkeypatch):
    """A GPU before Ampere (T4: compute capability 7.5) runs bf16 tensors, emulated; torch's
    is_bf16_supported() says True for it. Auto precision is bf16 only where bf16 is native."""
    from types import SimpleNamespace

    from cnnlab import device
    caps = {0: (8, 0), 1: (7, 5)}  # an A100 and a T4; the A100 is the current GPU
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "_check_bf16_tensor_supported", lambda dev: True, raising=False)
    # torch.cuda.is_bf16_supported asks get_device_properties(current_device())
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda d: SimpleNamespace(major=caps[d][0]))
    monkeypatch.setattr(torch.cuda, "get_device_capability",
                        lambda d=None: caps[torch.cuda.current_device() if d is None or d.index is None else d.index])
    monkeypatch.setattr(torch.version, "hip", None)
    assert device.resolve_precision("auto", torch.device("cuda:0")) == "bf16"
    assert device.resolve_precision("auto", torch.device("cuda:1")) == "fp32"
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    assert device.resolve_precision("auto", torch.device("cuda")) == "fp32"

def test_the_command_and_package_start_without_torch():
    """``import cnnlab`` and ``cnnlab.cli`` import no torch (PEP 562 names), so the ``cnnlab``
    command parses its arguments and re-executes itself with the launch settings before the one
    torch import it needs; ``--help`` answers without it."""
    import subprocess
    code = ("import sys, cnnlab, cnnlab.cli\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n"
            "try:\n    cnnlab.cli.build_parser().parse_args(['--help'])\n"
            "except SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules, 'torch imported by --help'\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "train a recipe" in r.stdout


def test_public_names_stay_functions_whatever_is_imported_first():
    """cnnlab.train, .predict and .summary are functions even after the subpackages and modules
    beside them are imported (a submodule of the same name used to replace cnnlab.summary after
    its first call)."""
    import cnnlab
    import cnnlab.inference  # noqa: F401
    import cnnlab.report.summary  # noqa: F401
    import cnnlab.training  # noqa: F401
    assert "Model: \"lenet5\"" in cnnlab.summary("lenet5") and "Model:" in cnnlab.summary("lenet5")
    assert all(callable(f) and f.__module__.startswith("cnnlab.")
               for f in (cnnlab.train, cnnlab.predict, cnnlab.evaluate, cnnlab.evaluate_folder))
    assert cnnlab.train.__module__ == "cnnlab.runs" and cnnlab.predict.__module__ == "cnnlab.inference"
    assert set(cnnlab.__all__) <= set(dir(cnnlab))
    with pytest.raises(AttributeError, match="has no attribute 'trian'"):
        cnnlab.trian


def test_ctrl_c_while_torch_is_still_importing(monkeypatch, capsys):
    """Ctrl-C in the first seconds (the relaunched process importing torch) ends with the same
    one line, not a traceback."""
    from cnnlab import cli

    def interrupted(a):
        raise KeyboardInterrupt
    monkeypatch.setattr(cli, "_run", interrupted)
    assert main(["train", "mnist-cnn-small"]) == 130
    assert capsys.readouterr().err == "\ninterrupted; training had not begun\n"


def test_classification_report_by_hand():
    """Precision, recall and F1 per class from a confusion matrix, as scikit-learn computes them
    (zero_division=0); classes without examples that were never predicted are left out."""
    from cnnlab.report.classification import classification_report, format_classification_report
    cm = [[5, 1, 0, 0], [2, 3, 0, 0], [0, 0, 0, 0], [1, 1, 0, 0]]  # c has no example; d is never predicted
    r = classification_report(cm, ["a", "b", "c", "d"])
    assert list(r) == ["a", "b", "d", "macro avg", "weighted avg"]
    pa, ra, pb, rb = 5 / 8, 5 / 6, 3 / 5, 3 / 5
    fa, fb = 2 * pa * ra / (pa + ra), 2 * pb * rb / (pb + rb)
    assert r["a"] == {"precision": round(pa, 4), "recall": round(ra, 4), "f1": round(fa, 4), "support": 6}
    assert r["b"] == {"precision": round(pb, 4), "recall": round(rb, 4), "f1": round(fb, 4), "support": 5}
    assert r["d"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2}
    assert r["macro avg"] == {"precision": round((pa + pb) / 3, 4), "recall": round((ra + rb) / 3, 4),
                              "f1": round((fa + fb) / 3, 4), "support": 13}
    assert r["weighted avg"]["recall"] == round(8 / 13, 4)  # the weighted recall is top-1 accuracy
    text = format_classification_report(r)
    assert "precision    recall  f1-score   support" in text
    assert "           a     0.6250    0.8333    0.7143         6" in text
    # scikit-learn averages over the labels of y_true and y_pred: a class predicted without examples
    # (here c, once, for a b) has precision and recall 0 and pulls the macro average down
    cm2 = [[5, 1, 0, 0], [2, 2, 1, 0], [0, 0, 0, 0], [1, 1, 0, 0]]
    r2 = classification_report(cm2, ["a", "b", "c", "d"])
    assert list(r2) == ["a", "b", "c", "d", "macro avg", "weighted avg"]
    assert r2["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    pb2, rb2 = 2 / 4, 2 / 5
    assert r2["macro avg"]["precision"] == round((pa + pb2) / 4, 4)
    assert r2["macro avg"]["recall"] == round((ra + rb2) / 4, 4)
    assert r2["weighted avg"]["recall"] == round(7 / 13, 4)
    with pytest.raises(ValueError, match=r"confusion matrix of shape \(4, 4\) for 3 classes"):
        classification_report(cm, ["a", "b", "c"])
    from cnnlab.report.classification import most_confused
    assert most_confused(cm, ["a", "b", "c", "d"]) == [("b", "a", 2), ("a", "b", 1), ("d", "a", 1), ("d", "b", 1)]
    assert most_confused(cm, ["a", "b", "c", "d"], top=1) == [("b", "a", 2)]
    assert most_confused(cm, ["a", "b", "c", "d"], min_count=2) == [("b", "a", 2)]
    assert most_confused([[3, 0], [0, 4]], ["a", "b"]) == []


def test_summary_of_any_module_needs_its_input_size():
    import cnnlab
    from torch import nn
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4 * 26 * 26, 10))
    with pytest.raises(ValueError, match="summary of a Sequential: give input_size"):
        cnnlab.summary(net)
    table = cnnlab.summary(net, (1, 28, 28))
    assert "(None, 4, 26, 26)" in table and "27,090" in table  # 40 + 27,050 parameters


def test_warnings_read_as_one_line_without_python_source():
    from cnnlab.cli import _warning_line
    from cnnlab.data.images import DataSkipWarning
    line = _warning_line(DataSkipWarning("pets: skipped 2 file(s)"), DataSkipWarning,
                         "/x/site-packages/cnnlab/data/images.py", 300, "warnings.warn(...)")
    assert line == "warning: pets: skipped 2 file(s)\n"
    other = _warning_line(UserWarning("deprecated"), UserWarning, "/x/site-packages/torch/nn/a.py", 7)
    assert other == "warning (UserWarning, a.py:7): deprecated\n"


def test_train_arguments_that_would_be_ignored_are_refused(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "recipe.json").write_text(json.dumps({"recipe": {"name": "mnist-cnn-small"}, "dataset": {
        "name": "mnist", "classes": [], "mean": [0.1], "std": [0.3], "provenance": {}, "image_shape": [1, 28, 28]}}))
    assert main(["train", "mnist-lenet5", "--resume", str(run)]) == 2
    assert "is a run of 'mnist-cnn-small', not of 'mnist-lenet5'" in capsys.readouterr().err
    assert main(["train", "--resume", str(run), "--run-dir", str(tmp_path / "other")]) == 2
    assert "give no --run-dir with it" in capsys.readouterr().err
    assert main(["train", "mnist-cnn-small", "--epochs", "0"]) == 2  # not the recipe's 10 epochs
    assert "--set epochs=0: Input should be greater than or equal to 1" in capsys.readouterr().err


def test_under_torchrun_one_process_per_machine_speaks_and_hints_repeat_the_launcher(monkeypatch, capsys):
    from cnnlab import cli

    def interrupted(a):
        e = KeyboardInterrupt()
        e.run_dir, e.resumable = "runs/x", True
        raise e
    monkeypatch.setattr(cli, "cmd_train", interrupted)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert main(["train", "mnist-cnn-small"]) == 130
    assert "resume with `torchrun --nproc_per_node=2 -m cnnlab.cli train --resume runs/x`" in capsys.readouterr().err
    monkeypatch.setenv("LOCAL_RANK", "1")  # the second process: the same message is not repeated
    monkeypatch.setenv("RANK", "1")
    assert main(["train", "mnist-cnn-small"]) == 130
    assert capsys.readouterr().err == ""
    assert main(["evaluate", "no/such/run"]) == 2  # an error may be this process's alone: said, with its rank
    assert capsys.readouterr().err.startswith("[rank 1] cnnlab evaluate: error: no/such/run")
