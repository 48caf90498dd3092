import gzip

import numpy as np
import pytest

from cnnlab.data import DataFileError, load_dataset, read_idx, read_idx_pair
from helpers import write_idx, write_mnist_folder


def test_roundtrip_gz_and_raw(tmp_path):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    assert np.array_equal(read_idx(write_idx(tmp_path / "a.gz", a)), a)
    assert np.array_equal(read_idx(write_idx(tmp_path / "a.idx", a, gz=False)), a)


def test_truncated_gzip(tmp_path):
    p = write_idx(tmp_path / "x-idx3-ubyte.gz", np.zeros((10, 28, 28), np.uint8))
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataFileError, match="x-idx3-ubyte.gz.*(truncated|corrupt)"):
        read_idx(p)


def test_truncated_payload(tmp_path):
    p = tmp_path / "t.gz"
    header = bytes([0, 0, 8, 3]) + (10).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    with gzip.open(p, "wb") as f:
        f.write(header + bytes(100))
    with pytest.raises(DataFileError, match=r"t.gz: truncated.*\(10, 28, 28\)"):
        read_idx(p)


def test_wrong_magic(tmp_path):
    p = tmp_path / "bad.gz"
    with gzip.open(p, "wb") as f:
        f.write(b"\x89PNG" + bytes(100))
    with pytest.raises(DataFileError, match="bad.gz: bad IDX magic"):
        read_idx(p)


def test_wrong_ndim(tmp_path):
    p = write_idx(tmp_path / "labels.gz", np.zeros(5, np.uint8))
    with pytest.raises(DataFileError, match="1 dimensions, expected 3"):
        read_idx(p, expect_ndim=3)


def test_count_mismatch(tmp_path):
    xi = write_idx(tmp_path / "i.gz", np.zeros((5, 28, 28), np.uint8))
    yl = write_idx(tmp_path / "l.gz", np.zeros(4, np.uint8))
    with pytest.raises(DataFileError, match="5 images but .* 4 labels"):
        read_idx_pair(xi, yl)


def test_mnist_dataset_from_folder(tmp_path):
    write_mnist_folder(tmp_path / "mnist", n_train=30, n_test=10)
    ds = load_dataset("mnist", tmp_path, download=False)  # finds the mnist/ sub-folder
    assert ds.train_images.shape == (30, 1, 28, 28) and ds.train_images.dtype.is_floating_point is False
    assert ds.test_labels.tolist() == [i % 10 for i in range(10)]
    assert set(ds.provenance["files"]) == {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                                           "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"}


def test_missing_files_say_where(tmp_path):
    with pytest.raises(FileNotFoundError, match="(?s)mnist.*not found.*--data-dir"):
        load_dataset("mnist", tmp_path, download=False)


def test_env_var_lookup(tmp_path, monkeypatch):
    write_mnist_folder(tmp_path / "mnist", n_train=20, n_test=10)
    monkeypatch.setenv("CNNLAB_DATA", str(tmp_path))
    assert len(load_dataset("mnist", download=False).train_labels) == 20


@pytest.mark.parametrize("which, code, dtype", [("labels", 0x0D, ">f4"), ("images", 0x0D, ">f4"),
                                                ("images", 0x09, "i1")])
def test_pair_of_other_types_is_refused_naming_the_file(tmp_path, which, code, dtype):
    # float labels of 2.7 were truncated into class 2, silently; float images failed unnamed
    def raw_idx(path, array):
        header = bytes([0, 0, code, array.ndim]) + b"".join(n.to_bytes(4, "big") for n in array.shape)
        with gzip.open(path, "wb") as f:
            f.write(header + array.astype(dtype).tobytes())
        return path
    xi = write_idx(tmp_path / "i.gz", np.zeros((5, 28, 28), np.uint8))
    yl = write_idx(tmp_path / "l.gz", np.zeros(5, np.uint8))
    if which == "labels":
        yl = raw_idx(tmp_path / "l.gz", np.full(5, 2.7))
    else:
        xi = raw_idx(tmp_path / "i.gz", np.zeros((5, 28, 28)))
    bad = yl if which == "labels" else xi
    with pytest.raises(DataFileError, match=rf"{bad.name}: holds (float32|int8) values \(IDX type code "
                                            rf"{hex(code)}\); image and label files hold unsigned bytes"):
        read_idx_pair(xi, yl)


def test_header_whose_sizes_overflow_int64_is_refused(tmp_path):
    # 2**22 * 2**21 * 2**21 = 2**64 wrapped to 0 in np.prod's int64, passed as "0 bytes", and
    # failed in reshape with numpy's message
    p = tmp_path / "wrap-idx3-ubyte"
    p.write_bytes(bytes([0, 0, 8, 3]) + b"".join((1 << k).to_bytes(4, "big") for k in (22, 21, 21)))
    with pytest.raises(DataFileError, match=r"wrap-idx3-ubyte: truncated: header says shape \(4194304,"):
        read_idx(p)


def test_gzip_recognised_by_content_not_name(tmp_path):
    a = np.arange(6, dtype=np.uint8)
    gz = write_idx(tmp_path / "x-idx1-ubyte", a)  # gzip data without .gz: was "bad IDX magic 0x1f8b0800"
    raw = write_idx(tmp_path / "y-idx1-ubyte.GZ", a, gz=False)
    assert np.array_equal(read_idx(gz), a) and np.array_equal(read_idx(raw), a)


def test_unreadable_file_is_not_called_corrupt(tmp_path):
    d = tmp_path / "dir-idx1-ubyte.gz"
    d.mkdir()
    with pytest.raises(IsADirectoryError, match="dir-idx1-ubyte.gz"):
        read_idx(d)


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_label_outside_the_classes_names_the_labels_file(tmp_path, name):
    root = write_mnist_folder(tmp_path / name, n_train=20, n_test=10)
    y = np.arange(20, dtype=np.uint8) % 10
    y[7] = 12  # one flipped byte: a plain ValueError from ImageDataset, without the file's name
    write_idx(root / "train-labels-idx1-ubyte.gz", y)
    with pytest.raises(DataFileError, match=r"train-labels-idx1-ubyte.gz: label 12 at index 7 is outside 0..9"):
        load_dataset(name, tmp_path, download=False)


def test_images_not_28x28_name_the_images_file(tmp_path):
    root = write_mnist_folder(tmp_path / "mnist", n_train=20, n_test=10)
    write_idx(root / "t10k-images-idx3-ubyte.gz", np.zeros((10, 32, 32), np.uint8))
    with pytest.raises(DataFileError, match=r"t10k-images-idx3-ubyte.gz: images are 32x32, expected 28x28"):
        load_dataset("mnist", tmp_path, download=False)
