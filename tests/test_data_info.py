"""dataset_info, verify_dataset and plot_class_distribution (the functions the CLI calls)."""
from __future__ import annotations

import hashlib

import pytest
import torch

from cnnlab.data import ImageDataset, dataset_info, format_verification, plot_class_distribution, verify_dataset
from conftest import real_data


def small_ds(lossy=False):
    g = torch.Generator().manual_seed(0)
    return ImageDataset(
        name="toy", train_images=torch.randint(0, 256, (30, 3, 8, 8), dtype=torch.uint8, generator=g),
        train_labels=torch.tensor([0] * 20 + [1] * 10), test_images=torch.zeros(6, 3, 8, 8, dtype=torch.uint8),
        test_labels=torch.tensor([0, 0, 0, 1, 1, 1]), classes=["cat", "dog"],
        provenance={"source": "unit test", "files": {"a.bin": "ab" * 32}, "lossy": lossy,
                    "skipped": {"count": 2, "first": [["x.txt", "not an image file (extension)"]]}})


def test_info_lists_counts_stats_source_and_lossy():
    text = dataset_info(small_ds(lossy=True))
    assert "toy: 36 examples, 2 classes, images 3x8x8" in text
    lines = text.splitlines()
    assert lines[2].split() == ["class", "train", "test"]
    assert [line.split() for line in lines[3:6]] == [["cat", "20", "3"], ["dog", "10", "3"], ["total", "30", "6"]]
    x = small_ds().train_images.float() / 255  # per-channel statistics of the training split
    mean = " ".join(f"{v:.4f}" for v in x.mean((0, 2, 3)))
    std = " ".join(f"{v:.4f}" for v in x.std((0, 2, 3), unbiased=False))
    assert f"train mean {mean}, std {std} (per channel, [0, 1] units)" in text
    assert "source: unit test" in text
    assert "lossy re-encoding: YES" in text and "a.bin" in text and "skipped: 2 file(s)" in text
    assert "lossy re-encoding: no" in dataset_info(small_ds())


def test_plot_writes_a_png(tmp_path):
    out = plot_class_distribution(small_ds(), tmp_path / "plots" / "dist.png")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert [p.name for p in (tmp_path / "plots").iterdir()] == ["dist.png"]  # no temp file left


def test_plot_writes_the_format_its_suffix_names(tmp_path):
    # the temporary file has no telling suffix: x.jpg held PNG bytes
    assert plot_class_distribution(small_ds(), tmp_path / "dist.jpg").read_bytes()[:3] == b"\xff\xd8\xff"
    assert plot_class_distribution(small_ds(), tmp_path / "dist.svg").read_text().lstrip().startswith("<?xml")
    with pytest.raises(ValueError, match=r"dist.xyz: matplotlib writes no .xyz files; use one of .*\.png"):
        plot_class_distribution(small_ds(), tmp_path / "dist.xyz")
    assert not (tmp_path / "dist.xyz").exists()


def _sums_folder(tmp_path):
    d = tmp_path / "data" / "iris"
    d.mkdir(parents=True)
    (d / "iris.csv").write_text("a,b\n")
    (d / "extra.txt").write_text("x")
    h = hashlib.sha256(b"a,b\n").hexdigest()
    (tmp_path / "data" / "SHA256SUMS").write_text(f"{h}  ./iris/iris.csv\n{'0' * 64}  ./other/x.bin\n")
    return tmp_path / "data"


def test_verify_against_sha256sums_in_the_parent(tmp_path):
    root = _sums_folder(tmp_path)
    r = verify_dataset("iris", root)
    assert r["ok"] is True and r["folder"].endswith("iris") and len(r["checks"]) == 1
    assert r["unlisted"] == 1  # extra.txt
    assert "OK" in format_verification(r)
    (root / "iris" / "iris.csv").write_text("a,c\n")
    r = verify_dataset("iris", root)
    assert r["ok"] is False and r["failed"] == ["iris.csv"]
    assert "FAILED" in format_verification(r) and "DIFFERS iris.csv" in format_verification(r)
    (root / "iris" / "iris.csv").unlink()
    r = verify_dataset("iris", root)
    assert r["ok"] is False and r["missing"] == ["iris.csv"]


def test_verify_against_official_md5(tmp_path):
    d = tmp_path / "mnist"
    d.mkdir()
    (d / "train-images-idx3-ubyte.gz").write_bytes(b"not the official file")
    r = verify_dataset("mnist", tmp_path)
    assert r["ok"] is False and r["checks"][0]["against"] == "official md5"
    assert r["checks"][0]["expected"] == "f68b3c2dcbeaaa9fbdd348bbdeb94873"


def test_verify_with_nothing_to_check_is_honest(tmp_path):
    (tmp_path / "iris").mkdir()
    r = verify_dataset("iris", tmp_path)
    assert r["ok"] is None and "nothing to verify against" in r["message"]
    assert "UNVERIFIED" in format_verification(r)


@pytest.mark.realdata
@pytest.mark.parametrize("name, n", [("mnist", 9), ("cifar10", 2), ("notmnist-small", 5), ("iris", 4)])
def test_verify_real_data(name, n):
    r = verify_dataset(name, real_data("").resolve())
    assert r["ok"] is True and len(r["checks"]) == n, format_verification(r)


def test_verifying_image_folder_needs_the_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("CNNLAB_DATA", str(tmp_path))  # a data root it must not verify instead
    with pytest.raises(ValueError, match="'image-folder' needs the folder: pass data_dir"):
        verify_dataset("image-folder")


def _ds(train_images, train_labels, test_images=None, test_labels=None):
    test_images = train_images[:2] if test_images is None else test_images
    test_labels = train_labels[:2] if test_labels is None else test_labels
    return ImageDataset("mine", train_images, train_labels, test_images, test_labels, ["a", "b"])


@pytest.mark.parametrize("images, labels, test_images, message", [
    (torch.zeros(4, 32, 32, 3, dtype=torch.uint8), torch.zeros(4, dtype=torch.long), None,
     r"train_images of shape \(4, 32, 32, 3\) look NHWC.*images.permute\(0, 3, 1, 2\)"),
    (torch.zeros(4, 1, 8, 8, dtype=torch.uint8), torch.eye(4, 2), None,
     r"train_labels must be integer class indices \(N,\), got torch.float32 \(4, 2\); one-hot\?"),
    (torch.zeros(4, 1, 8, 8, dtype=torch.uint8), torch.tensor([0.5, 1.0, 0.0, 1.0]), None,
     r"got torch.float32 \(4,\)$"),
    (torch.tensor([[[0.0, float("inf")]]] * 4), torch.zeros(4, dtype=torch.long), None,
     "train_images hold NaN or infinite values, e.g. example 0"),
    (torch.zeros(4, 1, 8, 8, dtype=torch.uint8), torch.zeros(4, dtype=torch.long),
     torch.zeros(2, 3, 8, 8, dtype=torch.uint8), r"training images are \(1, 8, 8\), test images \(3, 8, 8\)"),
])
def test_an_in_memory_dataset_names_what_is_wrong(images, labels, test_images, message):
    with pytest.raises(ValueError, match=message):
        _ds(images, labels, test_images)


@pytest.mark.parametrize("labels", [torch.tensor([0, 1, 0, 1], dtype=torch.int32),
                                    torch.tensor([0.0, 1.0, 0.0, 1.0]), torch.tensor([False, True, False, True])])
def test_an_in_memory_dataset_takes_other_label_dtypes_as_int64(labels):
    """int32, and the 0/1 floats or bools of a binary task, are class indices as int64."""
    ds = _ds(torch.zeros(4, 1, 8, 8, dtype=torch.uint8), labels)
    assert ds.train_labels.dtype == ds.test_labels.dtype == torch.int64
    assert ds.train_labels.tolist() == [0, 1, 0, 1]
