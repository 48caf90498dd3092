"""cnnlab export: a run as an ONNX file that takes raw pixels and gives the run's logits."""
import json

import numpy as np
import pytest
import torch

import cnnlab
from cnnlab.recipes import Recipe
from helpers import toy_dataset

onnx = pytest.importorskip("onnx", reason="the onnx extra (pip install 'cnnlab[onnx]') is not installed")
ort = pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")

RECIPE = Recipe(name="toy", source="test", dataset="toy", model="mnist-cnn-small", epochs=1,
                batch_size=64, eval_batch_size=100, val_fraction=0.2, precision="fp32")


def test_exported_file_takes_uint8_pixels_and_gives_the_runs_logits(tmp_path):
    """The ONNX file normalises raw pixels itself: onnxruntime on a dataset's uint8 test images
    gives the logits cnnlab's evaluation computes (any batch size), and the metadata names the
    classes and the normalisation."""
    ds = toy_dataset()
    cnnlab.train(RECIPE, dataset=ds, run_dir=tmp_path / "run", log=lambda m: None)
    from cnnlab.export import export_onnx
    out = export_onnx(tmp_path / "run")
    assert out["file"] == str(tmp_path / "run" / "model.onnx") and out["max_abs_diff"] < 1e-4
    assert out["input"] == "pixels: uint8 (N, 1, 28, 28)" and out["output"] == "logits: float32 (N, 4)"

    session = ort.InferenceSession(out["file"], providers=["CPUExecutionProvider"])
    x = ds.test_images[:7]
    got = session.run(None, {"pixels": x.numpy()})[0]
    run = cnnlab.load_run(tmp_path / "run")
    with torch.no_grad():
        want = run.model((x.float() / 255 - ds.mean[0]) / ds.std[0]).numpy()
    np.testing.assert_allclose(got, want, atol=1e-4)

    props = {p.key: p.value for p in onnx.load(out["file"]).metadata_props}
    assert json.loads(props["cnnlab.classes"]) == ds.classes and props["cnnlab.recipe"] == "toy"
    assert json.loads(props["cnnlab.normalisation"]) == {"mean": list(ds.mean), "std": list(ds.std)}


def test_export_command(tmp_path, capsys):
    cnnlab.train(RECIPE, dataset=toy_dataset(), run_dir=tmp_path / "run", log=lambda m: None)
    from cnnlab.cli import main
    (tmp_path / "m.unchecked.onnx").write_bytes(b"a failed check's file")
    assert main(["export", str(tmp_path / "run"), "--out", str(tmp_path / "m.onnx"), "--weights", "last"]) == 0
    text = capsys.readouterr().out
    assert f"wrote {tmp_path / 'm.onnx'}" in text and "classes c0, c1, c2, c3" in text
    assert not (tmp_path / "m.unchecked.onnx").exists()  # stale once the export succeeded
    props = {p.key: p.value for p in onnx.load(tmp_path / "m.onnx").metadata_props}
    assert props["cnnlab.weights"] == "last.safetensors"  # --weights reached the export
    (tmp_path / "m.unchecked.onnx").write_bytes(b"a failed check's file")
    from cnnlab.export import export_onnx
    export_onnx(tmp_path / "run", tmp_path / "m.onnx", check=False)
    assert (tmp_path / "m.unchecked.onnx").exists()  # kept: this export was not checked
    (tmp_path / "run" / "metrics.csv").write_text('epoch,loss\n1,"0,602736"\n')  # decimal commas
    (tmp_path / "run" / "test_metrics.json").write_text('{"loss": 0.3')  # truncated
    assert main(["export", str(tmp_path / "run"), "--out", str(tmp_path / "m.onnx")]) == 0  # not needed: not read
    assert main(["export", str(tmp_path / "nowhere")]) == 2
    assert "not a cnnlab run folder" in capsys.readouterr().err
    (tmp_path / "out").mkdir()  # a folder: model.onnx in it
    assert main(["export", str(tmp_path / "run"), "--out", str(tmp_path / "out")]) == 0
    assert f"wrote {tmp_path / 'out' / 'model.onnx'}" in capsys.readouterr().out
    # a folder not there yet, named as one by its trailing slash: created, not a file named "new"
    assert main(["export", str(tmp_path / "run"), "--out", f"{tmp_path / 'new'}/"]) == 0
    assert (tmp_path / "new" / "model.onnx").is_file()


def test_a_missing_extra_is_named(tmp_path, monkeypatch, capsys):
    import builtins
    real_import = builtins.__import__

    def no_onnxscript(name, *a, **k):
        if name == "onnxscript":
            raise ModuleNotFoundError("No module named 'onnxscript'")
        return real_import(name, *a, **k)
    monkeypatch.setattr(builtins, "__import__", no_onnxscript)
    from cnnlab.cli import main
    assert main(["export", str(tmp_path)]) == 2
    assert "pip install 'cnnlab[onnx]'" in capsys.readouterr().err


def test_a_missing_onnxruntime_is_named_before_anything_is_written(tmp_path, monkeypatch, capsys):
    import builtins
    cnnlab.train(RECIPE, dataset=toy_dataset(), run_dir=tmp_path / "run", log=lambda m: None)
    real_import = builtins.__import__

    def no_ort(name, *a, **k):
        if name == "onnxruntime":
            raise ModuleNotFoundError("No module named 'onnxruntime'")
        return real_import(name, *a, **k)
    monkeypatch.setattr(builtins, "__import__", no_ort)
    from cnnlab.cli import main
    assert main(["export", str(tmp_path / "run")]) == 2
    assert "pip install 'cnnlab[onnx]'" in capsys.readouterr().err
    assert not (tmp_path / "run" / "model.onnx").exists()


def test_a_failed_check_or_nan_weights_leave_the_previous_file(tmp_path, monkeypatch, capsys):
    from safetensors.torch import load_file, save_file

    from cnnlab.cli import main
    cnnlab.train(RECIPE, dataset=toy_dataset(), run_dir=tmp_path / "run", log=lambda m: None)
    assert main(["export", str(tmp_path / "run")]) == 0
    good = (tmp_path / "run" / "model.onnx").read_bytes()
    real_run = ort.InferenceSession.run
    monkeypatch.setattr(ort.InferenceSession, "run", lambda self, *a, **k: [real_run(self, *a, **k)[0] + 1])
    assert main(["export", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "differ from PyTorch's by 1 (more than 1e-3); not written" in err and "model.unchecked.onnx" in err
    assert (tmp_path / "run" / "model.onnx").read_bytes() == good
    assert (tmp_path / "run" / "model.unchecked.onnx").exists()
    monkeypatch.undo()

    class InvalidGraph(Exception):  # onnxruntime's own errors are plain Exceptions
        pass

    def cannot_load(*a, **k):
        raise InvalidGraph("bad node")
    monkeypatch.setattr(ort, "InferenceSession", cannot_load)
    assert main(["export", str(tmp_path / "run")]) == 2
    assert "onnxruntime cannot run the exported model (InvalidGraph: bad node); not written" in capsys.readouterr().err
    assert (tmp_path / "run" / "model.onnx").read_bytes() == good
    monkeypatch.undo()
    weights = load_file(tmp_path / "run" / "best.safetensors")
    save_file({k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
               for k, v in weights.items()}, tmp_path / "run" / "best.safetensors")
    with pytest.warns(UserWarning, match=r"best.safetensors: 8 tensor\(s\) hold NaN or inf"):
        assert main(["export", str(tmp_path / "run")]) == 2  # warned on loading, refused on checking
    assert "best.safetensors: the model's logits are NaN or inf" in capsys.readouterr().err
    assert (tmp_path / "run" / "model.onnx").read_bytes() == good


def test_the_metadata_says_what_predict_does_around_the_graph(tmp_path):
    """Output activation, resize policy and colour, test-time augmentation: with them a consumer
    of the file reproduces cnnlab predict (here a single-sigmoid RGB run with tta=flip)."""
    from cnnlab.checkpoint import save_weights
    from cnnlab.export import export_onnx
    from cnnlab.models import create_model
    cnnlab.train(RECIPE, dataset=toy_dataset(), run_dir=tmp_path / "run", log=lambda m: None)
    props = {p.key: p.value for p in onnx.load(export_onnx(tmp_path / "run")["file"]).metadata_props}
    assert props["cnnlab.output"] == "logits (N, 4), softmax for probabilities" and props["cnnlab.tta"] == "none"
    assert json.loads(props["cnnlab.resize"]) == {"size": [28, 28], "policy": "squash", "color": "grayscale",
                                                  "resample": "PIL bilinear (antialiased), JPEG draft decoding"}
    meta = json.loads((tmp_path / "run" / "recipe.json").read_text())
    meta["recipe"].update(model_kwargs={"binary": True}, tta="flip")
    meta["dataset"].update(classes=["no", "yes"], image_shape=[3, 28, 28], mean=[0.5] * 3, std=[0.25] * 3)
    meta["dataset"]["provenance"]["resize"] = {"size": [28, 28], "policy": "center-crop", "color": "rgb"}
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "recipe.json").write_text(json.dumps(meta))
    torch.manual_seed(0)
    save_weights(create_model("mnist-cnn-small", num_classes=1, in_chans=3, input_size=(28, 28)),
                 tmp_path / "bin" / "best.safetensors")
    out = export_onnx(tmp_path / "bin")
    props = {p.key: p.value for p in onnx.load(out["file"]).metadata_props}
    assert props["cnnlab.output"].startswith("one sigmoid logit (N, 1): P(classes[1]) = sigmoid(logit)")
    assert props["cnnlab.tta"].startswith("flip: not applied by this graph")
    assert json.loads(props["cnnlab.resize"])["policy"] == "center-crop"
    assert json.loads(props["cnnlab.resize"])["color"] == "rgb"
    x = torch.randint(0, 256, (2, 3, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    session = ort.InferenceSession(out["file"], providers=["CPUExecutionProvider"])
    logit = sum(session.run(None, {"pixels": v.numpy()})[0] for v in (x, x.flip(-1))) / 2
    p_yes = [dict(p)["yes"] for p in cnnlab.predict(tmp_path / "bin", x, device="cpu")]
    assert p_yes == pytest.approx(torch.sigmoid(torch.from_numpy(logit))[:, 0].tolist(), abs=1e-5)
