"""The run folder: contents, re-evaluation, resume after a kill, atomic writes."""
import errno
import json
import os
import statistics

import warnings

import pytest
import torch

import cnnlab
from cnnlab._io import DiskFullError, write_json
from cnnlab.recipes import Recipe, RecipeError
from helpers import toy_dataset, without_times, write_mnist_folder

class NotATensor:
    pass


RECIPE = Recipe(name="toy", source="test", dataset="toy", model="mnist-cnn-small", epochs=3,
                batch_size=64, eval_batch_size=100, val_fraction=0.2, precision="fp32")


def quiet(msg):
    pass


class Killed(Exception):
    pass


def train_killed_in_epoch_2(recipe, run_dir, device="cpu"):
    """Start a 3-epoch run that dies after epoch 2's forward passes, before its checkpoint."""
    def killer(msg):
        if msg.startswith("epoch 2/3"):
            raise Killed
    with pytest.raises(Killed):
        cnnlab.train(recipe, dataset=toy_dataset(), run_dir=run_dir, log=killer, device=device)


def test_run_folder_has_everything(tmp_path):
    run = cnnlab.train(RECIPE, dataset=toy_dataset(), run_dir=tmp_path / "r", log=quiet)
    files = {p.name for p in (tmp_path / "r").iterdir()}
    assert {"recipe.json", "metrics.csv", "best.safetensors", "last.safetensors", "last_state.pt",
            "test_metrics.json", "curves.png", "confusion_matrix.png", "predictions_best.png",
            "predictions_worst.png"} <= files
    assert not [f for f in files if f.endswith(".tmp")]
    meta = json.loads((tmp_path / "r" / "recipe.json").read_text())
    assert meta["recipe"]["epochs"] == 3 and meta["dataset"]["validation"] == 120
    assert meta["resolved"]["precision"] == "fp32" and "torch" in meta["machine"]
    lines = (tmp_path / "r" / "metrics.csv").read_text().splitlines()
    assert lines[0].startswith("epoch,loss,accuracy,val_loss,val_accuracy") and len(lines) == 4
    test = json.loads((tmp_path / "r" / "test_metrics.json").read_text())
    assert test["total"] == 200 and test["accuracy"] > 0.9
    assert sum(map(sum, test["confusion_matrix"])) == 200
    report = test["classification_report"]
    assert list(report) == ["c0", "c1", "c2", "c3", "macro avg", "weighted avg"]
    assert all(report[c]["recall"] == test["per_class_accuracy"][c] for c in test["per_class_accuracy"])
    assert report["weighted avg"]["recall"] == pytest.approx(test["accuracy"], abs=1e-4)
    assert run.test_line().startswith("Test set: Average loss: ")
    assert (tmp_path / "r" / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "r" / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"


def test_training_flushes_denormals_to_zero(tmp_path):
    """Adam's moments of weights with zero gradients decay into the denormal range, where the
    CPU computes slowly (benchmarks/DENORMALS.md): a run treats them as zero."""
    torch.set_flush_denormal(False)
    denormal = torch.tensor([1e-39])
    assert (denormal * 1.0).item() != 0.0  # PyTorch's default keeps them
    cnnlab.train(RECIPE.override({"epochs": 1}), dataset=toy_dataset(), run_dir=tmp_path / "r", log=quiet)
    assert (denormal * 1.0).item() == 0.0


def test_flush_denormals_first_thing_reaches_every_thread():
    """The mode is per thread: set before PyTorch starts its OpenMP workers, they inherit it; set
    after, only the calling thread has it, and the function says so."""
    import subprocess
    import sys
    code = ("import torch; from cnnlab.device import flush_denormals; torch.set_num_threads(2); "
            "print(flush_denormals()); torch.set_flush_denormal(False); ")
    first = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert first.stdout.split() == ["all", "threads"]
    late = subprocess.run([sys.executable, "-c", "import torch; torch.set_num_threads(2); "
                           "torch.ones(1 << 20).sum(); from cnnlab.device import flush_denormals; "
                           "print(flush_denormals())"], capture_output=True, text=True, check=True)
    assert late.stdout.split() == ["calling", "thread"]


def test_evaluate_reproduces_test_metrics(tmp_path, monkeypatch):
    ds = toy_dataset()
    run = cnnlab.train(RECIPE, dataset=ds, run_dir=tmp_path / "r", log=quiet)
    from cnnlab import runs
    monkeypatch.setattr(runs, "load_dataset", lambda name, data_dir=None: ds)
    again = cnnlab.evaluate(tmp_path / "r", keep_logits=True)
    assert again["correct"] == run.test_metrics["correct"]
    assert again["loss"] == pytest.approx(run.test_metrics["loss"], rel=1e-5)
    # the logits and labels of the test split, in its order, for best/worst selections
    assert torch.equal(again["labels"], ds.test_labels) and again["logits"].shape == (len(ds.test_labels), 4)
    assert int((again["logits"].argmax(1) == again["labels"]).sum()) == again["correct"]


@pytest.mark.realdata
def test_evaluate_finds_the_data_where_the_run_read_it(tmp_path):
    """A run trained with --data-dir is re-evaluated without it (`cnnlab evaluate RUN`): the
    folder in its provenance is used while it exists, instead of a download attempt."""
    from conftest import real_data
    run = cnnlab.train("iris-conv1d-fast", {"epochs": 2}, data_dir=real_data("iris").parent,
                       run_dir=tmp_path / "r", log=quiet, progress=False)
    again = cnnlab.evaluate(tmp_path / "r")  # no data_dir, no $CNNLAB_DATA, offline (conftest)
    assert again["correct"] == run.test_metrics["correct"]


def test_resume_after_kill_matches_uninterrupted(tmp_path):
    # exactly equal needs deterministic kernels: on the CPU (the CUDA variant is below)
    full = cnnlab.train(RECIPE, dataset=toy_dataset(), run_dir=tmp_path / "full", log=quiet, device="cpu")

    train_killed_in_epoch_2(RECIPE, tmp_path / "cut")
    state = torch.load(tmp_path / "cut" / "last_state.pt", weights_only=True)
    assert state["epoch"] == 0  # only epoch 1 was saved
    resumed = cnnlab.train(None, dataset=toy_dataset(), resume=tmp_path / "cut", log=quiet, device="cpu")
    assert without_times(resumed.history) == without_times(full.history)
    assert resumed.test_metrics["correct"] == full.test_metrics["correct"]


def test_resume_refuses_overrides_the_saved_state_would_undo_and_leaves_the_run_as_it_was(tmp_path):
    """`cnnlab train --resume RUN --epochs 3` on a finished 2-epoch one-cycle run failed inside
    PyTorch ("Tried to step 845 times") after rewriting the run's recipe.json to 3 epochs; an lr
    override was silently undone by the restored optimizer and schedule. Such overrides are now
    refused before anything is written, with the way to train on from the weights."""
    from cnnlab.recipes import RecipeError
    onecycle = RECIPE.override({"epochs": 2, "schedule": "onecycle"})
    cnnlab.train(onecycle, dataset=toy_dataset(), run_dir=tmp_path / "oc", log=quiet)
    before = {f.name: f.read_bytes() for f in (tmp_path / "oc").iterdir()}
    with pytest.raises(RecipeError, match=r"epochs=3 \(was 2\): the onecycle schedule spans the 2 "
                                          r"epochs it was started with\. To train on from its weights"
                                          r".*--set pretrained=.*oc pretrained_part=all"):
        cnnlab.train(None, {"epochs": 3}, dataset=toy_dataset(), resume=tmp_path / "oc", log=quiet)
    with pytest.raises(RecipeError, match=r"lr=0.01 \(was 0.001\), val_fraction=0.1 \(was 0.2\): its saved"):
        cnnlab.train(None, ["lr=0.01", "val_fraction=0.1"], dataset=toy_dataset(), resume=tmp_path / "oc", log=quiet)
    with pytest.raises(RecipeError, match=r"early_stopping="):  # callbacks' states go by position
        cnnlab.train(None, {"early_stopping": {"patience": 2}}, dataset=toy_dataset(), resume=tmp_path / "oc", log=quiet)
    with pytest.raises(RecipeError, match=r"monitor='val_loss' \(was 'val_accuracy'\)"):  # the best value's metric
        cnnlab.train(None, {"monitor": "val_loss"}, dataset=toy_dataset(), resume=tmp_path / "oc", log=quiet)
    assert {f.name: f.read_bytes() for f in (tmp_path / "oc").iterdir()} == before

    flat = RECIPE.override({"epochs": 2})  # a constant LR: more epochs simply continue, as in Keras
    cnnlab.train(flat, dataset=toy_dataset(), run_dir=tmp_path / "flat", log=quiet)
    more = cnnlab.train(None, {"epochs": 3}, dataset=toy_dataset(), resume=tmp_path / "flat", log=quiet)
    assert [e["epoch"] for e in more.history.epochs] == [1, 2, 3]
    es = RECIPE.override({"epochs": 1, "early_stopping": {"patience": 1}})  # patience may change
    cnnlab.train(es, dataset=toy_dataset(), run_dir=tmp_path / "es", log=quiet)
    longer = cnnlab.train(None, ["epochs=2", "early_stopping.patience=5"], dataset=toy_dataset(),
                          resume=tmp_path / "es", log=quiet)
    assert len(longer.history.epochs) == 2 and longer.recipe.early_stopping.patience == 5


def test_resume_keeps_this_runs_optimizer_kernels():
    """A saved optimizer state names the kernels of the run that saved it (states from before the
    fused default say foreach): resuming keeps the resuming run's choice, which for AlexNet is
    1.5x the training speed (benchmarks/FUSED_OPTIMIZER.md), and still restores the moments."""
    from cnnlab.runs import _restore_state, _rng_states, _training_state, prepare
    ds = toy_dataset()
    old = prepare(RECIPE.override({"fused_optimizer": False}), ds, "cpu", checkpoint=None, log=quiet, progress=False)
    old.trainer.fit(old.train, None, epochs=1)
    state = _training_state(old, 0, 1.0, _rng_states(old))
    assert state["optimizer"]["param_groups"][0]["foreach"]
    new = prepare(RECIPE, ds, "cpu", checkpoint=None, log=quiet, progress=False)
    assert _restore_state(new, state, quiet)[0] == 1
    assert all(g["fused"] and not g["foreach"] for g in new.optimizer.param_groups)
    p_old, p_new = next(old.model.parameters()), next(new.model.parameters())
    assert torch.equal(new.optimizer.state[p_new]["exp_avg"], old.optimizer.state[p_old]["exp_avg"])


def test_resumed_run_sums_training_time_and_keeps_where_it_began(tmp_path):
    """A run in two pieces reports the training time of both, and its recipe.json still names
    the machine and time it began, with the resumption listed."""
    train_killed_in_epoch_2(RECIPE, tmp_path / "cut")
    first = json.loads((tmp_path / "cut" / "recipe.json").read_text())
    before = torch.load(tmp_path / "cut" / "last_state.pt", weights_only=True)["train_time_s"]
    assert before > 0
    resumed = cnnlab.train(None, dataset=toy_dataset(), resume=tmp_path / "cut", log=quiet, device="cpu")
    epoch_times = sum(e["time_s"] for e in resumed.history.epochs)
    assert resumed.test_metrics["train_time_s"] >= round(epoch_times, 1) - 0.1  # all 3 epochs, not 2
    assert resumed.test_metrics["train_time_s"] >= before
    meta = json.loads((tmp_path / "cut" / "recipe.json").read_text())
    assert meta["started"] == first["started"] and meta["machine"] == first["machine"]
    [piece] = meta["resumed"]
    assert piece["after_epoch"] == 1 and "cpu" in piece["machine"]
    # each piece's settings, and the first piece's, so that a mixed run shows how it ran
    assert piece["resolved"] == meta["resolved"] and meta["first_resolved"] == first["resolved"]


def test_resume_after_early_stopping_goes_straight_to_the_test(tmp_path, monkeypatch):
    """Killed after early stopping ended the training but before the test evaluation: resuming
    evaluates, and does not train on past the stop."""
    from cnnlab import runs
    recipe = RECIPE.override({"epochs": 8, "early_stopping.monitor": "val_loss",
                              "early_stopping.patience": 0, "early_stopping.min_delta": 10.0})

    def killed(*args, **kwargs):
        raise Killed
    with monkeypatch.context() as m:
        m.setattr(runs, "evaluate_model", killed)
        with pytest.raises(Killed):
            cnnlab.train(recipe, dataset=toy_dataset(), run_dir=tmp_path / "r", log=quiet, device="cpu")
    state = torch.load(tmp_path / "r" / "last_state.pt", weights_only=True)
    assert state["stopped_early"] and state["epoch"] < 7
    resumed = cnnlab.train(None, dataset=toy_dataset(), resume=tmp_path / "r", log=quiet, device="cpu")
    assert len(resumed.history) == state["epoch"] + 1
    assert resumed.test_metrics["epochs_run"] == state["epoch"] + 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
def test_resume_on_cuda_restores_its_random_state(tmp_path):
    """The model's dropout draws from the CUDA generator: a resumed run must continue its stream
    (equal up to float non-determinism, where a fresh stream would change every loss)."""
    full = cnnlab.train(RECIPE, dataset=toy_dataset(), run_dir=tmp_path / "full", log=quiet, device="cuda")
    train_killed_in_epoch_2(RECIPE, tmp_path / "cut", device="cuda")
    assert torch.load(tmp_path / "cut" / "last_state.pt", weights_only=True)["cuda_rng"] is not None
    resumed = cnnlab.train(None, dataset=toy_dataset(), resume=tmp_path / "cut", log=quiet, device="cuda")
    for a, b in zip(without_times(resumed.history), without_times(full.history), strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-3)
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-3)


def test_disk_full_keeps_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "test_metrics.json"
    write_json(target, {"accuracy": 0.5})

    def no_space(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "replace", no_space)
    with pytest.raises(DiskFullError, match="disk full while writing .*test_metrics.json"):
        write_json(target, {"accuracy": 0.9})
    assert json.loads(target.read_text()) == {"accuracy": 0.5}
    assert [p.name for p in tmp_path.iterdir()] == ["test_metrics.json"]


def test_atomic_writes_give_files_the_usual_permissions(tmp_path):
    """The temporary file behind an atomic write is created 0600 by mkstemp; the finished file
    gets what open() would give under the umask (run folders were private to their writer)."""
    import stat
    from cnnlab._io import _UMASK
    write_json(tmp_path / "m.json", {"a": 1})
    assert stat.S_IMODE((tmp_path / "m.json").stat().st_mode) == 0o666 & ~_UMASK
    old = os.umask(0o077)  # what _UMASK read at import must be the process's own
    os.umask(old)
    assert _UMASK == old


@pytest.mark.parametrize("what", ["weights", "state"])
def test_a_full_disk_while_saving_a_checkpoint_names_the_file_and_keeps_the_old_one(
        tmp_path, monkeypatch, what):
    """safetensors and torch.save report a full disk in their own error types (SafetensorError,
    RuntimeError 'unexpected pos'); checkpoints are serialised first and written as bytes, so
    the disk's OSError is what reaches cnnlab and becomes a DiskFullError."""
    import builtins

    import cnnlab._io
    from cnnlab.checkpoint import load_state, load_weights, save_state, save_weights
    model, target = torch.nn.Linear(3, 2), tmp_path / ("best.safetensors" if what == "weights" else "last_state.pt")
    save = (lambda: save_weights(model, target)) if what == "weights" else (lambda: save_state({"epoch": 1}, target))
    save()

    class FullDisk:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            self.f.write(bytes(data)[:100])
            raise OSError(errno.ENOSPC, "No space left on device")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    def full_open(file, mode="r", **kw):
        f = builtins.open(file, mode, **kw)
        return FullDisk(f) if "w" in mode else f
    monkeypatch.setattr(cnnlab._io, "open", full_open, raising=False)
    with torch.no_grad():
        model.weight.fill_(7.0)
    with pytest.raises(DiskFullError, match=f"disk full while writing .*{target.name}; the previous"):
        save() if what == "weights" else save_state({"epoch": 2}, target)
    monkeypatch.undo()
    assert [q.name for q in tmp_path.iterdir()] == [target.name]  # no temporary file left
    if what == "weights":
        kept = torch.nn.Linear(3, 2)
        load_weights(kept, target)
        assert not (kept.weight == 7.0).any()
    else:
        assert load_state(target) == {"epoch": 1}


def test_checkpoints_get_the_usual_permissions_too(tmp_path):
    import stat

    from cnnlab._io import _UMASK
    from cnnlab.checkpoint import save_state, save_weights
    save_weights(torch.nn.Linear(2, 2), tmp_path / "best.safetensors")
    save_state({"epoch": 1}, tmp_path / "last_state.pt")
    for name in ("best.safetensors", "last_state.pt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~_UMASK, name


def test_a_run_folder_is_not_trained_into_twice(tmp_path):
    """A second run into a finished (or interrupted) run's folder would replace its weights and
    leave the old test figures and plots beside the new run's: refused, naming --resume."""
    one_epoch = RECIPE.override({"epochs": 1})
    cnnlab.train(one_epoch, dataset=toy_dataset(), run_dir=tmp_path / "r", log=quiet)
    before = {q.name: q.read_bytes() for q in (tmp_path / "r").iterdir()}
    with pytest.raises(FileExistsError, match=r"r holds a run already; continue it with --resume "
                                              r".*r, or give another --run-dir"):
        cnnlab.train(one_epoch, dataset=toy_dataset(), run_dir=tmp_path / "r", log=quiet)
    assert {q.name: q.read_bytes() for q in (tmp_path / "r").iterdir()} == before
    # an existing folder without a run in it is fine, and so is a run stopped in its first epoch
    # (only its recipe.json: nothing to resume, nothing to lose)
    (tmp_path / "empty").mkdir()
    cnnlab.train(one_epoch, dataset=toy_dataset(), run_dir=tmp_path / "empty", log=quiet)
    (tmp_path / "stopped").mkdir()
    (tmp_path / "stopped" / "recipe.json").write_text((tmp_path / "r" / "recipe.json").read_text())
    cnnlab.train(one_epoch, dataset=toy_dataset(), run_dir=tmp_path / "stopped", log=quiet)


def test_resuming_a_folder_that_is_not_a_run_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="cannot resume .*nope: no such folder"):
        cnnlab.train(None, dataset=toy_dataset(), resume=tmp_path / "nope", log=quiet)
    (tmp_path / "plain").mkdir()
    with pytest.raises(FileNotFoundError, match="cannot resume .*plain: not a cnnlab run folder"):
        cnnlab.train(None, dataset=toy_dataset(), resume=tmp_path / "plain", log=quiet)


def test_resuming_a_finished_and_tested_run_is_refused_and_changes_nothing(tmp_path):
    cnnlab.train(RECIPE.override({"epochs": 1}), dataset=toy_dataset(), run_dir=tmp_path / "r", log=quiet)
    before = {q.name: q.read_bytes() for q in (tmp_path / "r").iterdir()}
    with pytest.raises(ValueError, match=r"finished already \(epoch 1 of 1\), and was tested: "
                                         r"nothing to resume. `cnnlab evaluate .*r` tests it again"):
        cnnlab.train(None, dataset=toy_dataset(), resume=tmp_path / "r", log=quiet)
    assert {q.name: q.read_bytes() for q in (tmp_path / "r").iterdir()} == before


def test_training_state_refuses_pickled_objects(tmp_path):
    from cnnlab.checkpoint import load_state

    # a file holding an arbitrary class instance must be refused, not unpickled
    torch.save({"x": NotATensor()}, tmp_path / "last_state.pt")
    with pytest.raises(ValueError, match="cannot read training state") as e:
        load_state(tmp_path / "last_state.pt")
    # one line, the refused global named; not PyTorch's advice to load it with weights_only=False
    assert "Unsupported global: GLOBAL test_runs.NotATensor was not an allowed global by default; a " \
           "Python object, refused (never unpickled))" in str(e.value)
    assert "\n" not in str(e.value) and "\x1b" not in str(e.value) and "weights_only` set to `False" not in str(e.value)


@pytest.mark.parametrize("keep", [0, 100])
def test_resuming_a_damaged_training_state_names_it_and_says_what_to_do(tmp_path, keep):
    """An empty or cut-short last_state.pt (damaged from outside: the writes are atomic) said
    'cannot read training state ()', or PyTorch's zip error cut off mid-sentence, and nothing of
    what to do: the message names the file, the error, and the way on from last.safetensors."""
    cnnlab.train(RECIPE.override({"epochs": 1}), dataset=toy_dataset(), run_dir=tmp_path / "r", log=quiet,
                 device="cpu", progress=False)
    (tmp_path / "r" / "test_metrics.json").unlink()  # as if killed before the test
    state = tmp_path / "r" / "last_state.pt"
    state.write_bytes(state.read_bytes()[:keep])
    with pytest.raises(ValueError) as e:
        cnnlab.train(None, {"epochs": 2}, dataset=toy_dataset(), resume=tmp_path / "r", log=quiet, device="cpu")
    msg = str(e.value)
    assert f"cannot resume: {state}: cannot read training state (" in msg
    assert "()" not in msg and ("EOFError: the file is empty" in msg if keep == 0 else
                                "RuntimeError: PytorchStreamReader failed reading zip archive: failed finding "
                                "central directory)" in msg)
    assert msg.endswith(f"--set pretrained={tmp_path / 'r' / 'last.safetensors'} pretrained_part=all ...")
    cnnlab.train(RECIPE.override({"epochs": 1, "pretrained": str(tmp_path / "r" / "last.safetensors"),
                                  "pretrained_part": "all"}), dataset=toy_dataset(), run_dir=tmp_path / "new",
                 log=quiet, device="cpu", progress=False)  # the way on that the message gives works


def test_corrupt_weights_file_named(tmp_path):
    from cnnlab.checkpoint import load_weights
    (tmp_path / "best.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="best.safetensors: not a readable safetensors"):
        load_weights(torch.nn.Linear(1, 1), tmp_path / "best.safetensors")


def test_load_run_gives_trained_model(tmp_path):
    run = cnnlab.train(RECIPE.override({"epochs": 1}), dataset=toy_dataset(), run_dir=tmp_path / "r", log=quiet)
    again = cnnlab.load_run(tmp_path / "r")
    x = torch.randn(2, 1, 28, 28, device=next(run.model.parameters()).device)
    # the trained model is channels_last, the loaded one not: the same up to float rounding
    torch.testing.assert_close(again.model(x), run.model(x), rtol=1e-5, atol=1e-5)
    assert len(again.history) == 1


def test_weights_holding_nan_warn_when_loaded(tmp_path):
    from safetensors.torch import load_file, save_file
    cnnlab.train(RECIPE.override({"epochs": 1}), dataset=toy_dataset(), run_dir=tmp_path / "r", log=quiet)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cnnlab.load_run(tmp_path / "r")  # a run's own weights: no warning
    weights = load_file(tmp_path / "r" / "best.safetensors")
    key = next(k for k in weights if k.endswith("weight"))
    weights[key][0] = float("nan")
    save_file(weights, tmp_path / "r" / "best.safetensors")
    with pytest.warns(UserWarning, match=rf"best.safetensors: 1 tensor\(s\) hold NaN or inf \({key}\)"):
        cnnlab.load_run(tmp_path / "r")


def test_flip_tta_recipe_reports_both_accuracies(tmp_path, monkeypatch):
    ds = toy_dataset()
    recipe = RECIPE.override({"epochs": 1, "tta": "flip"})
    run = cnnlab.train(recipe, dataset=ds, run_dir=tmp_path / "r", log=quiet)
    t = run.test_metrics
    assert t["tta"] == "flip" and 0.0 <= t["accuracy_without_tta"] <= 1.0
    from cnnlab import runs
    monkeypatch.setattr(runs, "load_dataset", lambda name, data_dir=None: ds)
    again = cnnlab.evaluate(tmp_path / "r")
    assert again["correct"] == t["correct"] and again["accuracy_without_tta"] == t["accuracy_without_tta"]
    assert "with flip TTA; without: " in run.test_line()


def test_retest_applies_the_recipes_new_tta_to_kept_runs(tmp_path, monkeypatch, capsys):
    """``cnnlab reproduce NAME --retest DIR``: a recipe that adopts flip TTA after its runs were
    recorded gets its records re-evaluated from the kept checkpoints, marked in the table."""
    from cnnlab import runs
    from cnnlab.recipes import RECIPES
    from cnnlab.reproduce import build_table, retest, run_and_record
    ds = toy_dataset()
    monkeypatch.setattr(runs, "load_dataset", lambda name, data_dir=None: ds)
    monkeypatch.setitem(RECIPES._items, "toy", RECIPE.override({"epochs": 1}))
    results, kept = tmp_path / "results", tmp_path / "kept"
    results.mkdir()
    [before] = run_and_record("toy", [0], results, keep_runs=kept, log=quiet)
    assert "tta" not in before
    monkeypatch.setitem(RECIPES._items, "toy", RECIPE.override({"epochs": 1, "tta": "flip"}))
    [after] = retest("toy", kept, results, log=quiet)
    flip = cnnlab.evaluate(kept / "toy-seed0", tta="flip")
    assert after["tta"] == "flip" and after["test_accuracy"] == flip["accuracy"]
    assert after["test_accuracy_without_tta"] == before["test_accuracy"]
    assert after["retested"]["tta"] == "flip" and after["train_time_s"] == before["train_time_s"]
    assert json.loads((results / "toy.json").read_text()) == [after]  # updated, not appended
    table = build_table(results)
    assert "| toy † |" in table and "† Test top-1 re-evaluated" in table
    assert "accuracy_without_tta" not in cnnlab.evaluate(kept / "toy-seed0", tta="none")
    from cnnlab.cli import main
    assert main(["evaluate", str(kept / "toy-seed0"), "--tta", "flip"]) == 0
    out = capsys.readouterr().out
    assert f"({100 * flip['accuracy']:.2f}%) with flip TTA" in out
    assert "precision    recall  f1-score   support" in out and "weighted avg" in out
    assert ("most confused (true -> predicted: count): c" in out) == bool(flip["most_confused"])
    # a run trained otherwise than the recipe now says is not retested
    monkeypatch.setitem(RECIPES._items, "toy", RECIPE.override({"epochs": 2, "tta": "flip"}))
    with pytest.raises(ValueError, match="epochs"):
        retest("toy", kept, results, log=quiet)
    with pytest.raises(FileNotFoundError, match="no run folder"):
        retest("toy", tmp_path / "nothing", results, log=quiet)


def test_reproduce_resumes_a_kept_run_that_was_stopped(tmp_path, monkeypatch):
    """``cnnlab reproduce NAME --keep-runs DIR --resume``: a long recipe stopped mid-way
    continues from its last finished epoch, ends as an uninterrupted run would, and its record
    and table row say it was resumed."""
    from cnnlab import runs
    from cnnlab.recipes import RECIPES
    from cnnlab.reproduce import build_table, run_and_record
    ds = toy_dataset()
    monkeypatch.setattr(runs, "load_dataset", lambda name, data_dir=None: ds)
    monkeypatch.setitem(RECIPES._items, "toy", RECIPE)
    results, kept = tmp_path / "results", tmp_path / "kept"
    results.mkdir()
    [whole] = run_and_record("toy", [0], results, keep_runs=tmp_path / "whole", log=quiet, device="cpu")
    (results / "toy.json").unlink()

    train_killed_in_epoch_2(RECIPE.override({"seed": 0}), kept / "toy-seed0")
    assert not (results / "toy.json").exists()  # nothing recorded for the stopped run
    [rec] = run_and_record("toy", [0], results, keep_runs=kept, log=quiet, device="cpu", resume=True)
    assert rec["test_accuracy"] == whole["test_accuracy"] and rec["epochs_run"] == 3
    assert [r["after_epoch"] for r in rec["resumed"]] == [1] and "cpu" in rec["started_on"]
    assert "resumed" not in whole
    table = build_table(results)
    assert "| toy § |" in table and "§ Stopped and resumed" in table

    # a finished kept run is not trained or recorded again
    messages = []
    assert run_and_record("toy", [0], results, keep_runs=kept, log=messages.append, resume=True) == []
    assert "finished and recorded already" in messages[0] and len(json.loads((results / "toy.json").read_text())) == 1
    # one killed after its test figures but before its record (while plotting) is recorded now
    saved = json.loads((results / "toy.json").read_text())
    # only an earlier run's record of the seed (another accuracy): this run is not recorded yet
    (results / "toy.json").write_text(json.dumps([{**saved[0], "test_accuracy": 0.25,
                                                   "run_started": "2026-01-01T00:00:00+00:00"}]))
    (kept / "toy-seed0" / "curves.png").unlink()  # stopped while plotting: drawn now as well
    messages.clear()
    assert run_and_record("toy", [0], results, keep_runs=kept, log=messages.append, resume=True) == []
    earlier, late = json.loads((results / "toy.json").read_text())  # the earlier record superseded
    assert earlier["test_accuracy"] == 0.25 and earlier["superseded"]["reason"].startswith("the same seed")
    assert "superseded" not in late
    assert "not yet recorded; recording it" in messages[0] and (kept / "toy-seed0" / "curves.png").exists()
    assert (late["test_accuracy"], late["epochs_run"], late["resumed"], late["device"], late["machine"]) == (
        saved[0]["test_accuracy"], saved[0]["epochs_run"], saved[0]["resumed"], saved[0]["device"],
        saved[0]["machine"])
    # without --resume, a kept folder that holds a run is not trained into, for any seed
    with pytest.raises(FileExistsError, match="toy-seed0: holds an earlier run of toy; continue it with --resume"):
        run_and_record("toy", [1, 0], results, keep_runs=kept, log=quiet)
    assert not (kept / "toy-seed1").exists()  # checked before seed 1 started
    # a kept run of other settings is not continued under this recipe
    train_killed_in_epoch_2(RECIPE.override({"seed": 1}), kept / "toy-seed1")
    monkeypatch.setitem(RECIPES._items, "toy", RECIPE.override({"lr": 0.5}))
    with pytest.raises(ValueError, match="other settings than recipe toy now has: lr"):
        run_and_record("toy", [1], results, keep_runs=kept, log=quiet, resume=True)
    with pytest.raises(ValueError, match="--keep-runs"):
        run_and_record("toy", [1], results, log=quiet, resume=True)


def test_compiled_run_logs_compile_time_and_saves_plain_weights(tmp_path):
    """``compile=true``: the first-step time is logged and checkpoints keep the model's own keys,
    so the run evaluates and loads without torch.compile."""
    messages = []
    recipe = RECIPE.override({"epochs": 1, "compile": True, "model": "lenet5"})
    run = cnnlab.train(recipe, dataset=toy_dataset(), run_dir=tmp_path / "r", log=messages.append)
    assert any(m.startswith("first step (torch.compile included): ") for m in messages)
    from cnnlab.checkpoint import load_weights
    from cnnlab.models import create_model
    plain = create_model("lenet5", num_classes=4, in_chans=1, input_size=(28, 28))
    load_weights(plain, tmp_path / "r" / "best.safetensors")  # strict: same keys, no _orig_mod
    ds = toy_dataset()  # the saved weights are the trained ones: uncompiled, they score the same
    with torch.no_grad():
        logits = plain.eval()((ds.test_images.float() / 255 - ds.mean[0]) / ds.std[0])
    assert (logits.argmax(1) == ds.test_labels).float().mean().item() == pytest.approx(run.test_metrics["accuracy"])
    assert run.test_metrics["accuracy"] > 0.5  # 4 classes: chance is 0.25


def test_ema_run_checkpoints_the_ema_and_resumes_exactly(tmp_path):
    recipe = RECIPE.override({"ema_decay": 0.9})
    full = cnnlab.train(recipe, dataset=toy_dataset(), run_dir=tmp_path / "full", log=quiet, device="cpu")
    state = torch.load(tmp_path / "full" / "last_state.pt", weights_only=True)
    from safetensors.torch import load_file
    last = load_file(tmp_path / "full" / "last.safetensors")
    ema = {k.removeprefix("module."): v for k, v in state["ema"].items() if k.startswith("module.")}
    assert last.keys() == ema.keys() and all(torch.equal(last[k], ema[k]) for k in last)
    assert not all(torch.equal(last[k], state["model"][k]) for k in last)  # not the raw weights

    train_killed_in_epoch_2(recipe, tmp_path / "cut")
    resumed = cnnlab.train(None, dataset=toy_dataset(), resume=tmp_path / "cut", log=quiet, device="cpu")
    assert without_times(resumed.history) == without_times(full.history)
    assert resumed.test_metrics["correct"] == full.test_metrics["correct"]


def _bench(name: str):
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"{name}_bench", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_val_tta_bench_reads_the_validation_split_only(tmp_path, monkeypatch):
    """benchmarks/val_tta.py, behind the recipes' ``tta`` choices: its no-TTA figure is the best
    epoch's validation top-1 recorded by the run (so it evaluates that split, not the test
    split), and it checks the recipes' TTA kinds and the four one-pixel shifts for digits."""
    bench = _bench("val_tta")
    ds = toy_dataset()
    cnnlab.train(RECIPE.override({"epochs": 1}), dataset=ds, run_dir=tmp_path / "r", log=quiet)
    from cnnlab import runs
    monkeypatch.setattr(runs, "load_dataset", lambda name, data_dir=None: ds)
    acc = bench.check(tmp_path / "r")
    recorded = cnnlab.load_run(tmp_path / "r").history["val_accuracy"][0]
    assert acc["none"] == pytest.approx(100 * recorded)
    assert set(acc) == {"none", "flip", "flip-shift", "shift"} and all(0 <= v <= 100 for v in acc.values())

    x = torch.zeros(1, 1, 5, 5)
    x[0, 0, 2, 2] = 1.0
    shift = bench.shift_views(x)
    assert len(shift) == 5 and torch.equal(shift[0], x)
    moved = {tuple(int(i) for i in v[0, 0].nonzero()[0]) for v in shift[1:]}
    assert moved == {(1, 2), (3, 2), (2, 1), (2, 3)}  # one pixel up, down, left, right

    cnnlab.train(RECIPE.override({"epochs": 1, "val_fraction": 0.0}), dataset=ds, run_dir=tmp_path / "n", log=quiet)
    assert bench.check(tmp_path / "n") is None


def test_denormals_bench_counts_denormal_bits_and_times_all_modes(tmp_path):
    """benchmarks/denormals.py, behind DENORMALS.md: its denormal share reads the bits (so it
    sees denormals even where denormals-are-zero makes them compare equal to 0), and a short run
    from a kept state writes one row per mode, ``--fresh`` adding the initial-weights row."""
    import subprocess
    import sys
    from pathlib import Path
    bench = _bench("denormals")
    def floats(*bits):  # from bit patterns: under flush-to-zero, arithmetic would zero denormals
        return torch.tensor(bits, dtype=torch.int32).view(torch.float32)
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(4))])
    # 0x00000001 and 0x00400000 are denormal; 0x00800000 is the smallest normal float, 0x3F800000 is 1
    opt.state[0] = {"exp_avg": floats(0x00400000, 0x00800000, 0, 0x3F800000),
                    "exp_avg_sq": floats(0x00400000, 0x00000001, 0x00000001, 0)}
    assert bench.denormal_share(opt) == {"exp_avg": 0.25, "exp_avg_sq": 0.75}

    cnnlab.train(RECIPE.override({"epochs": 1}), dataset=toy_dataset(), run_dir=tmp_path / "r", log=quiet)
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "denormals.py"
    out = tmp_path / "D.md"
    subprocess.run([sys.executable, str(script), "--state", str(tmp_path / "r" / "last_state.pt"), "--fresh",
                    "--rounds", "1", "--steps", "2", "--out", str(out)],
                   check=True, capture_output=True, text=True, env={**os.environ, "CNNLAB_LAUNCHER": "0"})
    text = out.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| on") or line.startswith("| off")]
    assert len(rows) == 3 and "initial weights" in rows[2]
    assert "starting from the state of `toy` after epoch 1" in text and "trained state / initial weights" in text


def test_fused_optimizer_bench_times_both_kernels_and_renders_their_ratio(tmp_path, monkeypatch):
    """benchmarks/fused_optimizer.py, behind FUSED_OPTIMIZER.md: each row times the same recipe
    with fused and with foreach kernels (checked on the optimizers it builds) and the table gives
    medians, ranges and fused / foreach."""
    import cnnlab.bench as cb
    assert cb.median_span([3.0, 1200.4, 1000.0]) == "1,000 (3-1,200)"
    bench = _bench("fused_optimizer")
    import speed  # on the path once a benchmark module is loaded
    built = []

    class Runner(cb.CnnlabRunner):
        def __init__(self, *args, **kw):
            super().__init__(*args, **kw)
            built.append((kw.get("fused_optimizer"), bool(self.setup.optimizer.defaults.get("fused"))))
    monkeypatch.setattr(cb, "CnnlabRunner", Runner)
    monkeypatch.setattr(speed, "ensure_launch_settings", lambda: None)  # no re-exec under pytest
    monkeypatch.setattr(bench, "ROWS", (("lenet5", 16, (1, 28, 28), {"optimizer": "adam"}, "mnist-lenet5"),))
    monkeypatch.setattr("sys.argv", ["fused_optimizer.py", "--rounds", "1", "--seconds", "0.05",
                                     "--out", str(tmp_path / "F.md"), "--json", str(tmp_path / "f.json")])
    bench.main()
    assert (True, True) in built and (False, False) in built
    [row] = [line for line in (tmp_path / "F.md").read_text().splitlines() if line.startswith("| lenet5 (16)")]
    assert "`mnist-lenet5`" in row and "| adam |" in row and row.endswith("x |")


def test_channels_last_bench_times_both_layouts_in_fp32_and_renders_their_ratio(tmp_path, monkeypatch):
    """benchmarks/channels_last.py, behind CHANNELS_LAST.md and the fp32 path's channels_last
    default: each row times the same recipe, forced to fp32, with the model in channels_last and in
    NCHW (checked on the weights it trains), and the table gives medians, ranges and the ratio."""
    import cnnlab.bench as cb
    bench = _bench("channels_last")
    import fused_optimizer
    import speed
    built = []

    class Runner(cb.CnnlabRunner):
        def __init__(self, *args, **kw):
            super().__init__(*args, **kw)
            # a conv weight with several input channels, where the two layouts differ
            w = next(p for p in self.setup.model.parameters() if p.dim() == 4 and p.shape[1] > 1)
            built.append((kw.get("channels_last"), self.setup.precision,
                          w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous()))
    monkeypatch.setattr(cb, "CnnlabRunner", Runner)
    monkeypatch.setattr(speed, "ensure_launch_settings", lambda: None)  # no re-exec under pytest
    monkeypatch.setattr(fused_optimizer, "ROWS", (("lenet5", 16, (1, 28, 28), {"optimizer": "adam"}, "mnist-lenet5"),))
    monkeypatch.setattr("sys.argv", ["channels_last.py", "--rounds", "1", "--seconds", "0.05",
                                     "--out", str(tmp_path / "C.md"), "--json", str(tmp_path / "c.json")])
    bench.main()
    assert (True, "fp32", True) in built and (False, "fp32", False) in built
    table = (tmp_path / "C.md").read_text()
    [row] = [line for line in table.splitlines() if line.startswith("| lenet5 (16)")]
    assert "`mnist-lenet5`" in row and row.endswith("x |") and "**geometric mean**" in table


def test_jpeg_cost_bench_encodes_both_splits_and_pairs_runs_by_seed(tmp_path, monkeypatch):
    """benchmarks/jpeg_cost.py, behind JPEG_COST.md: its copy is a real JPEG round trip of both
    splits (same shape, lossy, own statistics), the offset copy stays registered with the input
    (no pixel shift), and the table pairs the two copies' runs seed by seed."""
    bench = _bench("jpeg_cost")
    g = torch.Generator().manual_seed(0)
    smooth = torch.nn.functional.interpolate(torch.rand(8, 3, 8, 8, generator=g), size=32, mode="bilinear")
    x = (smooth * 255).round().to(torch.uint8).float()

    def error(y, dy, dx):  # mean |y - x| with y moved by (dy, dx) pixels, over the overlap
        h, w = x.shape[-2:]
        return (y[..., max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)]
                - x[..., max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]).abs().mean()
    for offset in (0, 3):
        y = bench.jpeg_copy(x.to(torch.uint8), 75, offset)
        assert y.shape == x.shape and y.dtype == torch.uint8 and not torch.equal(y.float(), x)
        moved = [error(y.float(), dy, dx) for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1))]
        assert error(y.float(), 0, 0) < min(moved) / 1.5, (offset, moved)  # registered, not shifted
    gray = bench.jpeg_copy(x[:, :1].to(torch.uint8), 75)
    assert gray.shape == (8, 1, 32, 32)

    ds = toy_dataset()
    copy = bench.reencoded(ds, 75, 0)
    assert copy.provenance["lossy"] and "JPEG quality 75" in copy.provenance["reencoded"]
    assert len(copy.test_images) == len(ds.test_images) and copy.mean != ds.mean

    import speed  # on the path once a benchmark module is loaded
    monkeypatch.setattr(speed, "ensure_launch_settings", lambda: None)  # no re-exec under pytest
    monkeypatch.setattr(bench, "PAIRS", {"fashion": ("toy", RECIPE, 0, {}), "fashion-2nd": ("toy", RECIPE, 1, {})})
    import cnnlab.data
    monkeypatch.setattr(cnnlab.data, "load_dataset", lambda name, data_dir=None: ds)
    monkeypatch.setattr("sys.argv", ["jpeg_cost.py", "--pairs", "fashion", "--seeds", "0", "1", "--epochs", "1",
                                     "--out", str(tmp_path / "J.md"), "--json", str(tmp_path / "j.json")])
    bench.main()
    runs = json.loads((tmp_path / "j.json").read_text())["runs"]
    assert [(r["seed"], r["copy"]) for r in runs] == [(0, "as loaded"), (0, "re-encoded"),
                                                      (1, "as loaded"), (1, "re-encoded")]
    [row] = [line for line in (tmp_path / "J.md").read_text().splitlines() if line.startswith("| fashion")]
    a, b = ([r["test_accuracy"] for r in runs if r["copy"] == c] for c in ("as loaded", "re-encoded"))
    assert "`toy`" in row and "official files (lossless)" in row and row.endswith("| 2 |")
    assert f"| {statistics.mean(100 * (y - x) for x, y in zip(a, b)):+.2f} |" in row

    # a second encoding of a copy made here, added to the same table
    argv = ["jpeg_cost.py", "--pairs", "fashion-2nd", "--seeds", "0", "--epochs", "1", "--append",
            "--out", str(tmp_path / "J.md"), "--json", str(tmp_path / "j.json")]
    monkeypatch.setattr("sys.argv", argv)
    bench.main()
    runs = json.loads((tmp_path / "j.json").read_text())["runs"]
    assert [r["pair"] for r in runs] == ["fashion"] * 4 + ["fashion-2nd"] * 2
    text = (tmp_path / "J.md").read_text()
    assert "| fashion |" in text
    [row] = [line for line in text.splitlines() if line.startswith("| fashion-2nd")]
    assert "JPEG q75 of the official files (made here)" in row and "offset 3 px (a second encoding)" in row
    monkeypatch.setattr("sys.argv", argv[:6] + ["2"] + argv[7:])  # other epochs: not one table
    with pytest.raises(SystemExit, match="same epochs"):
        bench.main()


def test_airbench_training_tricks_run_and_resume_exactly(tmp_path):
    """airbench's training tricks (recipe fields ``lookahead``, ``norm_bias_lr_scale`` and
    ``augment.alternate_flip``) through a whole run: the slow weights travel in last_state.pt and
    the flips follow the epoch, so a run killed mid-epoch and resumed matches an uninterrupted one."""
    recipe = RECIPE.override({"model": "mnist-cnn-bn-403k", "lookahead": {"start_epoch": 1, "every": 5},
                              "norm_bias_lr_scale": 8.0, "optimizer": "sgd", "lr": 0.05,
                              "augment": {"horizontal_flip": True, "alternate_flip": True}})
    full = cnnlab.train(recipe, dataset=toy_dataset(), run_dir=tmp_path / "full", log=quiet, device="cpu")
    state = torch.load(tmp_path / "full" / "last_state.pt", weights_only=True)
    slow = state["callbacks"][-1]["slow"]
    assert slow and all(torch.equal(slow[k], state["model"][k]) for k in slow)  # epoch ends on them
    assert [g["lr"] for g in state["optimizer"]["param_groups"]] == [0.05, 0.4]

    train_killed_in_epoch_2(recipe, tmp_path / "cut")
    resumed = cnnlab.train(None, dataset=toy_dataset(), resume=tmp_path / "cut", log=quiet, device="cpu")
    assert without_times(resumed.history) == without_times(full.history)
    assert resumed.test_metrics["correct"] == full.test_metrics["correct"]


def test_airbench_reference_bench_whitens_crops_and_runs(tmp_path, monkeypatch):
    """benchmarks/airbench_reference.py, behind AIRBENCH_REFERENCE.md: its stem whitens 2x2
    patches (identity covariance up to eps), each crop is a window of its padded image, TTA level
    0 is the plain logits, and a cut-short run of both sides writes one row each."""
    bench = _bench("airbench_reference")
    g = torch.Generator().manual_seed(0)
    mix = torch.tensor([[1.0, 0.5, 0.2], [0.0, 1.0, 0.3], [0.0, 0.0, 1.0]])
    x = torch.einsum("ij,njhw->nihw", mix, torch.randn(64, 3, 16, 16, generator=g))  # correlated
    net = bench.Net()
    net.init_whitening(x, eps=1e-8)
    z = torch.nn.functional.conv2d(x.double(), net.whiten.weight[:12].double())
    z = z.permute(0, 2, 3, 1).reshape(-1, 12)
    assert torch.allclose(z.T @ z / len(z), torch.eye(12, dtype=torch.double), atol=1e-3)
    assert torch.equal(net.whiten.weight[12:], -net.whiten.weight[:12])

    padded = torch.randn(50, 3, 36, 36, generator=g)
    crops = bench.random_crops(padded, 32, g)
    for c, p in zip(crops, padded):
        assert any(torch.equal(c, p[:, dy:dy + 32, dx:dx + 32]) for dy in range(5) for dx in range(5))
    net.eval()
    x = torch.randn(4, 3, 32, 32, generator=g)
    with torch.no_grad():
        views = bench.tta_logits(net, x)
        assert set(views) == {"0", "1", "2"} and torch.allclose(views["0"], net(x))
        assert torch.allclose(views["1"], 0.5 * net(x) + 0.5 * net(x.flip(-1)))

    n = 300  # with a batch of 128 instead of airbench's 1024: the same code path at 1/4 the cost
    monkeypatch.setitem(bench.HYP, "batch_size", 128)
    ds = toy_dataset()
    imgs = torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, 10, (n,), generator=g)

    from dataclasses import replace
    import speed  # on the path once a benchmark module is loaded
    import cnnlab.data
    import cnnlab.runs
    monkeypatch.setattr(speed, "ensure_launch_settings", lambda: None)  # no re-exec under pytest
    cifar_like = replace(ds, train_images=imgs, train_labels=labels, test_images=imgs[:100],
                         test_labels=labels[:100], mean=(), std=(), classes=[str(i) for i in range(10)])
    monkeypatch.setattr(cnnlab.data, "load_dataset", lambda name, data_dir=None: cifar_like)
    monkeypatch.setattr("sys.argv", ["airbench_reference.py", "--seeds", "0", "--steps", "1", "--cnnlab-epochs", "1",
                                     "--out", str(tmp_path / "A.md"), "--json", str(tmp_path / "a.json")])
    bench.main()
    ref = json.loads((tmp_path / "a.json").read_text())["runs"][0]
    assert ref["steps"] == 1 and ref["total_steps"] == 20  # ceil(9.9 epochs x 2 full batches of 128)
    assert all(0 <= v <= 1 for v in ref["accuracy_tta"].values())
    text = (tmp_path / "A.md").read_text()
    assert "cut short at 1 steps" in text
    rows = [line for line in text.splitlines() if line.startswith("| airbench94") or line.startswith("| cnnlab")]
    assert len(rows) == 2 and all(row.endswith("| 1 |") and ("| fp32 |" in row or "| bf16 |" in row) for row in rows)

    monkeypatch.setattr("sys.argv", ["airbench_reference.py", "--seeds", "1", "--steps", "1", "--skip-cnnlab",
                                     "--append", "--out", str(tmp_path / "A.md"), "--json", str(tmp_path / "a.json")])
    bench.main()  # a second seed of the reference joins its row
    rows = [line for line in (tmp_path / "A.md").read_text().splitlines() if line.startswith("| airbench94")]
    assert len(rows) == 1 and rows[0].endswith("| 2 |")

    monkeypatch.setattr("sys.argv", ["airbench_reference.py", "--seeds", "1", "--steps", "1", "--cnnlab-epochs", "1",
                                     "--skip-reference", "--append", "--out", str(tmp_path / "A.md"),
                                     "--json", str(tmp_path / "a.json")])
    bench.main()  # cnnlab's side alone: its second seed joins its row, the reference's is unchanged
    lines = (tmp_path / "A.md").read_text().splitlines()
    [ref_row] = [line for line in lines if line.startswith("| airbench94")]
    [cnnlab_row] = [line for line in lines if line.startswith("| cnnlab")]
    assert ref_row.endswith("| 2 |") and cnnlab_row.endswith("| 2 |")
    assert "`features.whiten.bias` trained 3 epochs" in cnnlab_row  # the recipe's freeze_after
    out = json.loads((tmp_path / "a.json").read_text())
    del [r for r in out["runs"] if r["who"] == "cnnlab"][0]["freeze_after"]  # a run from before it
    cnnlab_rows = [line for line in bench.render(out).splitlines() if line.startswith("| cnnlab")]
    assert len(cnnlab_rows) == 2 and "whitening bias trained throughout" in cnnlab_rows[0]


def test_a_validation_split_that_leaves_nothing_to_train_on_is_an_error(tmp_path):
    """val_fraction=0.99 of iris' 97 training rows left none: the run "trained" 50 epochs on
    nothing (loss 0, accuracy 0) and reported a test score. Now the recipe is refused, by name."""
    from cnnlab.recipes import RecipeError
    with pytest.raises(RecipeError, match=r"val_fraction=0.999 holds out 600 of the 600 training "
                                          r"examples of 'toy', leaving 0 to train on: lower val_fraction"):
        cnnlab.train(RECIPE.override({"val_fraction": 0.999}), dataset=toy_dataset(), run_dir=tmp_path / "r", log=quiet)
    five = toy_dataset(n_train=5)  # classes 0, 1, 2, 3, 0: 60% holds out 1 of each, 1 example left
    with pytest.raises(RecipeError, match=r"leaving 1 to train on \(a batch of one is dropped\)"):
        cnnlab.train(RECIPE.override({"val_fraction": 0.6}), dataset=five, run_dir=tmp_path / "s", log=quiet)


def test_fp32_on_the_cpu_trains_channels_last_and_says_why_auto_chose_fp32(tmp_path, monkeypatch):
    """Without native bf16, ``auto`` trains in fp32, and on the CPU in channels_last (1.08x on the
    seed models' geometric mean, AVX2 CPU, benchmarks/CHANNELS_LAST.md); the log says why fp32.
    An explicit ``channels_last=false`` still wins; bf16 asked for on such a CPU is warned about."""
    from cnnlab import device
    from cnnlab.runs import prepare
    monkeypatch.setattr(device, "native_bf16", lambda dev: False)
    recipe = RECIPE.model_copy(update={"precision": "auto", "epochs": 1})
    s = prepare(recipe, toy_dataset(), "cpu", log=quiet, progress=False)
    assert s.precision == "fp32" and s.channels_last
    w = s.model.features.conv2.weight  # (64, 32, 3, 3): the two layouts differ
    assert w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous()
    lines = []
    cnnlab.train(recipe, dataset=toy_dataset(), run_dir=tmp_path / "r", log=lines.append)
    [head] = [m for m in lines if m.startswith("training toy:")]
    assert "fp32 channels_last on cpu (precision auto: no native bf16 on this CPU)" in head
    off = prepare(recipe.model_copy(update={"channels_last": False}), toy_dataset(), "cpu",
                  log=quiet, progress=False)
    assert not off.channels_last
    from cnnlab import runs
    monkeypatch.setattr(runs, "native_bf16", lambda dev: False)
    lines.clear()
    cnnlab.train(recipe.model_copy(update={"precision": "bf16"}), dataset=toy_dataset(n_train=64, n_test=16),
                 run_dir=tmp_path / "b", log=lines.append)
    assert "this CPU has no native bf16; PyTorch emulates it" in [m for m in lines if m.startswith("training")][0]


def test_confusion_matrix_plot_checks_its_shape(tmp_path):
    from cnnlab.report.plots import plot_confusion_matrix
    plot_confusion_matrix([[3, 1], [0, 4]], ["cat", "dog"], tmp_path / "cm.png")
    assert (tmp_path / "cm.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match=r"confusion matrix of shape \(2, 2\) for 3 classes"):
        plot_confusion_matrix([[3, 1], [0, 4]], ["a", "b", "c"], tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


@pytest.mark.parametrize("at_epoch, resumable", [(1, False), (2, True)])
def test_ctrl_c_names_the_run_folder_and_whether_it_can_resume(tmp_path, at_epoch, resumable):
    """Ctrl-C during epoch N's log line (after epoch N - 1 was saved) reaches the caller marked
    with the run folder and whether a finished epoch was saved there."""
    def log(msg):
        if msg.startswith(f"epoch {at_epoch}/3"):
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt) as info:
        cnnlab.train(RECIPE, dataset=toy_dataset(), run_dir=tmp_path / "r", log=log, progress=False)
    assert info.value.run_dir == tmp_path / "r" and info.value.resumable is resumable


def test_class_weight_weighs_the_training_loss_only(tmp_path):
    """'balanced' is n / (K n_k) over the training split; a dict takes names or indices; the
    validation loss (which EarlyStopping, ReduceLROnPlateau and checkpoints watch) stays unweighted."""
    from cnnlab.recipes import RecipeError
    from cnnlab.runs import _class_weights, prepare
    labels = torch.tensor([0] * 6 + [1] * 3 + [2] * 1)
    r = RECIPE.override({"class_weight": "balanced"})
    assert _class_weights(r, ["a", "b", "c"], labels).tolist() == pytest.approx([10 / 18, 10 / 9, 10 / 3])
    r = RECIPE.override({"class_weight": {"b": 2, "2": 0.5}})
    assert _class_weights(r, ["a", "b", "c"], labels).tolist() == [1.0, 2.0, 0.5]
    with pytest.raises(RecipeError, match=r"key 'bb' is neither a class name nor an index 0-2; did you mean 'b'"):
        _class_weights(RECIPE.override({"class_weight": {"bb": 2}}), ["a", "b", "c"], labels)
    with pytest.raises(RecipeError, match="class 'c' has no training example"):
        _class_weights(RECIPE.override({"class_weight": "balanced"}), ["a", "b", "c"], labels[:9])
    lines = []
    s = prepare(RECIPE.override({"class_weight": {"c0": 5}}), toy_dataset(), "cpu", log=lines.append)
    assert "class weights: c0 5, c1 1, c2 1, c3 1" in lines
    x, y = next(iter(s.train))
    with torch.no_grad():
        logits = s.model(x)
    plain = torch.nn.functional.cross_entropy(logits, y)
    assert float(s.trainer.eval_loss_fn(logits, y)) == pytest.approx(float(plain))
    assert float(s.trainer.loss_fn(logits, y)) > float(plain)  # class c0 counts five times


def test_a_recipe_refused_while_preparing_leaves_no_folder(tmp_path):
    from cnnlab.recipes import RecipeError
    with pytest.raises(RecipeError, match="class_weight key 'dog'"):
        cnnlab.train(RECIPE.override({"class_weight": {"dog": 2}}), dataset=toy_dataset(),
                     run_dir=tmp_path / "r", log=quiet)
    assert not (tmp_path / "r").exists()


def test_a_binary_model_on_more_than_two_classes_is_refused_before_the_run_folder(tmp_path):
    # it failed at the first batch ("label 3 ... outside the model's classes"), recipe.json written
    with pytest.raises(RecipeError, match="model_kwargs.binary=true is one sigmoid logit for two "
                                          "classes; dataset 'toy' has 4"):
        cnnlab.train(RECIPE.override({"model_kwargs": {"binary": True}}), dataset=toy_dataset(),
                     run_dir=tmp_path / "r", log=quiet, device="cpu")
    assert not (tmp_path / "r").exists()


def test_a_model_option_of_the_wrong_type_is_a_recipe_error(tmp_path):
    # a TypeError from inside the model's constructor: a traceback from `cnnlab train`
    with pytest.raises(RecipeError, match=r"model_kwargs \{'dropout1': 'none'\} of model 'mnist-cnn-small': "):
        cnnlab.train(RECIPE.override(["model_kwargs.dropout1=none"]), dataset=toy_dataset(),
                     run_dir=tmp_path / "r", log=quiet, device="cpu")
    assert not (tmp_path / "r").exists()


def test_a_run_without_its_best_weights_points_at_the_last(tmp_path):
    cnnlab.train(RECIPE.override({"epochs": 1}), dataset=toy_dataset(), run_dir=tmp_path / "r", log=quiet)
    (tmp_path / "r" / "best.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="no best.safetensors.*--weights last"):
        cnnlab.load_run(tmp_path / "r")
    assert cnnlab.load_run(tmp_path / "r", weights="last").recipe.epochs == 1


def test_labels_outside_the_classes_are_named_with_a_value():
    from cnnlab.data.core import ImageDataset
    y = torch.tensor([0, 1, 200, 1])
    with pytest.raises(ValueError, match=r"digits: train labels outside 0..1 \(the 2 classes\), "
                                         r"e.g. 200 at index 2; a corrupt labels file"):
        ImageDataset("digits", torch.zeros(4, 1, 2, 2, dtype=torch.uint8), y,
                     torch.zeros(1, 1, 2, 2, dtype=torch.uint8), torch.tensor([0]), ["a", "b"])


def test_a_failing_plot_is_a_warning_after_the_result_is_written(tmp_path, monkeypatch):
    import cnnlab.report.plots as plots

    def broken(*a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(plots, "plot_confusion_matrix", broken)
    said = []
    run = cnnlab.train(RECIPE.override({"epochs": 1}), dataset=toy_dataset(), run_dir=tmp_path / "r",
                       log=said.append)
    assert json.loads((tmp_path / "r" / "test_metrics.json").read_text())["accuracy"] == run.test_metrics["accuracy"]
    assert any(m.startswith("warning: confusion matrix not plotted (OSError") for m in said)
    assert {"curves.png", "predictions_best.png", "predictions_worst.png"} <= {q.name for q in (tmp_path / "r").iterdir()}


def test_a_resumed_run_keeps_the_examples_it_was_limited_to(tmp_path):
    """limit (smoke runs) changes the split: a resumed run must use the same examples."""
    cnnlab.train(RECIPE.override({"epochs": 1}), dataset=toy_dataset(), run_dir=tmp_path / "r",
                 log=quiet, limit=150)
    (tmp_path / "r" / "test_metrics.json").unlink()  # trained, not tested: resuming tests it
    run = cnnlab.train(None, dataset=toy_dataset(), resume=tmp_path / "r", log=quiet)
    assert run.test_metrics["total"] == 150
    assert json.loads((tmp_path / "r" / "recipe.json").read_text())["dataset"]["provenance"]["limit"] == 150


def test_a_run_on_a_dataset_of_your_own_is_evaluated_with_it_not_with_the_recipes(tmp_path, monkeypatch):
    """train(dataset=...) with a recipe naming another dataset: evaluating the run later by the
    recipe's dataset would score it on other classes (or download them): refused, and the
    dataset is passed again instead."""
    from cnnlab import runs
    from cnnlab.data.core import ImageDataset
    ds = toy_dataset()
    mine = ImageDataset("mine", ds.train_images, ds.train_labels, ds.test_images, ds.test_labels,
                        list("abcd"))
    run = cnnlab.train(RECIPE.override({"dataset": "mnist", "epochs": 1}), dataset=mine,
                       run_dir=tmp_path / "r", log=quiet)
    monkeypatch.setattr(runs, "load_dataset", lambda *a, **k: pytest.fail("loaded the recipe's dataset"))
    with pytest.raises(ValueError, match="trained on the dataset 'mine' passed to train\\(dataset=...\\), "
                                         "not on its recipe's 'mnist': pass that dataset again"):
        cnnlab.evaluate(tmp_path / "r")
    assert cnnlab.evaluate(tmp_path / "r", dataset=mine)["correct"] == run.test_metrics["correct"]
    other = ImageDataset("other", ds.train_images, ds.train_labels, ds.test_images, ds.test_labels,
                         list("wxyz"))
    with pytest.raises(ValueError, match="with classes a, b, c, d and images \\(1, 28, 28\\); the dataset "
                                         "'other' given now has classes w, x, y, z"):
        cnnlab.load_run(tmp_path / "r", dataset=other)


def test_reproduce_keeps_one_record_per_seed_and_no_temporary_folder(tmp_path, monkeypatch):
    """A seed run again (after an interrupted reproduce without --keep-runs) replaces its record
    instead of counting twice in the table; without --keep-runs nothing is left in the temp dir."""
    import tempfile

    from cnnlab import runs
    from cnnlab.recipes import RECIPES
    from cnnlab.reproduce import run_and_record
    ds = toy_dataset()
    monkeypatch.setattr(runs, "load_dataset", lambda name, data_dir=None: ds)
    monkeypatch.setitem(RECIPES._items, "toy", RECIPE.override({"epochs": 1}))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    results = tmp_path / "results"
    results.mkdir()
    run_and_record("toy", [0, 1], results, log=quiet, device="cpu")
    messages = []
    run_and_record("toy", [0], results, log=messages.append, device="cpu")
    recs = json.loads((results / "toy.json").read_text())
    current = [r for r in recs if not r.get("superseded")]
    assert sorted(r["seed"] for r in current) == [0, 1] and recs[-1]["seed"] == 0
    # the rerun seed's first record stays, marked: reruns are visible, never counted twice
    assert [r["seed"] for r in recs if r.get("superseded")] == [0]
    assert any("seed 0's earlier record" in m and "superseded by this run's (kept in the file)" in m
               for m in messages)
    assert list((tmp_path / "tmp").iterdir()) == []  # the temporary run folders are gone
    run_and_record("toy", [0], results, overrides={"lr": 0.01}, log=quiet, device="cpu")
    assert len(json.loads((results / "toy.json").read_text())) == 4  # other overrides: its own record


def test_resume_refuses_another_step_count_and_fewer_epochs_than_trained(tmp_path):
    """Resumed under another number of torchrun processes, an epoch has another number of steps
    (DDP drops the last partial global batch) and the saved per-step schedule ends off course:
    refused, naming the process count. So is --epochs below the epochs already trained."""
    from cnnlab.checkpoint import load_state, save_state
    from cnnlab.recipes import RecipeError
    cosine = RECIPE.override({"schedule": "cosine"})
    train_killed_in_epoch_2(cosine, tmp_path / "cut")
    state = load_state(tmp_path / "cut" / "last_state.pt")
    assert (state["steps_per_epoch"], state["processes"]) == (8, 1)  # 480 examples, batch 64
    save_state({**state, "steps_per_epoch": 7, "processes": 2}, tmp_path / "cut" / "last_state.pt")
    with pytest.raises(ValueError, match=r"took 7 steps per epoch with 2 process\(es\), here it takes 8 "
                                         r"with 1.*resume it with 2 process\(es\) \(torchrun --nproc_per_node=2\)"):
        cnnlab.train(None, dataset=toy_dataset(), resume=tmp_path / "cut", log=quiet)
    train_killed_in_epoch_2(RECIPE, tmp_path / "flat")  # a constant rate: epochs may change
    state = load_state(tmp_path / "flat" / "last_state.pt")
    save_state({**state, "epoch": 1}, tmp_path / "flat" / "last_state.pt")  # as if 2 epochs were done
    with pytest.raises(RecipeError, match=r"finished 2 epochs already; epochs=1 would leave"):
        cnnlab.train(None, {"epochs": 1}, dataset=toy_dataset(), resume=tmp_path / "flat", log=quiet)


def test_a_kill_between_the_best_checkpoint_and_the_state_leaves_no_best_of_a_lost_epoch(tmp_path, monkeypatch):
    """ModelCheckpoint writes at the epoch's end, the state right after: a kill in between used
    to leave best.safetensors from an epoch that resuming trains again (and, if that epoch then did
    not improve, tested weights the resumed run never had). The best now waits as a pending file
    until the state holds its epoch."""
    from safetensors import safe_open

    from cnnlab import runs
    recipe = RECIPE.override({"monitor": "val_loss"})
    full = cnnlab.train(recipe, dataset=toy_dataset(), run_dir=tmp_path / "full", log=quiet, device="cpu")
    assert full.test_metrics["best_epoch"] >= 2  # epoch 2 improved on epoch 1
    real_save_state, calls = runs.save_state, []

    def killed_at_second_save(state, path):
        calls.append(path)
        if len(calls) == 2:
            raise Killed
        real_save_state(state, path)
    monkeypatch.setattr(runs, "save_state", killed_at_second_save)
    with pytest.raises(Killed):
        cnnlab.train(recipe, dataset=toy_dataset(), run_dir=tmp_path / "cut", log=quiet, device="cpu")
    monkeypatch.setattr(runs, "save_state", real_save_state)

    def epoch_of(f):
        with safe_open(str(f), "pt") as g:
            return g.metadata()["epoch"]
    cut = tmp_path / "cut"
    assert epoch_of(cut / "best.safetensors") == "1" and epoch_of(cut / runs.PENDING_BEST) == "2"
    resumed = cnnlab.train(None, dataset=toy_dataset(), resume=cut, log=quiet, device="cpu")
    assert not (cut / runs.PENDING_BEST).exists()
    assert resumed.test_metrics["correct"] == full.test_metrics["correct"]
    assert resumed.test_metrics["best_epoch"] == full.test_metrics["best_epoch"]


def test_a_kill_between_the_last_state_and_metrics_csv_loses_no_row(tmp_path, monkeypatch):
    """The final epoch's state written, its metrics.csv row not: resuming finds every epoch done
    and trains nothing, yet rewrites metrics.csv from the saved history."""
    from cnnlab import runs
    real_write = runs.write_metrics_csv

    def killed_at_the_last_epoch(path, history):
        if len(history) == RECIPE.epochs:
            raise Killed
        real_write(path, history)
    monkeypatch.setattr(runs, "write_metrics_csv", killed_at_the_last_epoch)
    with pytest.raises(Killed):
        cnnlab.train(RECIPE, dataset=toy_dataset(), run_dir=tmp_path / "r", log=quiet, device="cpu")
    monkeypatch.setattr(runs, "write_metrics_csv", real_write)
    assert len(runs.read_metrics_csv(tmp_path / "r" / "metrics.csv")) == RECIPE.epochs - 1
    resumed = cnnlab.train(None, dataset=toy_dataset(), resume=tmp_path / "r", log=quiet, device="cpu")
    assert len(resumed.history) == RECIPE.epochs
    rows = runs.read_metrics_csv(tmp_path / "r" / "metrics.csv")
    assert rows["epoch"] == [1, 2, 3] and rows["val_loss"] == pytest.approx(resumed.history["val_loss"], rel=1e-5)


def test_a_recipe_run_leaves_restore_best_weights_off_and_says_what_it_tests():
    """The run tests best.safetensors, the best epoch by the recipe's monitor: weights that
    EarlyStopping restored by its own monitor were replaced unseen, yet logged as restored."""
    from cnnlab import runs
    from cnnlab.training import EarlyStopping
    recipe = RECIPE.override({"monitor": "val_accuracy", "early_stopping.monitor": "val_loss",
                              "early_stopping.restore_best_weights": True})
    logs = []
    es, = [c for c in runs._callbacks(recipe, None, "best.safetensors", "val_accuracy", log=logs.append)
           if isinstance(c, EarlyStopping)]
    assert not es.restore_best_weights and es.monitor == "val_loss"
    assert logs == ["early_stopping.restore_best_weights is not applied: the run tests its best checkpoint, "
                    "the best epoch by val_accuracy (the recipe's monitor)"]
    es, = [c for c in runs._callbacks(recipe, None, None, "val_accuracy") if isinstance(c, EarlyStopping)]
    assert es.restore_best_weights  # no checkpoint (prepare's other users): Keras' behaviour


def test_resuming_a_run_stopped_while_plotting_draws_its_plots(tmp_path, monkeypatch):
    from cnnlab import runs
    ds = toy_dataset()
    monkeypatch.setattr(runs, "load_dataset", lambda name, data_dir=None: ds)
    real_plot = runs._plot_run

    def killed_while_plotting(*a, **k):
        raise Killed
    monkeypatch.setattr(runs, "_plot_run", killed_while_plotting)
    with pytest.raises(Killed):
        cnnlab.train(RECIPE, dataset=ds, run_dir=tmp_path / "r", log=quiet)
    monkeypatch.setattr(runs, "_plot_run", real_plot)
    before = (tmp_path / "r" / "test_metrics.json").read_bytes()
    assert not (tmp_path / "r" / "curves.png").exists()
    messages = []
    run = cnnlab.train(None, resume=tmp_path / "r", log=messages.append)
    assert any("stopped while plotting: drawing its plots" in m for m in messages)
    for f in ("curves.png", "confusion_matrix.png", "predictions_best.png", "predictions_worst.png"):
        assert (tmp_path / "r" / f).read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "r" / "test_metrics.json").read_bytes() == before and run.test_metrics["total"] == 200
    with pytest.raises(ValueError, match="finished already"):  # now complete: nothing to resume
        cnnlab.train(None, resume=tmp_path / "r", log=quiet)


def test_normalize_takes_one_mean_for_all_channels(tmp_path):
    from cnnlab.runs import Run
    from cnnlab.training import History
    (tmp_path / "recipe.json").write_text(json.dumps({"recipe": {"name": "toy"}, "dataset": {
        "name": "toy", "classes": ["a"], "provenance": {}, "image_shape": [3, 2, 2], "mean": [0.5], "std": [0.25]}}))
    run = Run(tmp_path, RECIPE, torch.nn.Conv2d(3, 1, 1), History())
    x = run.normalize(torch.full((1, 3, 2, 2), 255, dtype=torch.uint8))
    assert torch.allclose(x, torch.full((1, 3, 2, 2), 2.0))  # (1 - 0.5) / 0.25


def test_resume_refuses_data_other_than_the_runs(tmp_path):
    from cnnlab.data.core import ImageDataset
    ds = toy_dataset()
    mine = ImageDataset("toy", ds.train_images, ds.train_labels, ds.test_images, ds.test_labels, ds.classes,
                        provenance={"files": {"a.bin": "1" * 64}})
    with pytest.raises(Killed):
        def killer(msg):
            if msg.startswith("epoch 2/3"):
                raise Killed
        cnnlab.train(RECIPE, dataset=mine, run_dir=tmp_path / "cut", log=killer)
    changed = ImageDataset("toy", ds.train_images, ds.train_labels, ds.test_images, ds.test_labels, ds.classes,
                           provenance={"files": {"a.bin": "2" * 64}})
    with pytest.raises(ValueError, match=r"trained on the files a.bin; the dataset read now has a.bin "
                                         r"\(changed: a.bin\): resuming would go on with other data"):
        cnnlab.train(None, dataset=changed, resume=tmp_path / "cut", log=quiet)


def test_without_a_validation_split_every_callback_watches_the_training_metric(tmp_path):
    """The best checkpoint switched to `loss` while early stopping kept watching `val_loss`
    and never acted; now all three switch, and the log says so."""
    lines = []
    run = cnnlab.train(RECIPE.override({"epochs": 4, "val_fraction": 0.0, "early_stopping.patience": 0,
                                        "early_stopping.min_delta": 10.0, "reduce_lr.patience": 0,
                                        "reduce_lr.min_delta": 10.0}),
                       dataset=toy_dataset(), run_dir=tmp_path / "r", log=lines.append)
    assert len(run.history.epochs) == 2  # no loss falls by 10: stopped after the second epoch
    assert any("early_stopping watches loss, not val_loss" in m for m in lines)
    assert any("reduce_lr watches loss, not val_loss" in m for m in lines)
    assert "ReduceLROnPlateau: epoch 2: learning rate 0.001 -> 0.0001" in lines  # it acts
    assert any("the best checkpoint watches accuracy, not val_accuracy" in m for m in lines)


def test_a_run_made_before_a_newer_check_still_loads(tmp_path):
    """A saved recipe pairing reduce_lr with a schedule and a Keras-2 monitor name (refused for new
    runs since) is read as it was: the run evaluates; only resuming it is refused, with the reason."""
    from cnnlab.recipes import RecipeError
    run_dir = tmp_path / "old"
    cnnlab.train(RECIPE.override({"epochs": 1}), dataset=toy_dataset(), run_dir=run_dir, log=quiet)
    meta = json.loads((run_dir / "recipe.json").read_text())
    meta["recipe"].update(schedule="cosine", reduce_lr={"monitor": "val_loss", "patience": 2},
                          early_stopping={"monitor": "val_acc", "patience": 2})
    write_json(run_dir / "recipe.json", meta)
    assert cnnlab.load_run(run_dir).recipe.early_stopping.monitor == "val_acc"
    assert cnnlab.evaluate(run_dir, dataset=toy_dataset())["accuracy"] > 0
    with pytest.raises(RecipeError, match="cannot resume .* pairs reduce_lr with the 'cosine' schedule"):
        cnnlab.train(None, dataset=toy_dataset(), resume=run_dir, log=quiet)


def test_resume_reads_the_data_from_the_folder_the_run_read(tmp_path, monkeypatch):
    # `cnnlab train --resume RUN` (the command an interrupted run prints) with no --data-dir:
    # the files are where the run read them, not in the cache (nor downloadable here)
    monkeypatch.chdir(tmp_path)
    data = write_mnist_folder(tmp_path / "files", n_train=60, n_test=20)
    cnnlab.train("mnist-lenet5", {"epochs": 1, "batch_size": 16, "val_fraction": 0.25}, data_dir=data,
                 run_dir="r", log=quiet, device="cpu", progress=False)
    run = cnnlab.train(None, {"epochs": 2}, resume="r", log=quiet, device="cpu", progress=False)
    assert len(run.history.epochs) == 2 and run.test_metrics["total"] == 20
    # a run's recipe.json trained again (another seed) reads the same files too
    again = cnnlab.train("r/recipe.json", {"seed": 1}, run_dir="s1", log=quiet, device="cpu", progress=False)
    assert again.test_metrics["total"] == 20


@pytest.mark.parametrize("text, msg", [
    ('{"recipe": {"name": "toy"', r"recipe.json: not readable JSON \(Expecting"),
    ("", r"recipe.json: not readable JSON"),
    ("[1, 2]", r"recipe.json: not a JSON object"),
    ('{"recipe": {"name": "toy"}}', r"recipe.json: no 'dataset' object"),
    ('{"recipe": {"name": "toy"}, "dataset": {"name": "toy", "classes": []}}', r"recipe.json: no dataset.mean"),
])
def test_a_broken_recipe_json_is_named_by_every_reader(tmp_path, text, msg):
    from cnnlab.report.compare import compare_runs
    from cnnlab.runs import load_run
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "recipe.json").write_text(text)
    for read in (load_run, lambda d: compare_runs([d]),
                 lambda d: cnnlab.train(None, resume=d, log=quiet, device="cpu")):
        with pytest.raises(ValueError, match=msg):
            read(tmp_path / "r")


def test_a_recipe_json_with_wrong_fields_is_named(tmp_path):
    from cnnlab.recipes import RecipeError
    from cnnlab.runs import load_run
    run = cnnlab.train(RECIPE.override({"epochs": 1}), dataset=toy_dataset(), run_dir=tmp_path / "r",
                       log=quiet, device="cpu", progress=False)
    meta = json.loads((run.dir / "recipe.json").read_text())
    meta["recipe"]["epochs"] = "two"
    (run.dir / "recipe.json").write_text(json.dumps(meta))
    with pytest.raises(RecipeError, match=r"r/recipe.json: not a valid recipe \(epochs: Input should be a valid integer"):
        load_run(run.dir)


def test_a_damaged_pending_best_file_is_dropped_on_resume(tmp_path):
    # writes are atomic, so only damage from outside leaves such a file: it holds no saved
    # epoch's weights, and resuming drops it instead of failing with safetensors' error
    from cnnlab import runs
    cnnlab.train(RECIPE.override({"epochs": 1}), dataset=toy_dataset(), run_dir=tmp_path / "r", log=quiet,
                 device="cpu", progress=False)
    (tmp_path / "r" / "test_metrics.json").unlink()  # as if killed before the test
    (tmp_path / "r" / runs.PENDING_BEST).write_bytes(b"\x08\x00\x00")
    runs._settle_pending_best(tmp_path / "r", 1)
    assert not (tmp_path / "r" / runs.PENDING_BEST).exists() and (tmp_path / "r" / "best.safetensors").exists()


@pytest.mark.parametrize("change, msg", [
    (lambda m: m["dataset"].pop("mean"), r"no dataset.mean \(list\)"),
    (lambda m: m["dataset"].update(provenance=None), r"no dataset.provenance \(dict\)"),
    (lambda m: m["dataset"].update(image_shape=5), r"dataset.image_shape 5 is not \(C, H, W\) or \(C, L\)"),
    (lambda m: m["recipe"].pop("name"), r"no recipe.name"),
])
def test_recipe_json_fields_every_reader_uses_are_checked(tmp_path, change, msg):
    from cnnlab.runs import load_run, run_meta
    run = cnnlab.train(RECIPE.override({"epochs": 1}), dataset=toy_dataset(), run_dir=tmp_path / "r",
                       log=quiet, device="cpu", progress=False)
    assert run_meta(run.dir)["dataset"]["image_shape"] == [1, 28, 28]
    meta = json.loads((run.dir / "recipe.json").read_text())
    change(meta)
    (run.dir / "recipe.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=msg):
        load_run(run.dir)


def test_an_empty_test_split_is_named_not_an_index_error():
    from cnnlab.models import create_model
    from cnnlab.runs import evaluate_model
    model = create_model("lenet5", num_classes=10)
    with pytest.raises(ValueError, match="the test split of 'toy' holds no examples"):
        evaluate_model(model, [], RECIPE, "fp32", torch.device("cpu"), False, [str(i) for i in range(10)])


def test_speed_bench_counts_fused_convolutions_and_times_stock_layers():
    """FlopCounterMode does not see oneDNN's fused conv + ReLU: counted unfused, a training step
    is about 3x the forward pass; the notebook loop runs stock layers of the same sizes."""
    from torch.utils.flop_counter import FlopCounterMode

    from cnnlab.bench import plain_model, train_flops_per_image
    from cnnlab.models import count_params, create_model
    from cnnlab.models.layers import Conv2dReLU, FlattenNHWC
    step = train_flops_per_image("cifar10-cnn-3block", (3, 32, 32))
    m = plain_model("cifar10-cnn-3block", 3)
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        m(torch.randn(8, 3, 32, 32))
    forward = fc.get_total_flops() / 8
    assert 2.8 * forward < step < 3.0 * forward  # the first layer has no input gradient
    assert not any(isinstance(x, (Conv2dReLU, FlattenNHWC)) for x in m.modules())
    assert count_params(m) == count_params(create_model("cifar10-cnn-3block"))


def test_a_run_on_another_split_of_the_same_files_is_refused(tmp_path):
    """notMNIST's split changed (duplicates removed) while its files did not: a run of the old
    split evaluated on the new one would be tested on images it trained on."""
    ds = toy_dataset()
    ds.provenance["split"] = {"test_fraction": 0.1, "seed": 0}
    cnnlab.train(RECIPE.override({"epochs": 1}), dataset=ds, run_dir=tmp_path / "r", log=quiet)
    cnnlab.load_run(tmp_path / "r", dataset=ds)  # the same split: fine
    other = toy_dataset()
    other.provenance["split"] = {"test_fraction": 0.1, "seed": 0, "duplicates": "removed first"}
    with pytest.raises(ValueError, match="was trained on another split of 'toy' than the one read now"):
        cnnlab.load_run(tmp_path / "r", dataset=other)


def test_a_run_saved_before_warm_up_applied_to_schedule_none_is_not_resumed(tmp_path):
    """warmup_epochs beside schedule none did nothing before 2026-12-03: such a run's state has no
    schedule, and resuming it would start a warm-up mid-run."""
    train_killed_in_epoch_2(RECIPE, tmp_path / "cut")
    meta = json.loads((tmp_path / "cut" / "recipe.json").read_text())
    assert meta["recipe"]["schedule"] == "none"
    meta["recipe"]["warmup_epochs"] = 1.0  # as such a run's recipe.json reads
    (tmp_path / "cut" / "recipe.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="saved without a learning-rate schedule"):
        cnnlab.train(None, dataset=toy_dataset(), resume=tmp_path / "cut", log=quiet, device="cpu")
    meta["recipe"]["reduce_lr"] = {"patience": 2}  # with reduce_lr: refused before anything is built
    (tmp_path / "cut" / "recipe.json").write_text(json.dumps(meta))
    with pytest.raises(RecipeError, match="pairs reduce_lr with a warm-up"):
        cnnlab.train(None, dataset=toy_dataset(), resume=tmp_path / "cut", log=quiet, device="cpu")


def test_a_run_folder_with_braces_in_its_name_keeps_its_best_checkpoint(tmp_path):
    """The best checkpoint's path went to ModelCheckpoint as a filepath template: a folder named
    ``exp_{lr=0.1}`` failed after the first epoch ("names the field 'lr=0'")."""
    run_dir = tmp_path / "exp_{lr=0.1}_{0}"
    run = cnnlab.train(RECIPE.override({"epochs": 1}), dataset=toy_dataset(n_train=128, n_test=40),
                       run_dir=run_dir, log=quiet, progress=False, device="cpu")
    assert (run_dir / "best.safetensors").exists() and run.test_metrics["best_epoch"] == 1
