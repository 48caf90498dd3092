"""cnnlab predict: new image files through a trained run's model, prepared as its data was."""
import numpy as np
import pytest
import torch
from PIL import Image

import cnnlab
from cnnlab.inference import predict
from cnnlab.recipes import Recipe
from helpers import toy_dataset

RECIPE = Recipe(name="toy", source="test", dataset="toy", model="mnist-cnn-small", epochs=2,
                batch_size=64, eval_batch_size=100, val_fraction=0.2, precision="fp32")


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    """A small CNN trained on the toy set (class k: a bright square at position k), 28x28 gray."""
    out = tmp_path_factory.mktemp("predict") / "run"
    run = cnnlab.train(RECIPE, dataset=toy_dataset(), run_dir=out, log=lambda m: None)
    assert run.test_metrics["accuracy"] > 0.9
    return out


def test_files_give_the_classes_of_the_pixels_they_hold(toy_run, tmp_path):
    """PNG files of test images (one saved as RGB at 56x56, so it is converted and resized back)
    get the same top class as the run's model on the dataset's own pixels, with probabilities."""
    ds = toy_dataset()
    x, y = ds.test_images[:8], ds.test_labels[:8]
    files = []
    for i, img in enumerate(x[:, 0].numpy()):
        f = tmp_path / f"img{i}.png"
        im = Image.fromarray(img)
        if i == 0:  # RGB and twice the size: the run takes 1-channel 28x28 images
            im = im.convert("RGB").resize((56, 56), Image.NEAREST)
        im.save(f)
        files.append(f)
    from_files = predict(toy_run, files, top_k=2)
    from_pixels = predict(toy_run, x, top_k=4)
    assert [p[0][0] for p in from_files] == [p[0][0] for p in from_pixels]
    assert [p[0][0] for p in from_pixels] == [ds.classes[int(k)] for k in y]  # the toy set is easy
    assert all(len(p) == 2 and p[0][1] >= p[1][1] for p in from_files)
    assert all(len(p) == 4 and sum(q for _, q in p) == pytest.approx(1.0, abs=1e-5) for p in from_pixels)
    # the pixel path is the one evaluation uses: the same probabilities as softmax of the logits
    run = cnnlab.load_run(toy_run)
    with torch.no_grad():
        logits = run.model((x.float() / 255 - ds.mean[0]) / ds.std[0])
    top = logits.softmax(1).max(1).values
    assert [p[0][1] for p in from_pixels] == pytest.approx(top.tolist(), abs=1e-5)
    # one path alone, a str or a Path, is one file (not the characters of its name)
    [one] = predict(toy_run, str(files[1]), top_k=2)
    assert predict(toy_run, files[1], top_k=2) == [one]
    assert [c for c, _ in one] == [c for c, _ in from_files[1]]  # a batch of 1, not of 8: to rounding
    assert [q for _, q in one] == pytest.approx([q for _, q in from_files[1]], abs=1e-6)


def test_bad_inputs_are_named(toy_run, tmp_path):
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(ValueError, match=r"notes.png: not a readable image"):
        predict(toy_run, [tmp_path / "notes.png"])
    with pytest.raises(FileNotFoundError, match=r"missing.png: no such image file"):
        predict(toy_run, [tmp_path / "missing.png"])
    with pytest.raises(ValueError, match=r"pixels must be uint8 \(N, 1, 28, 28\) for this run, got "
                                         r"torch.uint8 \(2, 3, 28, 28\)"):
        predict(toy_run, torch.zeros(2, 3, 28, 28, dtype=torch.uint8))
    with pytest.raises(ValueError, match="top_k must be at least 1"):
        predict(toy_run, torch.zeros(1, 1, 28, 28, dtype=torch.uint8), top_k=0)


def test_numpy_pixels_are_pixels_other_objects_are_named(toy_run):
    x = toy_dataset().test_images[:3]
    assert predict(toy_run, x.numpy()) == predict(toy_run, x)
    assert predict(toy_run, x.numpy()[:, :, ::-1]) == predict(toy_run, x.flip(2))  # negative strides
    assert predict(toy_run, x[:0]) == [] and predict(toy_run, x.numpy()[:0]) == []  # one result per image
    with pytest.raises(ValueError, match=r"pixels must be uint8 \(N, 1, 28, 28\) for this run, got float32"):
        predict(toy_run, x.numpy().astype(np.float32))
    im = Image.fromarray(x[0, 0].numpy())
    with pytest.raises(TypeError, match=r"^images: image file paths/folders or uint8 \(N, C, H, W\) pixels, "
                                        r"got Image$"):
        predict(toy_run, im)
    with pytest.raises(TypeError, match="pixels, got list holding Image$"):
        predict(toy_run, [im])


def test_a_single_logit_model_reports_both_classes(tmp_path):
    """A binary (sigmoid) run: class 1's probability is the sigmoid of the logit, class 0 the rest."""
    two = toy_dataset(classes=2)
    recipe = RECIPE.override({"epochs": 1, "model_kwargs": {"binary": True}})
    cnnlab.train(recipe, dataset=two, run_dir=tmp_path / "bin", log=lambda m: None)
    with torch.no_grad():
        assert cnnlab.load_run(tmp_path / "bin").model(torch.zeros(1, 1, 28, 28)).shape == (1, 1)
    [[(c1, p1), (c2, p2)]] = predict(tmp_path / "bin", two.test_images[:1])
    assert {c1, c2} == {"c0", "c1"} and p1 >= p2 and p1 + p2 == pytest.approx(1.0)


@pytest.mark.realdata
def test_a_run_on_signals_is_refused(tmp_path):
    from conftest import real_data
    cnnlab.train("iris-conv1d-fast", {"epochs": 1}, data_dir=real_data("iris").parent,
                 run_dir=tmp_path / "iris", log=lambda m: None, progress=False)
    f = tmp_path / "x.png"
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(f)
    with pytest.raises(ValueError, match="1-D signals .* not images"):
        predict(tmp_path / "iris", [f])


def test_predict_command_prints_top_classes_per_file(toy_run, tmp_path, capsys):
    from cnnlab.cli import main
    ds = toy_dataset()
    f = tmp_path / "square.png"
    Image.fromarray(ds.test_images[1, 0].numpy()).save(f)
    assert main(["predict", str(toy_run), str(f), "--top-k", "2"]) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith(f"{f}: {ds.classes[int(ds.test_labels[1])]} ") and out.count("%") == 2
    assert main(["predict", str(toy_run), str(tmp_path / "none.png")]) == 2
    assert "none.png: no such image file" in capsys.readouterr().err


def test_a_folder_is_its_image_files_in_batches_of_the_evaluation_size(toy_run, tmp_path, capsys):
    """A folder stands for the image files in it and its sub-folders (sorted; other files left
    out); more images than the recipe's eval_batch_size (100) go through in several batches with
    the same answers as the pixels in one."""
    from cnnlab.cli import main
    from cnnlab.inference import image_files
    ds = toy_dataset()
    x = ds.test_images[:150]
    for i, img in enumerate(x[:, 0].numpy()):
        (tmp_path / "photos" / f"k{i % 2}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(tmp_path / "photos" / f"k{i % 2}" / f"{i:03d}.png")
    (tmp_path / "photos" / "README.txt").write_text("not an image")
    from cnnlab.data.images import DataSkipWarning
    with pytest.warns(DataSkipWarning, match=r"photos: skipped 1 file\(s\) that are not images by their "
                                            r"extension: README.txt"):  # said, as training says it
        files = image_files([tmp_path / "photos"])
    assert len(files) == 150 and files == sorted(files) and all(f.suffix == ".png" for f in files)
    order = [int(f.stem) for f in files]
    with pytest.warns(DataSkipWarning):
        from_folder = predict(toy_run, [tmp_path / "photos"], top_k=1)
    from_pixels = predict(toy_run, x[order], top_k=1)
    assert [p[0][0] for p in from_folder] == [p[0][0] for p in from_pixels]
    assert [p[0][1] for p in from_folder] == pytest.approx([p[0][1] for p in from_pixels], abs=1e-5)
    with pytest.warns(DataSkipWarning):
        assert main(["predict", str(toy_run), str(tmp_path / "photos"), "--top-k", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 150 and lines[0].startswith(f"{files[0]}: ")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty: a folder without image files"):
        predict(toy_run, [tmp_path / "empty"])


def test_a_folder_takes_its_symlinked_sub_folders_once_as_training_reads_them(tmp_path):
    """rglob did not follow symlinked sub-folders: predict and evaluate --folder left out images
    that training read, silently."""
    from cnnlab.data.images import scan_class_folders
    from cnnlab.inference import image_files
    for i in range(2):
        (tmp_path / "elsewhere").mkdir(exist_ok=True)
        Image.new("L", (4, 4)).save(tmp_path / "elsewhere" / f"{i}.png")
    cats = tmp_path / "pets" / "cats"
    (cats / "b").mkdir(parents=True)
    Image.new("L", (4, 4)).save(cats / "own.png")
    (cats / "a").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (cats / "b" / "again").symlink_to(tmp_path / "elsewhere", target_is_directory=True)  # read once
    (cats / "loop").symlink_to(cats, target_is_directory=True)
    trained = sorted(f[0] for f in scan_class_folders(tmp_path / "pets")[1])
    assert trained == ["cats/a/0.png", "cats/a/1.png", "cats/own.png"]
    assert [f.relative_to(tmp_path / "pets").as_posix() for f in image_files(cats)] == trained


def test_a_bad_file_in_a_folder_is_skipped_with_a_warning_a_named_one_is_an_error(toy_run, tmp_path, capsys):
    from cnnlab.cli import main
    from cnnlab.data.images import DataSkipWarning
    ds = toy_dataset()
    for i, img in enumerate(ds.test_images[:3, 0].numpy()):
        Image.fromarray(img).save(tmp_path / f"{i}.png")
    (tmp_path / "1b.png").write_bytes(b"text, not a PNG")  # sorted between 1.png and 2.png
    with pytest.warns(DataSkipWarning, match=r"skipped 1 file\(s\).*1b.png \(no image format"):
        got = predict(toy_run, [tmp_path], top_k=1, skip_unreadable=True)
    assert [g is None for g in got] == [False, False, True, False]
    assert got[3] == predict(toy_run, [tmp_path / "2.png"], top_k=1)[0]  # still file 2's answer
    with pytest.warns(DataSkipWarning):
        assert main(["predict", str(toy_run), str(tmp_path), "--top-k", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == [str(tmp_path / f"{i}.png") for i in range(3)]
    with pytest.raises(ValueError, match="1b.png: not a readable image"):
        predict(toy_run, [tmp_path])  # the Python default: every file must be readable
    assert main(["predict", str(toy_run), str(tmp_path / "1b.png")]) == 2
    # named on its own beside a folder: still an error (only the folder's files are skipped)
    (tmp_path / "good").mkdir()
    Image.fromarray(ds.test_images[0, 0].numpy()).save(tmp_path / "good" / "0.png")
    assert main(["predict", str(toy_run), str(tmp_path / "good"), str(tmp_path / "1b.png")]) == 2
    assert "1b.png: not a readable image" in capsys.readouterr().err


def test_evaluate_on_a_labelled_folder_matches_the_test_split(toy_run, tmp_path, capsys):
    """The run's own test images saved as PNG class folders score exactly as its test split;
    a folder with some classes only reports those; foreign class names are refused."""
    import json
    from cnnlab.cli import main
    from cnnlab.inference import evaluate_folder
    ds = toy_dataset()
    for i, (img, label) in enumerate(zip(ds.test_images[:, 0].numpy(), ds.test_labels.tolist())):
        (tmp_path / "mine" / ds.classes[label]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(tmp_path / "mine" / ds.classes[label] / f"{i:03d}.png")
    test = json.loads((toy_run / "test_metrics.json").read_text())
    m = evaluate_folder(toy_run, tmp_path / "mine")
    assert (m["correct"], m["total"], m["files"]) == (test["correct"], test["total"], 200)
    assert m["loss"] == pytest.approx(test["loss"], abs=1e-4)
    assert m["confusion_matrix"] == test["confusion_matrix"]
    one = ds.classes[0]
    (tmp_path / "some").mkdir()
    (tmp_path / "some" / one).symlink_to(tmp_path / "mine" / one)
    assert list(evaluate_folder(toy_run, tmp_path / "some")["per_class_accuracy"]) == [one]
    assert main(["evaluate", str(toy_run), "--folder", str(tmp_path / "mine")]) == 0
    assert capsys.readouterr().out.startswith(f"{tmp_path / 'mine'}: Average loss: ")
    # what a notebook or a Mac leaves in a folder is not data; a bad file is skipped, as training does
    (tmp_path / "mine" / ".ipynb_checkpoints").mkdir()
    (tmp_path / "mine" / one / "._000.png").write_bytes(b"AppleDouble")
    (tmp_path / "mine" / one / ".hidden").mkdir()
    Image.fromarray(ds.test_images[0, 0].numpy()).save(tmp_path / "mine" / one / ".hidden" / "x.png")
    (tmp_path / "mine" / one / "broken.png").write_bytes(b"not a PNG")
    from cnnlab.data.images import DataSkipWarning
    with pytest.warns(DataSkipWarning, match=r"skipped 1 file\(s\).*broken.png"):
        m = evaluate_folder(toy_run, tmp_path / "mine")
    assert (m["correct"], m["total"], m["files"], m["skipped"]) == (test["correct"], test["total"], 200, 1)
    (tmp_path / "mine" / "c9").mkdir()
    with pytest.raises(ValueError, match=r"'c9' is not a class of this run; did you mean"):
        evaluate_folder(toy_run, tmp_path / "mine")
    with pytest.raises(FileNotFoundError, match="nowhere: no such folder"):
        evaluate_folder(toy_run, tmp_path / "nowhere")


def test_predict_computes_in_the_precision_evaluate_uses(toy_run):
    """It said float32 'so that it agrees with cnnlab evaluate', which runs in the recipe's
    precision (bf16 on CPUs that have it); it now takes that precision, or the one given."""
    import json
    from cnnlab.device import autocast
    from cnnlab.inference import WithNormalisation
    x = toy_dataset().test_images[:16]
    meta = json.loads((toy_run / "recipe.json").read_text())["dataset"]
    net = WithNormalisation(cnnlab.load_run(toy_run).model, meta["mean"], meta["std"], images=True).eval()
    for precision in ("bf16", "fp32"):
        with torch.no_grad(), autocast(torch.device("cpu"), precision):
            probs = torch.softmax(net(x).float(), 1)
        got = predict(toy_run, x, top_k=1, precision=precision, device="cpu")
        assert [p for [(_, p)] in got] == pytest.approx(probs.max(1).values.tolist(), abs=1e-6)
        if precision == "fp32":  # the run's own (its recipe's): the default
            assert predict(toy_run, x, top_k=1, device="cpu") == got
    with pytest.raises(ValueError, match="fp16"):
        predict(toy_run, x, precision="fp16")
    bf16_run = toy_run.parent / "bf16"  # a run whose recipe says bf16 predicts in bf16
    (bf16_run).mkdir(exist_ok=True)
    for f in toy_run.iterdir():
        (bf16_run / f.name).write_bytes(f.read_bytes()) if f.is_file() else None
    meta = json.loads((bf16_run / "recipe.json").read_text())
    meta["recipe"]["precision"] = "bf16"
    (bf16_run / "recipe.json").write_text(json.dumps(meta))
    assert predict(bf16_run, x, top_k=1, device="cpu") == predict(toy_run, x, top_k=1, precision="bf16", device="cpu")


def test_predict_orders_a_near_zero_binary_logit_as_the_metrics_count_it(toy_run, monkeypatch):
    """Below |logit| ~1e-16 both float64 log-probabilities of a sigmoid output are equal: predict's
    top class must still be the metrics' (class 1 for a positive logit, class 0 at 0)."""
    import cnnlab.training
    ds = toy_dataset()
    fixed = torch.tensor([[1e-17], [-1e-17], [0.0]])
    monkeypatch.setattr(cnnlab.training, "tta_logits", lambda net, x, tta: fixed[:len(x)])
    got = predict(toy_run, ds.test_images[:3], top_k=2)
    assert [g[0][0] for g in got] == [ds.classes[1], ds.classes[0], ds.classes[0]]
    assert all(p == pytest.approx(0.5) for g in got for _, p in g)


def _run_on(toy_run, dst, channels):
    """A copy of ``toy_run`` for ``channels``-channel images, with untrained weights: enough to
    compare files with the pixels they hold."""
    import json
    from cnnlab.checkpoint import save_weights
    from cnnlab.models import create_model
    meta = json.loads((toy_run / "recipe.json").read_text())
    meta["dataset"].update(image_shape=[channels, 28, 28], mean=[0.5] * channels, std=[0.25] * channels)
    dst.mkdir()
    (dst / "recipe.json").write_text(json.dumps(meta))
    torch.manual_seed(0)
    model = create_model("mnist-cnn-small", num_classes=4, in_chans=channels, input_size=(28, 28))
    save_weights(model, dst / "best.safetensors")
    return dst


def test_a_run_on_rgba_images_reads_rgba_files_other_channel_counts_are_named(toy_run, tmp_path):
    """A 4-channel run decodes files as RGBA (opaque where a file has no alpha), as their pixels;
    a run on 2-channel images takes its pixels, and says image files cannot give them."""
    from cnnlab.inference import evaluate_folder
    four = _run_on(toy_run, tmp_path / "four", 4)
    px = np.random.default_rng(0).integers(0, 256, (2, 28, 28, 4), dtype=np.uint8)
    px[1, ..., 3] = 255
    (tmp_path / "lab" / "c0").mkdir(parents=True)
    Image.fromarray(px[0]).save(tmp_path / "lab" / "c0" / "rgba.png")
    Image.fromarray(px[1, ..., :3]).save(tmp_path / "lab" / "c0" / "rgb.png")  # no alpha
    files = [tmp_path / "lab" / "c0" / f for f in ("rgba.png", "rgb.png")]
    got = predict(four, files, top_k=4)
    want = predict(four, torch.from_numpy(px).permute(0, 3, 1, 2).contiguous(), top_k=4)
    assert [[c for c, _ in g] for g in got] == [[c for c, _ in w] for w in want]
    assert [p for g in got for _, p in g] == pytest.approx([p for w in want for _, p in w], abs=1e-6)
    assert evaluate_folder(four, tmp_path / "lab")["files"] == 2
    two = _run_on(toy_run, tmp_path / "two", 2)
    with pytest.raises(ValueError, match=r"two takes 2-channel images; image files decode to grayscale/RGB/RGBA "
                                         r"only: pass uint8 pixels \(N, C, H, W\)"):
        predict(two, files)
    with pytest.raises(ValueError, match=r"two takes 2-channel images; .* cnnlab.evaluate\(RUN_DIR, dataset"):
        evaluate_folder(two, tmp_path / "lab")
    assert len(predict(two, torch.zeros(3, 2, 28, 28, dtype=torch.uint8))) == 3


def test_nan_weights_are_refused_not_printed_as_nan_percent(toy_run, tmp_path, capsys):
    from safetensors.torch import load_file, save_file

    from cnnlab.cli import main
    run = _run_on(toy_run, tmp_path / "nan", 1)
    weights = load_file(run / "best.safetensors")
    save_file({k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
               for k, v in weights.items()}, run / "best.safetensors")
    f = tmp_path / "x.png"
    Image.fromarray(toy_dataset().test_images[0, 0].numpy()).save(f)
    with pytest.warns(UserWarning, match="hold NaN or inf"):
        assert main(["predict", str(run), str(f)]) == 2  # warned on loading, refused on predicting
    captured = capsys.readouterr()
    assert "nan%" not in captured.out and "best.safetensors: the model's logits are NaN or inf" in captured.err


def test_damaged_records_do_not_stop_predict_and_are_named_where_read(toy_run, tmp_path):
    """predict needs only the model: a metrics.csv saved with decimal commas or a truncated
    test_metrics.json are not read; load_run, which reads them, names the file."""
    import shutil
    run = shutil.copytree(toy_run, tmp_path / "run")
    x = toy_dataset().test_images[:2]
    (run / "metrics.csv").write_text('epoch,loss\n1,"0,602736"\n')
    assert predict(run, x) == predict(toy_run, x)
    with pytest.raises(ValueError, match=r"metrics.csv: not readable \(could not convert string to float: "
                                         r"'0,602736'\)"):
        cnnlab.load_run(run)
    shutil.copy(toy_run / "metrics.csv", run / "metrics.csv")
    (run / "test_metrics.json").write_text((toy_run / "test_metrics.json").read_text()[:30])
    assert predict(run, x) == predict(toy_run, x)
    with pytest.raises(ValueError, match=r"test_metrics.json: not readable \(Expecting"):
        cnnlab.load_run(run)
