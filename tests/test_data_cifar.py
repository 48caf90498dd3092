"""CIFAR-10: the official python batches (read with a restricted unpickler), the image-tree layouts,
the cats-vs-dogs subset, and the real lossy JPEG copy in ../shared/data."""
from __future__ import annotations

import io
import pickle
import struct
import tarfile
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.data import DataFileError, load_dataset
from cnnlab.data import cifar
from cnnlab.data.cifar import CifarUnpickler, read_cifar_batch, read_cifar_python
from conftest import real_data


class Py2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 ``str`` opcodes (SHORT_BINSTRING/BINSTRING), as the official CIFAR
    batches were written by Python 2 with protocol 2. Python 3's own protocol-2 pickler would write
    ``_codecs.encode(...)`` calls instead, which the CIFAR reader rightly refuses."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_bytes_py2(self, obj):
        n = len(obj)
        if n < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", n) + obj)
        self.memoize(obj)

    dispatch[bytes] = _save_bytes_py2


def py2_pickle(obj) -> bytes:
    f = io.BytesIO()
    Py2Pickler(f, protocol=2).dump(obj)
    # numpy 2 names numpy._core; the official files (numpy 1) name numpy.core
    return f.getvalue().replace(b"numpy._core.multiarray\n_reconstruct", b"numpy.core.multiarray\n_reconstruct")


def batch_bytes(n: int, seed: int, labels=None, data=None) -> bytes:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, 3072), dtype=np.uint8) if data is None else data
    y = [int(v) for v in (rng.integers(0, 10, n) if labels is None else labels)]
    return py2_pickle({b"batch_label": b"training batch 1 of 5", b"labels": y, b"data": x,
                       b"filenames": [b"img_%d.png" % i for i in range(n)]})


META = {b"label_names": [c.encode() for c in cifar.CLASSES], b"num_cases_per_batch": 10, b"num_vis": 3072}


def write_batches(root, n: int = 10):
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    for i, name in enumerate(cifar.TRAIN_BATCHES + (cifar.TEST_BATCH,)):
        (d / name).write_bytes(batch_bytes(n, i, labels=[(j + i) % 10 for j in range(n)]))
    (d / "batches.meta").write_bytes(py2_pickle(META))
    return d


@pytest.fixture
def small_batches(monkeypatch):
    monkeypatch.setattr(cifar, "BATCH_ROWS", 10)


def test_fake_batch_is_in_the_official_format():
    raw = batch_bytes(4, 0)
    # the official recipe (pickle.load with encoding="bytes") reads it, keys are bytes
    d = pickle.load(io.BytesIO(raw), encoding="bytes")
    assert set(d) == {b"batch_label", b"labels", b"data", b"filenames"}
    assert b"numpy.core.multiarray\n_reconstruct" in raw and b"_codecs" not in raw


def test_read_full_size_batch():
    x, y = read_cifar_batch(io.BytesIO(batch_bytes(10000, 1)), "data_batch_1")
    assert x.shape == (10000, 3, 32, 32) and x.dtype == np.uint8 and y.dtype == np.int64


def test_pixel_layout_is_rgb_planes():
    data = np.zeros((1, 3072), np.uint8)
    data[0, :1024] = 10   # red plane
    data[0, 1024:2048] = 20
    data[0, 2048:] = 30
    x, _ = read_cifar_batch(io.BytesIO(batch_bytes(1, 0, labels=[3], data=data)), "b", rows=None)
    assert x[0, :, 5, 7].tolist() == [10, 20, 30]


class Evil:
    def __reduce__(self):
        import os
        return (os.system, ("echo pwned",))


@pytest.mark.parametrize("payload", [
    pickle.dumps({b"data": Evil(), b"labels": []}, protocol=2),
    pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [0]}, protocol=2),  # _codecs.encode
    pickle.dumps(np.float64(1.0), protocol=2),  # numpy.core.multiarray.scalar: not needed, refused
])
def test_unpickler_refuses_every_other_global(payload):
    with pytest.raises(DataFileError, match=r"data_batch_9: refused: global '(posix|nt|os|_codecs|numpy)"):
        read_cifar_batch(io.BytesIO(payload), "data_batch_9", rows=None)


def test_unpickler_allows_exactly_the_numpy_globals():
    assert set(CifarUnpickler.ALLOWED) == {("numpy.core.multiarray", "_reconstruct"),
                                           ("numpy._core.multiarray", "_reconstruct"),
                                           ("numpy", "ndarray"), ("numpy", "dtype")}
    # a Python 3 / numpy 2 pickle (protocol 3: str keys, numpy._core names) loads too
    raw = pickle.dumps({"data": np.ones((2, 3072), np.uint8), "labels": [1, 2]}, protocol=3)
    x, y = read_cifar_batch(io.BytesIO(raw), "b", rows=None)
    assert x.shape == (2, 3, 32, 32) and y.tolist() == [1, 2]
    # protocol 5 rebuilds arrays with numpy._core.numeric._frombuffer: not on the list, refused
    raw5 = pickle.dumps({"data": np.ones((2, 3072), np.uint8), "labels": [1, 2]}, protocol=5)
    with pytest.raises(DataFileError, match="_frombuffer' is not allowed"):
        read_cifar_batch(io.BytesIO(raw5), "b", rows=None)


@pytest.mark.parametrize("obj, msg", [
    ({b"data": np.zeros((10, 3000), np.uint8), b"labels": [0] * 10}, r"'data' is uint8 \(10, 3000\)"),
    ({b"data": np.zeros((10, 3072), np.int32), b"labels": [0] * 10}, "'data' is int32"),
    ({b"data": np.zeros((10, 3072), np.uint8), b"labels": [0] * 9}, "10 images but 9 labels"),
    ({b"data": np.zeros((10, 3072), np.uint8), b"labels": [0] * 9 + [10]}, r"labels outside 0..9"),
    ({b"labels": [0]}, "no 'data' entry"),
    ([1, 2, 3], "expected a pickled dict"),
])
def test_bad_batch_contents(obj, msg):
    with pytest.raises(DataFileError, match="data_batch_3: " + msg):
        read_cifar_batch(io.BytesIO(py2_pickle(obj)), "data_batch_3", rows=None)


def test_batch_with_wrong_row_count_for_official():
    with pytest.raises(DataFileError, match="test_batch: 'data' has 10 rows, an official batch has 10000"):
        read_cifar_batch(io.BytesIO(batch_bytes(10, 0)), "test_batch")


def test_truncated_batch_names_file(tmp_path):
    raw = batch_bytes(10, 0)
    with pytest.raises(DataFileError, match="data_batch_1.*truncated or corrupt"):
        read_cifar_batch(io.BytesIO(raw[: len(raw) // 2]), "data_batch_1", rows=None)


def test_load_from_batch_folder(tmp_path, small_batches):
    write_batches(tmp_path / "cifar10")
    ds = load_dataset("cifar10", tmp_path, download=False)
    assert ds.train_images.shape == (50, 3, 32, 32) and ds.test_images.shape == (10, 3, 32, 32)
    assert ds.train_labels[:10].tolist() == list(range(10))  # batch order kept
    assert ds.classes == cifar.CLASSES
    p = ds.provenance
    assert p["lossy"] is False and p["layout"] == "batches" and len(p["files"]) == 7


def test_wrong_shape_batch_in_folder_names_it(tmp_path, small_batches):
    d = write_batches(tmp_path)
    (d / "data_batch_4").write_bytes(py2_pickle({b"data": np.zeros((10, 1024), np.uint8), b"labels": [0] * 10}))
    with pytest.raises(DataFileError, match=r"data_batch_4: 'data' is uint8 \(10, 1024\)"):
        load_dataset("cifar10", tmp_path, download=False)


def test_missing_batch_in_folder_is_a_data_file_error_naming_it(tmp_path, small_batches):
    d = write_batches(tmp_path)
    (d / "data_batch_3").unlink()
    with pytest.raises(DataFileError, match=r"data_batch_3: cannot read the batch .*not a complete"):
        cifar.read_cifar_python(d, rows=None)  # a bare FileNotFoundError, not the documented error


def test_load_from_python_archive_in_place(tmp_path, small_batches):
    d = write_batches(tmp_path / "src")
    arch = tmp_path / "cifar10" / "cifar-10-python.tar.gz"
    arch.parent.mkdir()
    with tarfile.open(arch, "w:gz") as tf:
        tf.add(d, arcname="cifar-10-batches-py")
    ds = load_dataset("cifar10", tmp_path, download=False)
    assert len(ds.train_labels) == 50 and ds.provenance["layout"] == "python-archive"
    assert list(ds.provenance["files"]) == ["cifar-10-python.tar.gz"]
    assert not (tmp_path / "cifar10" / "cifar-10-batches-py").exists()  # read in place


def test_truncated_python_archive(tmp_path, small_batches):
    d = write_batches(tmp_path / "src")
    arch = tmp_path / "cifar10" / "cifar-10-python.tar.gz"
    arch.parent.mkdir()
    with tarfile.open(arch, "w:gz") as tf:
        tf.add(d, arcname="cifar-10-batches-py")
    arch.write_bytes(arch.read_bytes()[:2000])
    with pytest.raises(DataFileError, match="cifar-10-python.tar.gz.*(truncated|corrupt)"):
        load_dataset("cifar10", tmp_path, download=False)


def _jpeg(rng, size=32) -> bytes:
    f = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(f, "JPEG", quality=75)
    return f.getvalue()


def write_jpeg_tree(root, per_class=(2, 1)):
    rng = np.random.default_rng(0)
    for split, n in zip(("train", "test"), per_class):
        for c in cifar.CLASSES:
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                (root / split / c / f"{i:04d}.jpg").write_bytes(_jpeg(rng))
    return root


def test_jpeg_tree_folder_is_lossy_and_warns_incomplete(tmp_path):
    write_jpeg_tree(tmp_path / "cifar10")
    with pytest.warns(UserWarning, match="not the complete CIFAR-10"):
        ds = load_dataset("cifar10", tmp_path, download=False)
    assert ds.train_images.shape == (20, 3, 32, 32) and ds.test_images.shape == (10, 3, 32, 32)
    assert ds.provenance["lossy"] is True and ds.provenance["layout"] == "jpeg-folder"
    assert ds.provenance["complete"] is False


def test_jpeg_archive_read_in_place_and_cached(tmp_path):
    tree = write_jpeg_tree(tmp_path / "tree")
    arch = tmp_path / "cifar10" / "cifar-10-jpeg.tar.gz"
    arch.parent.mkdir()
    with tarfile.open(arch, "w:gz") as tf:
        tf.add(tree / "train", arcname="train")
        tf.add(tree / "test", arcname="test")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = load_dataset("cifar10", tmp_path, download=False)
        b = load_dataset("cifar10", tmp_path, download=False)
    assert a.provenance["lossy"] is True and a.provenance["layout"] == "jpeg-archive"
    assert not a.provenance["from_cache"] and b.provenance["from_cache"]
    assert torch.equal(a.train_images, b.train_images) and a.mean == b.mean
    assert a.train_labels.tolist() == [i // 2 for i in range(20)]


def _bmp_archive(path, value_of):
    """A CIFAR image archive of one uncompressed 32x32 BMP per split and class (its size does not
    depend on the pixels), class k filled with ``value_of(k)``."""
    with tarfile.open(path, "w:gz", compresslevel=0) as tf:
        for split in ("train", "test"):
            for k, c in enumerate(cifar.CLASSES):
                f = io.BytesIO()
                Image.fromarray(np.full((32, 32, 3), value_of(k), np.uint8)).save(f, "BMP")
                info = tarfile.TarInfo(f"{split}/{c}/0.bmp")
                info.size = len(f.getvalue())
                tf.addfile(info, io.BytesIO(f.getvalue()))


def test_jpeg_archive_replaced_with_the_same_size_and_mtime_is_decoded_again(tmp_path):
    import os
    arch = tmp_path / "cifar10" / "cifar-10-jpeg.tar.gz"
    arch.parent.mkdir()
    _bmp_archive(arch, lambda k: 20 * k)
    st = arch.stat()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = load_dataset("cifar10", tmp_path, download=False)
        # airplane and automobile swapped, same size; cp -p (or tar -x) keeps the mtime
        _bmp_archive(arch, lambda k: {0: 20, 1: 0}.get(k, 20 * k))
        os.utime(arch, ns=(st.st_atime_ns, st.st_mtime_ns))
        assert arch.stat().st_size == st.st_size
        b = load_dataset("cifar10", tmp_path, download=False)
    assert int(a.train_images[0, 0, 0, 0]) == 0 and int(b.train_images[0, 0, 0, 0]) == 20
    assert not b.provenance["from_cache"] and a.provenance["files"] != b.provenance["files"]


def _tree_archive(tmp_path, top="", drop=(), extra=()):
    """cifar10/cifar-10-jpeg.tar.gz from write_jpeg_tree, under ``top``, without the ``drop``
    folders (``test/cat``), plus ``extra`` (name, bytes) members."""
    tree = write_jpeg_tree(tmp_path / "tree")
    arch = tmp_path / "cifar10" / "cifar-10-jpeg.tar.gz"
    arch.parent.mkdir()
    with tarfile.open(arch, "w:gz") as tf:
        for f in sorted(tree.rglob("*.jpg")):
            rel = f.relative_to(tree).as_posix()
            if not any(rel.startswith(d + "/") for d in drop):
                tf.add(f, arcname=top + rel)
        for name, data in extra:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return arch


@pytest.mark.parametrize("kw, what", [
    # tar czf ... cifar10/: loaded as 0 + 0 images, mean/std 0, the files called "not readable images"
    (dict(top="cifar10/"), r"no readable train image of any class; .* 30 member\(s\) are not, "
                           r"e.g. 'cifar10/test/airplane/0000.jpg': repack it"),
    (dict(drop=("test/cat",)), r"no readable test image of cat; .* it holds no other file"),
    (dict(drop=("test/dog",), extra=[("test/dog/0000.jpg", b"garbage")]),
     r"no readable test image of dog; .* 1 file\(s\) were skipped, e.g. 'test/dog/0000.jpg' \(no image format"),
])
def test_jpeg_archive_without_images_of_a_class_is_an_error(tmp_path, kw, what):
    _tree_archive(tmp_path, **kw)
    with pytest.raises(DataFileError, match="cifar-10-jpeg.tar.gz: " + what):
        load_dataset("cifar10", tmp_path, download=False)


@pytest.mark.filterwarnings("ignore:.*not the complete CIFAR-10")  # a toy copy, on purpose
def test_jpeg_archive_member_outside_the_layout_is_skipped_saying_so(tmp_path):
    _tree_archive(tmp_path, extra=[("README.txt", b"hi")])
    with pytest.warns(UserWarning, match=r"skipped 1 file\(s\): README.txt \(not SPLIT/CLASS/FILE, the layout "
                                         r"expected\)"):
        ds = load_dataset("cifar10", tmp_path, download=False)
    assert len(ds.train_labels) == 20


@pytest.mark.filterwarnings("ignore:.*not the complete CIFAR-10")  # a toy copy, on purpose
def test_jpeg_tree_image_not_32x32_is_skipped_and_reported(tmp_path):
    # it aborted the load asking for "a size (and a resize policy)", which cifar10 does not take
    root = write_jpeg_tree(tmp_path / "cifar10")
    (root / "test" / "cat" / "odd.jpg").write_bytes(_jpeg(np.random.default_rng(1), size=40))
    with pytest.warns(UserWarning, match=r"skipped 1 file\(s\): test/cat/odd.jpg \(size 40x40, expected 32x32\)"):
        ds = load_dataset("cifar10", tmp_path, download=False)
    assert ds.test_images.shape == (10, 3, 32, 32) and ds.provenance["skipped"]["count"] == 1


def test_batches_preferred_over_jpeg(tmp_path, small_batches):
    write_batches(tmp_path / "cifar10")
    write_jpeg_tree(tmp_path / "cifar10")
    assert load_dataset("cifar10", tmp_path, download=False).provenance["lossy"] is False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert load_dataset("cifar10", tmp_path, download=False, source="jpeg").provenance["lossy"] is True


def test_catsdogs_subset(tmp_path, small_batches):
    write_batches(tmp_path / "cifar10")
    full = load_dataset("cifar10", tmp_path, download=False)
    ds = load_dataset("cifar10-catsdogs", tmp_path, download=False)
    assert ds.classes == ["cat", "dog"]
    keep = (full.train_labels == 3) | (full.train_labels == 5)
    assert torch.equal(ds.train_images, full.train_images[keep])
    assert ds.train_labels.tolist() == (full.train_labels[keep] == 5).long().tolist()
    big = load_dataset("cifar10-catsdogs", tmp_path, download=False, size=64)
    assert big.train_images.shape[1:] == (3, 64, 64) and big.train_images.dtype == torch.uint8


def test_download_path_checks_md5_and_extracts_safely(tmp_path, small_batches, monkeypatch):
    """No network: ``fetch`` is replaced by a copy of a local archive; what is checked is that the
    loader asks for the official URL and md5, then extracts into the cache and loads from there."""
    d = write_batches(tmp_path / "src")
    local = tmp_path / "local.tar.gz"
    with tarfile.open(local, "w:gz") as tf:
        tf.add(d, arcname="cifar-10-batches-py")
    calls = []

    def fake_fetch(urls, dest, md5=None):
        calls.append((tuple(urls), md5))
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(local.read_bytes())
        return dest

    monkeypatch.setattr(cifar, "fetch", fake_fetch)
    monkeypatch.setenv("CNNLAB_CACHE", str(tmp_path / "cache"))  # keep the download out of other tests
    ds = load_dataset("cifar10", tmp_path / "empty", download=True)
    assert calls == [(cifar.URLS, "c58f30108f718f92721af3b95e74349a")]
    assert ds.provenance["folder"] == str(tmp_path / "cache" / "cifar10" / "cifar-10-batches-py")
    assert ds.provenance["layout"] == "batches" and len(ds.train_labels) == 50


def test_not_found_lists_layouts(tmp_path):
    with pytest.raises(FileNotFoundError, match="(?s)cifar-10-batches-py.*cifar-10-jpeg.tar.gz.*--data-dir"):
        load_dataset("cifar10", tmp_path, download=False)


# --- the real data -----------------------------------------------------------------------------

@pytest.mark.realdata
def test_real_cifar10_jpeg_copy():
    root = real_data("cifar10").parent
    ds = load_dataset("cifar10", root, download=False)
    assert ds.train_images.shape == (50000, 3, 32, 32) and ds.test_images.shape == (10000, 3, 32, 32)
    assert torch.bincount(ds.train_labels).tolist() == [5000] * 10
    assert torch.bincount(ds.test_labels).tolist() == [1000] * 10
    p = ds.provenance
    assert p["lossy"] is True and p["complete"] is True and p["skipped"]["count"] == 0
    # PROVENANCE.md: decoded train mean 0.4913/0.4821/0.4465, std 0.2452/0.2428/0.2606
    assert ds.mean == pytest.approx((0.4913, 0.4821, 0.4465), abs=1e-4)
    assert ds.std == pytest.approx((0.2452, 0.2428, 0.2606), abs=1e-4)
    assert p["files"] == {"cifar-10-jpeg.tar.gz":
                          "69e76d994521ced354a7c270fe1a8805c358d8d33c776bbcd23e1314dc4a2234"}


@pytest.mark.realdata
def test_real_cifar10_catsdogs():
    ds = load_dataset("cifar10-catsdogs", real_data("cifar10").parent, download=False)
    assert torch.bincount(ds.train_labels).tolist() == [5000, 5000]
    assert torch.bincount(ds.test_labels).tolist() == [1000, 1000]


@pytest.mark.realdata
@pytest.mark.slow
def test_real_pixels_roundtrip_through_official_batch_format(tmp_path):
    """Write the real (decoded) images as full-size official-format batches; the pickle path must
    give back exactly the same tensors."""
    ds = load_dataset("cifar10", real_data("cifar10").parent, download=False)
    d = tmp_path / "cifar10" / "cifar-10-batches-py"
    d.mkdir(parents=True)
    x = ds.train_images.reshape(50000, 3072).numpy()
    for i, name in enumerate(cifar.TRAIN_BATCHES):
        s = slice(i * 10000, (i + 1) * 10000)
        (d / name).write_bytes(batch_bytes(10000, 0, labels=ds.train_labels[s].tolist(), data=x[s]))
    (d / "test_batch").write_bytes(batch_bytes(10000, 0, labels=ds.test_labels.tolist(),
                                               data=ds.test_images.reshape(10000, 3072).numpy()))
    (d / "batches.meta").write_bytes(py2_pickle(META))
    xtr, ytr, xte, yte, classes, files = read_cifar_python(d)
    assert np.array_equal(xtr, ds.train_images.numpy()) and np.array_equal(yte, ds.test_labels.numpy())
    assert classes == cifar.CLASSES


def test_a_corrupt_dtype_state_is_a_named_error_not_a_crash(tmp_path):
    # one byte changed in the dtype's pickled state: numpy's own dtype.__setstate__ crashed the
    # process (a segfault); the recorded state is checked and the array built from its bytes.
    # In a child process, so that a crash fails this test rather than the whole run.
    import subprocess
    import sys
    raw = batch_bytes(10, 0)
    bad = raw.replace(b"|q\x11NNNJ", b"|q\x11NqNJ")
    assert bad != raw
    (tmp_path / "data_batch_1").write_bytes(bad)
    code = ("import sys; from cnnlab.data.cifar import read_cifar_batch\n"
            "from cnnlab.data.idx import DataFileError\n"
            "try:\n    x, y = read_cifar_batch(open(sys.argv[1], 'rb'), 'data_batch_1', rows=None)\n"
            "    print('READ', int(x.sum()), y.tolist())\n"
            "except DataFileError as e:\n    print('ERROR', e)\n")
    p = subprocess.run([sys.executable, "-c", code, str(tmp_path / "data_batch_1")], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, (p.returncode, p.stderr[-2000:])
    # the changed byte is in a part of the dtype's state that is not used: the batch reads as written
    x, y = read_cifar_batch(io.BytesIO(raw), "data_batch_1", rows=None)
    assert p.stdout.strip() == f"READ {int(x.sum())} {y.tolist()}", p.stdout


@pytest.mark.parametrize("data, msg", [
    (np.zeros((2, 3072), np.float32), r"dtype 'f4'.*only integer arrays"),
    (np.zeros((2, 3072), object), "dtype 'O8'"),
])
def test_arrays_of_other_types_are_refused_before_numpy_builds_them(data, msg):
    raw = pickle.dumps({"data": data, "labels": [1, 2]}, protocol=3)
    with pytest.raises(DataFileError, match="data_batch_2: a numpy array in the pickle is malformed .*" + msg):
        read_cifar_batch(io.BytesIO(raw), "data_batch_2", rows=None)


def test_a_truncated_array_payload_names_the_byte_count():
    raw = batch_bytes(4, 0)
    # the raw image bytes are one BINSTRING of 4 * 3072 bytes: say it holds one byte fewer
    head = pickle.BINSTRING + struct.pack("<i", 4 * 3072)
    at = raw.index(head)
    bad = raw[:at] + pickle.BINSTRING + struct.pack("<i", 4 * 3072 - 1) + raw[at + 5:at + 5 + 4 * 3072 - 1] \
        + raw[at + 5 + 4 * 3072:]
    with pytest.raises(DataFileError, match=r"data_batch_4: a numpy array in the pickle is malformed "
                                            r"\(shape \(4, 3072\) of uint8 needs 12288 bytes, the file holds 12287\)"):
        read_cifar_batch(io.BytesIO(bad), "data_batch_4", rows=None)
