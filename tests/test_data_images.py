"""Image folders and the decode cache: skipped files are reported, bad layouts are errors, the cache is
hit on the second load and missed when a file changes; the real cats_vs_dogs photos."""
from __future__ import annotations

import io
import json
import os
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.data import DataFileError, DataSkipWarning, load_dataset, load_image_folder
from cnnlab.data.images import decode_image, read_class_folder
from conftest import real_data


def img_bytes(w: int, h: int, fmt: str = "JPEG", seed: int = 0, mode: str = "RGB") -> bytes:
    rng = np.random.default_rng(seed)
    shape = (h, w, 3) if mode == "RGB" else (h, w)
    f = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(f, fmt)
    return f.getvalue()


def make_folder(root, classes=("cats", "dogs"), n=3, sizes=((40, 30), (25, 50)), fmt="JPEG"):
    for ci, c in enumerate(classes):
        (root / c).mkdir(parents=True)
        for i in range(n):
            w, h = sizes[(i + ci) % len(sizes)]
            ext = "jpg" if fmt == "JPEG" else fmt.lower()
            (root / c / f"{c}.{i}.{ext}").write_bytes(img_bytes(w, h, fmt, seed=10 * ci + i))
    return root


def make_split_folder(root, n_train=4, n_test=2, test_name="validation"):
    make_folder(root / "train", n=n_train)
    make_folder(root / test_name, n=n_test)
    return root


def test_split_layout_shapes_labels_and_provenance(tmp_path):
    root = make_split_folder(tmp_path / "pets")
    ds = load_image_folder(root, size=16)
    assert ds.train_images.shape == (8, 3, 16, 16) and ds.train_images.dtype == torch.uint8
    assert ds.test_images.shape == (4, 3, 16, 16)
    assert ds.classes == ["cats", "dogs"] and ds.train_labels.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    p = ds.provenance
    assert set(p["files"]) == {"train/", "validation/"} and p["file_counts"] == {"train/": 8, "validation/": 4}
    assert "validation/ is the test split" in p["layout"] and p["skipped"]["count"] == 0
    assert len(ds.mean) == 3 and all(0 < m < 1 for m in ds.mean)


def test_a_train_folder_alone_is_split_and_says_so(tmp_path):
    make_folder(tmp_path / "pets" / "train", n=5)
    ds = load_image_folder(tmp_path / "pets", size=8, test_fraction=0.2)
    assert len(ds.train_labels) + len(ds.test_labels) == 10 and len(ds.test_labels) == 2
    assert ds.provenance["layout"] == ("train/ only (class sub-folders); a seeded stratified 0.2 of "
                                       "it is the test split")


def test_test_folder_preferred_and_recorded(tmp_path):
    root = make_split_folder(tmp_path / "pets")
    make_folder(root / "test", n=1)
    ds = load_image_folder(root, size=8)
    assert len(ds.test_labels) == 2 and "test/ is the test split" in ds.provenance["layout"]


def test_class_layout_gets_seeded_stratified_split(tmp_path):
    root = make_folder(tmp_path / "flat", n=10)
    a = load_image_folder(root, size=8, test_fraction=0.2, seed=3)
    b = load_image_folder(root, size=8, test_fraction=0.2, seed=3)
    assert len(a.test_labels) == 4 and torch.bincount(a.test_labels).tolist() == [2, 2]
    assert torch.equal(a.test_images, b.test_images)
    assert a.provenance["split"]["seed"] == 3


def test_grayscale_and_center_crop(tmp_path):
    root = make_folder(tmp_path / "g", n=2)
    # 2 images a class: 20% holds none out, which is said
    with pytest.warns(DataSkipWarning, match="no test image of class\\(es\\) cats, dogs"):
        ds = load_image_folder(root, size=(12, 20), color="grayscale", resize="center-crop")
    assert ds.train_images.shape[1:] == (1, 12, 20) and len(ds.mean) == 1


def test_resize_policies():
    # a 40x20 (w x h) image whose left half is black and right half white
    a = np.zeros((20, 40, 3), np.uint8)
    a[:, 20:] = 255
    f = io.BytesIO()
    Image.fromarray(a).save(f, "PNG")
    sq = decode_image(f.getvalue(), (10, 10), "rgb", "squash")
    cc = decode_image(f.getvalue(), (10, 10), "rgb", "center-crop")
    assert sq.shape == cc.shape == (10, 10, 3)
    assert sq[:, 0].max() == 0 and sq[:, -1].min() == 255       # squash keeps both halves
    assert cc[:, 0].max() < 20 and cc[:, -1].min() > 235         # crop: centre 20x20 of the original
    assert decode_image(f.getvalue(), None, "grayscale", "none").shape == (20, 40, 1)


def test_non_image_and_corrupt_jpeg_are_skipped_and_reported(tmp_path):
    root = make_split_folder(tmp_path / "pets")
    (root / "train" / "cats" / "notes.txt").write_text("not an image")
    good = img_bytes(30, 30)
    (root / "train" / "dogs" / "broken.jpg").write_bytes(good[: len(good) // 2])  # truncated JPEG
    (root / "train" / "dogs" / "empty.jpg").write_bytes(b"")
    (root / "train" / "dogs" / "fake.png").write_bytes(b"this is text, not a PNG")
    (root / "train" / "cats" / ".DS_Store").write_bytes(b"\0\1")  # hidden: ignored, not reported
    with pytest.warns(DataSkipWarning, match=r"skipped 4 file\(s\).*broken.jpg") as rec:
        ds = load_image_folder(root, size=16)
    msg = str(rec[0].message)
    assert "notes.txt" in msg and "fake.png" in msg
    assert len(ds.train_labels) == 8  # only the good ones
    sk = ds.provenance["skipped"]
    assert sk["count"] == 4
    names = [n for n, _ in sk["first"]]
    assert "train/cats/notes.txt" in names and "train/dogs/broken.jpg" in names
    reasons = dict(sk["first"])
    assert reasons["train/dogs/empty.jpg"] == "empty file, 0 bytes"
    assert reasons["train/dogs/fake.png"] == "no image format PIL reads"
    assert "BytesIO" not in msg and "0x" not in msg  # no Python object reprs in what users read
    # reported again on a cached load, with the same count
    with pytest.warns(DataSkipWarning, match=r"skipped 4 file"):
        again = load_image_folder(root, size=16)
    assert again.provenance["from_cache"] and again.provenance["skipped"]["count"] == 4


def test_empty_class_folder_is_an_error(tmp_path):
    root = make_split_folder(tmp_path / "pets")
    (root / "train" / "birds").mkdir()
    (root / "train" / "birds" / "readme.md").write_text("todo")
    with pytest.raises(DataFileError, match=r"train/birds: class folder 'birds' holds no image files"):
        load_image_folder(root, size=16)


def test_class_whose_images_all_fail_is_an_error(tmp_path):
    root = make_folder(tmp_path / "f", n=2)
    (root / "owls").mkdir()
    (root / "owls" / "a.jpg").write_bytes(b"garbage")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(DataFileError, match="no image of class 'owls' could be decoded"):
            load_image_folder(root, size=16)


def test_a_single_class_folder_is_an_error(tmp_path):
    """It trained a one-logit model, read as a two-class sigmoid: predict then failed with IndexError."""
    root = make_folder(tmp_path / "one", classes=("cats",), n=5)
    with pytest.raises(DataFileError, match=r"one: one class folder \('cats'\); a classifier needs at least two"):
        load_image_folder(root, size=16)
    make_split_folder(tmp_path / "split")
    for split in ("train", "validation"):
        for f in (tmp_path / "split" / split / "dogs").iterdir():
            f.unlink()
        (tmp_path / "split" / split / "dogs").rmdir()
    with pytest.raises(DataFileError, match="one class folder"):
        load_image_folder(tmp_path / "split", size=16)


def test_an_image_beside_the_class_folders_is_reported_as_skipped(tmp_path):
    """It has no label; it was left out without a word."""
    root = make_folder(tmp_path / "pets", n=3)
    (root / "preview.jpg").write_bytes(img_bytes(10, 10))
    (root / "notes.txt").write_text("not an image: not reported")
    with pytest.warns(DataSkipWarning, match=r"skipped 1 file\(s\): preview.jpg \(outside the class folders"):
        ds = load_image_folder(root, size=8)
    assert len(ds.train_labels) + len(ds.test_labels) == 6 and ds.provenance["skipped"]["count"] == 1


def test_no_class_subfolders_is_an_error(tmp_path):
    root = tmp_path / "loose"
    root.mkdir()
    (root / "a.jpg").write_bytes(img_bytes(10, 10))
    with pytest.raises(DataFileError, match=r"loose: no class sub-folders \(found 1 loose file"):
        load_image_folder(root, size=16)


def test_test_split_classes_must_match(tmp_path):
    root = tmp_path / "pets"
    make_folder(root / "train", n=2)
    make_folder(root / "test", classes=("cats", "foxes"), n=1)
    with pytest.raises(DataFileError, match=r"test: class folders \['cats', 'foxes'\] differ.*missing \['dogs'\]"):
        load_image_folder(root, size=16)


def test_classes_given_out_of_order_are_named_as_such(tmp_path):
    from cnnlab.data.images import scan_class_folders
    make_folder(tmp_path / "pets", n=1)
    with pytest.raises(DataFileError, match=r"classes given, \['dogs', 'cats'\], are not in sorted order"):
        scan_class_folders(tmp_path / "pets", classes=["dogs", "cats"])


def test_mixed_sizes_without_size_is_an_error(tmp_path):
    root = make_folder(tmp_path / "m", n=2)
    with pytest.raises(DataFileError, match="with size=None all images must have one size"):
        load_image_folder(root, size=None, resize="none")


def test_bad_options():
    with pytest.raises(ValueError, match="color must be"):
        load_image_folder(".", size=8, color="cmyk")
    with pytest.raises(ValueError, match="resize must be"):
        load_image_folder(".", size=8, resize="stretch")


def test_cache_hit_then_miss_after_a_file_changes(tmp_path):
    root = make_split_folder(tmp_path / "pets")
    a = load_image_folder(root, size=16)
    b = load_image_folder(root, size=16)
    assert not a.provenance["from_cache"] and b.provenance["from_cache"]
    assert torch.equal(a.train_images, b.train_images) and a.mean == b.mean
    assert a.provenance["files"] == b.provenance["files"]
    for c in a.provenance["cache"]:  # safetensors (u64 header length, then a JSON header), no pickle
        with open(c, "rb") as f:
            head = f.read(9)
        assert c.endswith(".safetensors") and head[8:9] == b"{"
    # a different size is a different cache entry
    assert not load_image_folder(root, size=12).provenance["from_cache"]
    # replace one photo (new content, new mtime): decoded again, checksum changes
    p = root / "train" / "cats" / "cats.0.jpg"
    p.write_bytes(img_bytes(40, 30, seed=99))
    os.utime(p, ns=(p.stat().st_atime_ns, p.stat().st_mtime_ns + 10**9))
    c = load_image_folder(root, size=16)
    assert not c.provenance["from_cache"]
    assert c.provenance["files"]["train/"] != a.provenance["files"]["train/"]
    assert c.provenance["files"]["validation/"] == a.provenance["files"]["validation/"]


def test_damaged_cache_file_is_decoded_again(tmp_path):
    root = make_folder(tmp_path / "f", n=3)
    a = load_image_folder(root, size=16)
    for c in a.provenance["cache"]:
        with open(c, "r+b") as f:
            f.write(b"\xff" * 16)
    with pytest.warns(DataSkipWarning, match="unreadable cache file"):
        b = load_image_folder(root, size=16)
    assert not b.provenance["from_cache"] and torch.equal(a.train_images, b.train_images)


def test_manifest_is_sha256sum_of_the_listing(tmp_path):
    import hashlib
    root = make_folder(tmp_path / "f", n=2)
    fs = read_class_folder(root, size=8, stats=False)
    lines = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.jpg"))
    text = "".join(f"{hashlib.sha256((root / n).read_bytes()).hexdigest()}  {n}\n" for n in lines)
    assert fs.manifest_sha256 == hashlib.sha256(text.encode()).hexdigest()


def test_registered_image_folder(tmp_path):
    root = make_split_folder(tmp_path / "pets")
    ds = load_dataset("image-folder", root, size=8, color="grayscale")
    assert ds.train_images.shape == (8, 1, 8, 8) and ds.name == "image-folder"
    with pytest.raises(ValueError, match="needs the folder"):
        load_dataset("image-folder")


def test_dataset_options_are_checked_by_name(tmp_path):
    root = make_split_folder(tmp_path / "pets")
    with pytest.raises(ValueError, match="'image-folder' has no option 'colour'; did you mean 'color'"):
        load_dataset("image-folder", root, colour="grayscale")
    with pytest.raises(ValueError, match="'mnist' has no option 'size' \\(its options: none\\)"):
        load_dataset("mnist", tmp_path, size=8)
    # of the wrong type (--set dataset_kwargs.workers=abc): a ValueError naming them, not a TypeError traceback
    with pytest.raises(ValueError, match="dataset 'image-folder' options \\{'workers': 'abc'\\}: '>' not supported"):
        load_dataset("image-folder", root, workers="abc")


def test_training_on_an_image_folder_with_dataset_options(tmp_path):
    """A user's folder of photos: the recipe's dataset_kwargs choose size and colour; the run
    records them, and predict prepares a new file the same way."""
    from cnnlab import predict
    from cnnlab.runs import train
    root = make_split_folder(tmp_path / "pets")
    run = tmp_path / "run"
    train("mnist-lenet5", ["dataset=image-folder", "epochs=1", "val_fraction=0.25",
                           "dataset_kwargs.size=28", "dataset_kwargs.color=grayscale"],
          data_dir=root, run_dir=run, log=lambda m: None, progress=False)
    meta = json.loads((run / "recipe.json").read_text())
    assert meta["recipe"]["dataset_kwargs"] == {"size": 28, "color": "grayscale"}
    assert meta["dataset"]["image_shape"] == [1, 28, 28] and meta["dataset"]["classes"] == ["cats", "dogs"]
    [[(top, p)]] = predict(run, [root / "validation" / "dogs" / "dogs.0.jpg"], top_k=1, precision="fp32")
    # the file prepared as the run's test split was: its probabilities are among the test rows'
    import cnnlab
    ds = load_dataset("image-folder", root, size=28, color="grayscale")
    model = cnnlab.load_run(run).model.eval()
    with torch.no_grad():
        probs = model((ds.test_images.float() / 255 - ds.mean[0]) / ds.std[0]).softmax(1)
    assert any(ds.classes[int(row.argmax())] == top and abs(float(row.max()) - p) < 1e-5 for row in probs)


def test_cats_vs_dogs_from_a_small_folder(tmp_path):
    make_split_folder(tmp_path / "cats_vs_dogs")
    ds = load_dataset("cats_vs_dogs", tmp_path, size=20)
    assert ds.train_images.shape == (8, 3, 20, 20) and ds.classes == ["cats", "dogs"]
    assert "validation/ is used as the test split" in ds.provenance["note"]


def test_cats_vs_dogs_not_found_says_where(tmp_path):
    with pytest.raises(FileNotFoundError, match="(?s)no folder with train/ and validation/.*cats_and_dogs_filtered"):
        load_dataset("cats_vs_dogs", tmp_path)


# --- the real data -----------------------------------------------------------------------------

@pytest.mark.realdata
def test_real_cats_vs_dogs():
    root = real_data("cats_vs_dogs").parent
    ds = load_dataset("cats_vs_dogs", root)
    assert ds.train_images.shape == (2000, 3, 150, 150) and ds.test_images.shape == (1000, 3, 150, 150)
    assert torch.bincount(ds.train_labels).tolist() == [1000, 1000]
    assert torch.bincount(ds.test_labels).tolist() == [500, 500]
    assert ds.provenance["skipped"]["count"] == 0 and ds.provenance["lossy"] is False
    again = load_dataset("cats_vs_dogs", root)
    assert again.provenance["from_cache"] and torch.equal(again.test_images, ds.test_images)
    # the folder checksum equals the one computed from ../shared/data/SHA256SUMS
    import hashlib
    sums = (root / "SHA256SUMS").read_text().splitlines()
    pre = "./cats_vs_dogs/"
    listing = sorted((p[len(pre):], h) for h, p in (line.split("  ", 1) for line in sums)
                     if p.startswith(pre + "train/"))
    text = "".join(f"{h}  {p}\n" for p, h in listing)
    assert ds.provenance["files"]["train/"] == hashlib.sha256(text.encode()).hexdigest()


# --- folders as users have them ------------------------------------------------------------------

def test_split_folders_in_any_case_and_val(tmp_path):
    """Train/ + Validation/ (Windows, Kaggle) and train/ + val/ are split layouts, not classes."""
    make_split_folder(tmp_path / "caps", test_name="Validation")
    (tmp_path / "caps" / "train").rename(tmp_path / "caps" / "Train")
    ds = load_image_folder(tmp_path / "caps", size=8)
    assert ds.classes == ["cats", "dogs"] and len(ds.test_labels) == 4
    assert set(ds.provenance["files"]) == {"Train/", "Validation/"}
    ds = load_image_folder(make_split_folder(tmp_path / "v", test_name="val"), size=8)
    assert "val/ is the test split" in ds.provenance["layout"] and len(ds.test_labels) == 4
    # a class called Train (buses, cars, trains) with no test folder beside it stays a class
    vehicles = make_folder(tmp_path / "vehicles", classes=("Bus", "Car", "Train"), n=5)
    assert load_image_folder(vehicles, size=8).classes == ["Bus", "Car", "Train"]


def test_an_unlabelled_test_folder_says_what_to_do(tmp_path):
    root = tmp_path / "kaggle"
    make_folder(root / "train")
    (root / "test").mkdir()
    (root / "test" / "1.jpg").write_bytes(img_bytes(8, 8))
    with pytest.raises(DataFileError, match=r"images without class sub-folders, i.e. without labels.*"
                                            rf"--data-dir {root / 'train'}"):
        load_image_folder(root, size=8)


def test_16_bit_greyscale_is_scaled_not_clipped_to_white():
    from cnnlab.data.images import decode_image
    ramp = (np.arange(64, dtype=np.uint16) * 1040).reshape(8, 8)  # 0 .. 65520
    f = io.BytesIO()
    Image.fromarray(ramp).save(f, format="PNG")
    a = decode_image(f.getvalue(), None, "grayscale")[:, :, 0]
    assert a.dtype == np.uint8 and a[0, 0] == 0 and a[-1, -1] == round(65520 / 257)
    assert np.array_equal(a, np.round(ramp / 257).astype(np.uint8))


def test_a_dark_16_bit_image_stays_dark():
    """Its brightest value under 256 left it unscaled: 1000 became 4 while 200 stayed 200."""
    from cnnlab.data.images import decode_image
    for value in (200, 1000):
        f = io.BytesIO()
        Image.fromarray(np.full((4, 4), value, dtype=np.uint16)).save(f, format="PNG")
        assert decode_image(f.getvalue(), None, "grayscale")[0, 0, 0] == round(value / 257)
        pgm = b"P5\n4 4\n65535\n" + np.full((4, 4), value, ">u2").tobytes()  # Pillow: mode I
        assert decode_image(pgm, None, "grayscale")[0, 0, 0] == round(value / 257)


def test_symlinked_sub_folders_are_read_once(tmp_path):
    root = make_folder(tmp_path / "pets", n=3)
    extra = make_folder(tmp_path / "extra", classes=("more",), n=2)
    (root / "cats" / "more_cats").symlink_to(extra / "more", target_is_directory=True)
    (root / "cats" / "loop").symlink_to(root / "cats", target_is_directory=True)  # not followed twice
    from cnnlab.data.images import scan_class_folders
    _, files, _ = scan_class_folders(root)
    names = [f[0] for f in files]
    assert names.count("cats/more_cats/more.0.jpg") == 1 and len(names) == 8


def test_a_rewritten_file_with_the_same_size_and_mtime_is_decoded_again(tmp_path):
    """BMPs of one size are byte-for-byte the same length; tar and unzip restore mtimes: the cache
    key has the change time too, so such a replacement is not served stale pixels."""
    root = make_folder(tmp_path / "bmp", n=3, sizes=((8, 8),), fmt="BMP")
    first = load_image_folder(root, size=None, resize="none", test_fraction=0.4)
    f, other = root / "cats" / "cats.0.bmp", root / "dogs" / "dogs.0.bmp"
    st = f.stat()
    f.write_bytes(other.read_bytes())
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert f.stat().st_size == st.st_size and f.stat().st_mtime_ns == st.st_mtime_ns
    again = load_image_folder(root, size=None, resize="none", test_fraction=0.4)
    assert not again.provenance["from_cache"] and again.provenance["files"] != first.provenance["files"]


def test_jfif_files_are_images():
    from cnnlab.data.images import IMAGE_EXTENSIONS
    assert ".jfif" in IMAGE_EXTENSIONS  # Windows' name for downloaded JPEGs


def test_a_run_is_not_evaluated_on_a_folder_that_changed_since(tmp_path):
    """A photo added to a class-layout folder shifts its seeded test split: re-evaluating the run
    would score images it trained on, so it is refused; a changed test folder is a warning."""
    import cnnlab
    flat = make_folder(tmp_path / "flat", n=6)
    args = ["dataset=image-folder", "epochs=1", "val_fraction=0.25", "dataset_kwargs.size=28",
            "dataset_kwargs.color=grayscale"]
    cnnlab.train("mnist-lenet5", args, data_dir=flat, run_dir=tmp_path / "r1", log=lambda m: None, progress=False)
    assert cnnlab.evaluate(tmp_path / "r1")["total"] == 2  # the folder as trained on: fine
    (flat / "cats" / "aaa_new.jpg").write_bytes(img_bytes(30, 30, seed=99))
    with pytest.raises(ValueError, match=r"the files of \./ differ from those the run was trained on.*"
                                         "test images now may include training images"):
        cnnlab.evaluate(tmp_path / "r1")
    split = make_split_folder(tmp_path / "split")
    cnnlab.train("mnist-lenet5", args, data_dir=split, run_dir=tmp_path / "r2", log=lambda m: None, progress=False)
    (split / "validation" / "cats" / "cats.0.jpg").write_bytes(img_bytes(30, 30, seed=98))
    with pytest.warns(UserWarning, match=r"the files of validation/ differ .* the data as they are now"):
        assert cnnlab.evaluate(tmp_path / "r2")["total"] == 4


def test_data_info_takes_the_dataset_options(tmp_path, capsys):
    from cnnlab.cli import main
    root = make_split_folder(tmp_path / "pets", test_name="val")
    assert main(["data", "info", "image-folder", "--data-dir", str(root), "--set", "size=16",
                 "color=grayscale"]) == 0
    out = capsys.readouterr().out
    assert "image-folder: 12 examples, 2 classes, images 1x16x16 (C x H x W) uint8" in out
    assert "val/ is the test split" in out and "options (here --set KEY=VALUE" in out
    assert main(["data", "info", "image-folder", "--data-dir", str(root), "--set", "sise=16"]) == 2
    assert "has no option 'sise'; did you mean 'size'" in capsys.readouterr().err


@pytest.mark.parametrize("size", ["abc", [32, 32, 3], [32, "x"]])
def test_a_size_that_is_not_one_says_what_a_size_is(size):
    from cnnlab.data.images import _size_hw
    with pytest.raises(ValueError, match=r"image size is an integer or \(height, width\), got "):
        _size_hw(size)
    assert _size_hw("32") == (32, 32) and _size_hw([24, 32]) == (24, 32)


@pytest.mark.parametrize("test_dir, how", [("train", "is"), ("./train", "is"), ("train/", "is"),
                                           ("train/cats", "lies inside"), (".", "holds")])
def test_test_dir_that_is_the_training_folder_is_refused(tmp_path, test_dir, how):
    # it evaluated on the training images, silently (layout "train/ + train/")
    root = make_split_folder(tmp_path / "pets")
    with pytest.raises(ValueError, match=f"test folder .* {how} the training folder .*pets/train; the test split "
                                         "must be other images"):
        load_dataset("image-folder", root, size=8, test_dir=test_dir)


def test_classes_given_as_text_are_split_at_commas(tmp_path):
    # --set classes=cats,dogs passes a str, which list() turned into its characters
    root = make_split_folder(tmp_path / "pets")
    assert load_dataset("image-folder", root, size=8, classes="cats, dogs").classes == ["cats", "dogs"]
    with pytest.raises(DataFileError, match=r"differ from the expected \['dogs'\]"):
        load_dataset("image-folder", root, size=8, classes="dogs")


def test_mixed_sizes_error_names_the_files_in_full(tmp_path):
    root = make_split_folder(tmp_path / "pets")
    with pytest.raises(DataFileError, match=rf"^{root}/train/\w+/\S+: image is \d+x\d+ but {root}/train/\w+/\S+ is"):
        load_image_folder(root, size=None, resize="none")
