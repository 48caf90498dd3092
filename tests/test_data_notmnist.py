"""notMNIST small: the IDX, .mat and PNG layouts give one dataset and one split; unreadable PNGs are
skipped and counted; the real copy has 18,724 images and the IDX and PNG copies split identically."""
from __future__ import annotations

import csv
import gzip
import io
import struct
import sys
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.data import DataFileError, DataSkipWarning, load_dataset
from cnnlab.data.download import safe_extract
from cnnlab.data.notmnist import LETTERS, canonical_order
from conftest import real_data


def write_idx(path, a):
    header = struct.pack(">HBB", 0, 8, a.ndim) + struct.pack(f">{a.ndim}I", *a.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + a.astype(np.uint8).tobytes())


def fake_set(n_per=12, seed=0):
    """Random 28x28 letters (one duplicate pair, as the real set has), labels 0..9, in file order."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (10 * n_per, 28, 28), dtype=np.uint8)
    y = np.repeat(np.arange(10), n_per)
    x[1] = x[0]  # identical images of the same letter
    return x, y


def write_all_layouts(root, x, y):
    root.mkdir(parents=True, exist_ok=True)
    write_idx(root / "notMNIST_small-images-idx3-ubyte.gz", x)
    write_idx(root / "notMNIST_small-labels-idx1-ubyte.gz", y)
    with open(root / "notMNIST_small-index.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["index", "label", "letter", "file"])
        for i, lab in enumerate(y):
            w.writerow([i, lab, LETTERS[lab], f"{LETTERS[lab]}/{i:05d}.png"])
    png = root / "png" / "notMNIST_small"
    for i, (im, lab) in enumerate(zip(x, y)):
        (png / LETTERS[lab]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(im, "L").save(png / LETTERS[lab] / f"{i:05d}.png")
    return png


def test_canonical_order_ignores_input_order():
    x, y = fake_set()
    perm = np.random.default_rng(1).permutation(len(y))
    a, b = canonical_order(x, y), canonical_order(x[perm], y[perm])
    assert np.array_equal(x[a], x[perm][b]) and np.array_equal(y[a], y[perm][b])


def test_idx_png_and_mat_layouts_give_the_same_split(tmp_path):
    x, y = fake_set()
    png = write_all_layouts(tmp_path / "notmnist-small", x, y)
    scipy_io = pytest.importorskip("scipy.io")
    perm = np.random.default_rng(2).permutation(len(y))  # the .mat in another order
    matdir = tmp_path / "m" / "notmnist-small"
    matdir.mkdir(parents=True)
    scipy_io.savemat(matdir / "notMNIST_small.mat",
                     {"images": np.moveaxis(x[perm], 0, 2).astype(np.float64), "labels": y[perm].astype(np.float64)})
    a = load_dataset("notmnist-small", tmp_path, layout="idx")
    b = load_dataset("notmnist-small", png.parent, layout="png")
    c = load_dataset("notmnist-small", tmp_path / "m", layout="mat")
    for other in (b, c):
        assert torch.equal(a.train_images, other.train_images) and torch.equal(a.test_images, other.test_images)
        assert torch.equal(a.train_labels, other.train_labels) and torch.equal(a.test_labels, other.test_labels)
    # the duplicate pair is kept once: 119 images; round(0.1 * 12) = 1 per letter held out
    assert torch.bincount(a.test_labels).tolist() == [1] * 10 and a.train_images.shape == (109, 1, 28, 28)
    assert a.provenance["distinct"] == {"copies_removed": 1, "ambiguous_dropped": 0}
    from cnnlab.data.info import dataset_info
    assert ("duplicates: 1 extra copies removed and 0 copies of images under two classes dropped "
            "(of 120 read), before the split") in dataset_info(a)
    assert a.classes == LETTERS and set(a.provenance["files"]) >= {"notMNIST_small-index.csv"}
    assert b.provenance["layout"] == "png-folder" and c.provenance["layout"] == "mat"


def test_a_run_trained_on_one_layout_accepts_another_with_the_same_split(tmp_path):
    """The layouts give one split (above), so a run trained on the IDX copy is evaluated on the PNG
    copy; other pixels still give another split, which is refused."""
    from cnnlab.runs import _check_same_data
    x, y = fake_set()
    png = write_all_layouts(tmp_path / "notmnist-small", x, y)
    a = load_dataset("notmnist-small", tmp_path, layout="idx")
    b = load_dataset("notmnist-small", png.parent, layout="png")
    trained = {"name": a.name, "classes": a.classes, "image_shape": list(a.image_shape),
               "provenance": a.provenance}
    _check_same_data(tmp_path, trained, b)  # was: ValueError "its splits are not the run's"
    _check_same_data(tmp_path, trained, b, resuming=True)
    x[5] = 255 - x[5]
    other = write_all_layouts(tmp_path / "other" / "notmnist-small", x, y)
    c = load_dataset("notmnist-small", other.parent, layout="png")
    with pytest.raises(ValueError, match="splits are not the run's"):
        _check_same_data(tmp_path, trained, c)


def test_duplicates_are_kept_once_and_images_under_two_letters_dropped():
    from cnnlab.data.notmnist import distinct
    x, y = fake_set(n_per=3)
    x[5] = x[4]  # the same image as an "B" (label 1) ... and
    x[7] = x[4]
    y2 = y.copy()
    y2[7] = 2  # ... as a "C": ambiguous, all three copies go
    kept, labels, counts = distinct(x, y2)
    assert counts == {"copies_removed": 1, "ambiguous_dropped": 3}  # x[1], a copy of x[0]
    assert len(kept) == 30 - 4 and not any(np.array_equal(k, x[4]) for k in kept)


def test_auto_prefers_idx(tmp_path):
    x, y = fake_set(n_per=3)
    write_all_layouts(tmp_path / "notmnist-small", x, y)
    assert load_dataset("notmnist-small", tmp_path).provenance["layout"] == "idx"


def test_unreadable_pngs_skipped_and_counted(tmp_path):
    x, y = fake_set(n_per=3)
    png = write_all_layouts(tmp_path, x, y)
    (png / "A" / "RGVtb2NyYXRpY2FCb2xkT2xkc3R5bGUgQm9sZC50dGY=.png").write_bytes(b"")  # zero bytes
    (png / "F" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)            # corrupt
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(png / "B" / "big.png")          # wrong size
    (png / "C" / "notes.txt").write_text("x")
    with pytest.warns(DataSkipWarning, match=r"skipped 4 file\(s\)") as rec:
        ds = load_dataset("notmnist-small", png, layout="png")
    msg = str(rec[0].message)
    assert "expected 28x28" in msg and "RGVtb2NyYXRpY2FCb2xkT2xkc3R5bGUgQm9sZC50dGY=.png" in msg and "notes.txt" in msg
    assert ds.provenance["skipped"]["count"] == 4
    assert len(ds.train_labels) + len(ds.test_labels) == 29  # 30 read, one duplicate pair kept once


def test_png_archive_in_place_and_unsafe_member_refused(tmp_path):
    x, y = fake_set(n_per=2)
    png = write_all_layouts(tmp_path / "src", x, y)
    d = tmp_path / "notmnist-small"
    d.mkdir()
    with tarfile.open(d / "notMNIST_small.tar.gz", "w:gz") as tf:
        tf.add(png, arcname="notMNIST_small")
    ds = load_dataset("notmnist-small", tmp_path, layout="png")
    # 20 images, one duplicate pair kept once
    assert ds.provenance["layout"] == "png-archive" and len(ds.train_labels) + len(ds.test_labels) == 19
    with tarfile.open(d / "notMNIST_small.tar.gz", "w:gz") as tf:
        info = tarfile.TarInfo("../A/evil.png")
        data = (png / "A" / "00000.png").read_bytes()
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    with pytest.raises(DataFileError, match="unsafe path"):
        load_dataset("notmnist-small", tmp_path, layout="png")


def test_index_csv_that_disagrees_is_an_error(tmp_path):
    x, y = fake_set(n_per=2)
    root = tmp_path / "notmnist-small"
    write_all_layouts(root, x, y)
    write_idx(root / "notMNIST_small-labels-idx1-ubyte.gz", y[::-1].copy())
    with pytest.raises(DataFileError, match="notMNIST_small-index.csv: its 20 labels do not match"):
        load_dataset("notmnist-small", tmp_path, layout="idx")


def test_idx_count_mismatch(tmp_path):
    x, y = fake_set(n_per=2)
    root = tmp_path / "notmnist-small"
    write_all_layouts(root, x, y)
    write_idx(root / "notMNIST_small-labels-idx1-ubyte.gz", y[:-1])
    with pytest.raises(DataFileError, match="20 images but .* 19 labels"):
        load_dataset("notmnist-small", tmp_path, layout="idx")


@pytest.mark.parametrize("mat, msg", [
    ({"X": np.zeros((28, 28, 2))}, r"expected variables 'images' and 'labels', found \['X'\]"),
    ({"images": np.zeros((2, 28, 28)), "labels": np.zeros(2)}, r"'images' is \(2, 28, 28\), expected \(28, 28, N\)"),
    ({"images": np.zeros((28, 28, 3)), "labels": np.zeros(2)}, "3 images but 2 labels"),
    ({"images": np.full((28, 28, 2), 300.0), "labels": np.zeros(2)}, "'images' values are not integers in 0-255"),
    ({"images": np.zeros((28, 28, 2)), "labels": np.array([0, 11])}, "'labels' are not integers 0-9"),
])
def test_bad_mat_files(tmp_path, mat, msg):
    scipy_io = pytest.importorskip("scipy.io")
    d = tmp_path / "notmnist-small"
    d.mkdir()
    scipy_io.savemat(d / "notMNIST_small.mat", mat)
    with pytest.raises(DataFileError, match="notMNIST_small.mat: " + msg):
        load_dataset("notmnist-small", tmp_path, layout="mat")


def test_mat_without_scipy_says_how_to_get_it(tmp_path, monkeypatch):
    d = tmp_path / "notmnist-small"
    d.mkdir()
    (d / "notMNIST_small.mat").write_bytes(b"MATLAB 5.0")
    monkeypatch.setitem(sys.modules, "scipy.io", None)  # import scipy.io now fails
    with pytest.raises(ImportError, match="needs scipy: pip install scipy"):
        load_dataset("notmnist-small", tmp_path, layout="mat")


def test_not_found_lists_layouts(tmp_path):
    with pytest.raises(FileNotFoundError, match="(?s)notMNIST_small-images-idx3-ubyte.gz.*notMNIST_small.mat"):
        load_dataset("notmnist-small", tmp_path)


# --- the real data -----------------------------------------------------------------------------

@pytest.mark.realdata
def test_real_notmnist_idx_and_extracted_pngs_split_identically(tmp_path):
    root = real_data("notmnist-small")
    a = load_dataset("notmnist-small", root.parent, layout="idx")
    # 18,724 images, 18,232 distinct; 2 of them drawn under two letters (8 copies) are dropped
    assert a.provenance["total"] == 18724
    assert a.provenance["distinct"] == {"copies_removed": 486, "ambiguous_dropped": 8}
    assert len(a.train_labels) + len(a.test_labels) == 18230
    counts = (torch.bincount(a.train_labels) + torch.bincount(a.test_labels)).tolist()
    assert counts == [1848, 1852, 1848, 1847, 1847, 1850, 1850, 1845, 1595, 1848]
    assert a.test_images.shape == (1824, 1, 28, 28) and a.train_images.shape == (16406, 1, 28, 28)
    # no test image has a copy in the training split (70 had, before duplicates were removed)
    train = set(map(bytes, a.train_images.flatten(1).numpy()))
    assert not any(bytes(t) in train for t in a.test_images.flatten(1).numpy())
    safe_extract(root / "notMNIST_small.tar.gz", tmp_path / "x")
    b = load_dataset("notmnist-small", tmp_path / "x", layout="png")
    assert b.provenance["layout"] == "png-folder" and b.provenance["skipped"]["count"] == 0
    assert torch.equal(a.test_images, b.test_images) and torch.equal(a.test_labels, b.test_labels)
    assert torch.equal(a.train_images, b.train_images) and torch.equal(a.train_labels, b.train_labels)


@pytest.mark.realdata
def test_real_notmnist_as_mat_splits_identically(tmp_path):
    """The seed's .mat layout (images (28, 28, N) as doubles), built from the real pixels."""
    scipy_io = pytest.importorskip("scipy.io")
    from cnnlab.data.notmnist import read_idx_copy
    root = real_data("notmnist-small")
    x, y, _, _ = read_idx_copy(root)
    d = tmp_path / "notmnist-small"
    d.mkdir()
    scipy_io.savemat(d / "notMNIST_small.mat", {"images": np.moveaxis(x, 0, 2), "labels": y.astype(np.float64)})
    a = load_dataset("notmnist-small", root.parent, layout="idx")
    m = load_dataset("notmnist-small", tmp_path, layout="mat")
    assert torch.equal(a.test_images, m.test_images) and torch.equal(a.train_labels, m.train_labels)
