"""CIFAR-10 (Krizhevsky 2009, "Learning Multiple Layers of Features from Tiny Images", tech. report,
University of Toronto) and its cats-vs-dogs subset.

Two layouts are read, lossless first:

1. the official python version: ``cifar-10-batches-py/`` (``data_batch_1`` .. ``data_batch_5``,
   ``test_batch``, ``batches.meta``) or the archive ``cifar-10-python.tar.gz`` holding it (md5
   c58f30108f718f92721af3b95e74349a; read in place, nothing extracted). Batch order is kept:
   train = batches 1..5 concatenated, test = ``test_batch``.
2. an image-folder tree ``train/CLASS/*.jpg|png`` + ``test/CLASS/*`` (extracted, or the archive
   ``cifar-10-jpeg.tar.gz`` read in place), e.g. the JPEG copy in ``../shared/data/cifar10``. JPEG
   is lossy: the provenance says ``lossy: True`` and which source was used, so results say so.
   Decoded tensors are cached (see :mod:`cnnlab.data.images`); images sorted by class then name.

SECURITY: the batches are Python pickles, and unpickling runs whatever callable the file names.
They are read with :class:`CifarUnpickler`, which refuses every global except the three that
rebuild a numpy array; every field is then checked (``data`` uint8 ``(10000, 3072)``, as many
labels as rows, labels 0-9) and an error names the file.
"""
from __future__ import annotations

import io
import math
import os
import pickle
import re
import tarfile
import zlib
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Sequence

import numpy as np
import torch

from .._io import DiskFullError
from .core import (ImageDataset, cache_dir, candidate_dirs, download_failed, not_found, register_dataset,
                   sha256_file)
from .download import ChecksumError, safe_extract
from .download import download as fetch
from .idx import DataFileError
from .images import cached_decode, decode_files, load_image_folder, report_skipped

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
ARCHIVE = "cifar-10-python.tar.gz"
ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"
URLS = ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",)
BATCH_DIR = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
META = "batches.meta"
BATCH_FILES = TRAIN_BATCHES + (TEST_BATCH, META)
BATCH_ROWS = 10000  # images per official batch
JPEG_ARCHIVE = "cifar-10-jpeg.tar.gz"
PER_CLASS = {"train": 5000, "test": 1000}
LAYOUT_MISMATCH = "not SPLIT/CLASS/FILE, the layout expected"


# ---------------------------------------------------------------------------------------------
# the pickle batches


class _DtypeArgs:
    """What a pickle says of a numpy dtype (``numpy.dtype(name, align, copy)`` and its state),
    recorded only: numpy's own ``dtype.__setstate__`` trusts its input, and a corrupt state crashes
    the process (a segfault), so the dtype is built from the name after the pickle is read."""

    def __init__(self, name=None, *args):
        self.name, self.state = name, None

    def __setstate__(self, state):
        self.state = state


class _ArrayArgs:
    """What a pickle says of a numpy array (its ``__setstate__`` tuple: version, shape, dtype,
    Fortran order, raw bytes), recorded only; :func:`_array` checks it and builds the array."""

    def __init__(self, *args):
        self.state = None

    def __setstate__(self, state):
        self.state = state


def _reconstruct(cls, shape, typecode) -> _ArrayArgs:  # numpy.core.multiarray._reconstruct's part
    return _ArrayArgs()


def _numpy_globals() -> dict[tuple[str, str], object]:
    # Python 2 and numpy 1 pickles name numpy.core.multiarray; numpy 2 writes numpy._core.multiarray.
    # Each maps to a recorder above, never to numpy's own callables.
    return {("numpy.core.multiarray", "_reconstruct"): _reconstruct,
            ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
            ("numpy", "ndarray"): _ArrayArgs,
            ("numpy", "dtype"): _DtypeArgs}


def _array(rec: _ArrayArgs, where: str) -> np.ndarray:
    """The numpy array a pickle described, built with ``np.frombuffer`` once its dtype (an integer
    type), shape and byte count are checked; DataFileError naming ``where`` otherwise."""
    try:
        _version, shape, dt, fortran, raw = rec.state
        name = dt.name.decode("ascii") if isinstance(dt.name, bytes) else dt.name
        order = dt.state[1] if isinstance(dt.state, tuple) and len(dt.state) > 1 else "|"
        order = order.decode("ascii") if isinstance(order, bytes) else order
        # only a plain integer type's name ever reaches numpy: no structured or other dtype
        if not (isinstance(name, str) and re.fullmatch(r"[iu][1248]", name)) or order not in ("<", ">", "|", "="):
            raise ValueError(f"dtype {name!r} (byte order {order!r}): only integer arrays belong in a batch")
        dtype = np.dtype(name)
        dtype = dtype.newbyteorder(order) if order in ("<", ">") else dtype
        shape = tuple(int(n) for n in shape)
        if not isinstance(raw, (bytes, bytearray)) or any(n < 0 for n in shape):
            raise ValueError(f"shape {shape} with {type(raw).__name__} data")
        need = math.prod(shape) * dtype.itemsize  # Python integers: no int64 wrap-around
        if len(raw) != need:
            raise ValueError(f"shape {shape} of {dtype} needs {need} bytes, the file holds {len(raw)}")
        return np.frombuffer(bytes(raw), dtype=dtype).reshape(shape, order="F" if fortran else "C")
    except (TypeError, ValueError, AttributeError, UnicodeDecodeError, OverflowError) as e:
        raise DataFileError(f"{where}: a numpy array in the pickle is malformed ({e}); the file is "
                            "corrupt or not an official batch") from e


class RefusedGlobal(pickle.UnpicklingError):
    """A pickle named a global outside :attr:`CifarUnpickler.ALLOWED`."""


class CifarUnpickler(pickle.Unpickler):
    """An unpickler that loads only plain data and descriptions of numpy arrays (built, once
    checked, by the batch readers).

    ``find_class`` (called for every global a pickle names, i.e. every callable it could invoke)
    allows exactly ``numpy.core.multiarray._reconstruct`` (or numpy 2's ``numpy._core`` spelling),
    ``numpy.ndarray`` and ``numpy.dtype`` -- what an array needs -- and raises
    ``pickle.UnpicklingError`` for anything else (``os.system``, ``builtins.eval``, even
    ``_codecs.encode``). Even those three are not numpy's: they map to recorders, and the arrays
    are built afterwards from checked bytes (numpy's ``__setstate__`` would trust a corrupt file).
    Dicts, lists, ints, bytes and strings need no globals.
    Python 2 strings are read as bytes (``encoding="bytes"``), as the official CIFAR recipe does.
    """

    ALLOWED = _numpy_globals()

    def __init__(self, file: BinaryIO):
        super().__init__(file, encoding="bytes")

    def find_class(self, module: str, name: str):
        """The allowed global ``module.name``.

        Raises:
            RefusedGlobal: (an ``UnpicklingError``) any global not in :attr:`ALLOWED`.
        """
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise RefusedGlobal(
                f"global '{module}.{name}' is not allowed in a CIFAR batch (only numpy array "
                "reconstruction is); the file is not an official batch and may be malicious") from None

    def persistent_load(self, pid):
        """Refuse every persistent id: official batches hold none.

        Raises:
            RefusedGlobal: always.
        """
        raise RefusedGlobal("persistent ids are not allowed in a CIFAR batch")


def _unpickle(f: BinaryIO, where: str) -> dict:
    try:
        obj = CifarUnpickler(f).load()
    except RefusedGlobal as e:
        raise DataFileError(f"{where}: refused: {e}") from e
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError, OSError,
            zlib.error, MemoryError, SystemError, RuntimeError, RecursionError) as e:
        raise DataFileError(f"{where}: not a readable CIFAR batch pickle ({type(e).__name__}: {e}); "
                            "the file is truncated or corrupt") from e
    if not isinstance(obj, dict):
        raise DataFileError(f"{where}: expected a pickled dict, got {type(obj).__name__}")
    # keys are bytes (Python 2 str read with encoding="bytes"); accept str keys from Python 3 writers
    return {(k.decode("latin1") if isinstance(k, bytes) else k): _array(v, where) if isinstance(v, _ArrayArgs) else v
            for k, v in obj.items()}


def read_cifar_batch(f: BinaryIO, where: str, rows: int | None = BATCH_ROWS,
                     num_classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR batch pickle safely and check it.

    Args:
        f: the open file (binary).
        where: the file's name for error messages.
        rows: the number of images the batch must hold (10,000 in the official files); None to
            accept any.

    Returns:
        ``(images, labels)``: uint8 ``(N, 3, 32, 32)`` (the batch rows are 1024 red, then green,
        then blue values, row-major) and int64 ``(N,)``.

    Raises:
        DataFileError: a refused global, a truncated pickle, a missing ``data``/``labels`` entry,
            ``data`` not uint8 ``(rows, 3072)``, a label count that differs from the image count,
            or a label outside ``0..num_classes-1``. The message names the file.
    """
    d = _unpickle(f, where)
    for key in ("data", "labels"):
        if key not in d:
            raise DataFileError(f"{where}: no {key!r} entry (keys: {sorted(d)}); not a CIFAR-10 batch")
    x, y = d["data"], d["labels"]
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3072:
        desc = f"{x.dtype} {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
        raise DataFileError(f"{where}: 'data' is {desc}, expected uint8 (N, 3072) = N images of "
                            "3x32x32")
    if rows is not None and len(x) != rows:
        raise DataFileError(f"{where}: 'data' has {len(x)} rows, an official batch has {rows}")
    try:
        y = np.asarray(y)
    except (ValueError, TypeError) as e:
        raise DataFileError(f"{where}: 'labels' is not a list of integers ({e})") from e
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise DataFileError(f"{where}: 'labels' is {y.dtype} {y.shape}, expected a list of integers")
    if len(y) != len(x):
        raise DataFileError(f"{where}: {len(x)} images but {len(y)} labels")
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise DataFileError(f"{where}: labels outside 0..{num_classes - 1} (min {y.min()}, max {y.max()})")
    return x.reshape(-1, 3, 32, 32).copy(), y.astype(np.int64)


def read_cifar_meta(f: BinaryIO, where: str) -> list[str]:
    """The class names in ``batches.meta`` (``label_names``).

    Raises:
        DataFileError: unreadable, or not 10 names.
    """
    d = _unpickle(f, where)
    names = d.get("label_names")
    if not isinstance(names, list) or len(names) != 10 or not all(isinstance(n, (bytes, str)) for n in names):
        raise DataFileError(f"{where}: 'label_names' should be a list of 10 names, got {names!r:.200}")
    return [n.decode("ascii", "replace") if isinstance(n, bytes) else n for n in names]


class _BatchSource:
    """Opens the batch files from the folder or straight from the archive (no extraction)."""

    def __init__(self, path: Path):
        self.path = path
        self.tar = None
        if path.is_file():
            try:
                self.tar = tarfile.open(path, "r:gz")
            except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
                raise DataFileError(f"{path}: not a readable .tar.gz ({e}); the file is truncated "
                                    "or corrupt: replace it with a good copy (in cnnlab's cache: "
                                    "delete it, and it is downloaded again)") from e

    def open(self, name: str):
        if self.tar is None:
            try:
                return open(self.path / name, "rb"), str(self.path / name)
            except OSError as e:
                raise DataFileError(f"{self.path / name}: cannot read the batch ({e.strerror or e}); "
                                    "not a complete cifar-10-batches-py folder") from e
        member = f"{BATCH_DIR}/{name}"
        where = f"{self.path}::{member}"
        try:
            f = self.tar.extractfile(member)
        except KeyError:
            raise DataFileError(f"{self.path}: no member {member}; not the CIFAR-10 python archive") from None
        except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
            raise DataFileError(f"{where}: cannot read ({e}); the archive is truncated or corrupt") from e
        if f is None:
            raise DataFileError(f"{where}: not a regular file")
        try:
            return io.BytesIO(f.read()), where
        except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
            raise DataFileError(f"{where}: cannot read ({e}); the archive is truncated or corrupt") from e

    def close(self):
        if self.tar is not None:
            self.tar.close()


def read_cifar_python(path: str | os.PathLike, rows: int | None = BATCH_ROWS):
    """Read the official python version of CIFAR-10.

    Args:
        path: the ``cifar-10-batches-py`` folder or the ``cifar-10-python.tar.gz`` archive.
        rows: images per batch (10,000); None to accept any.

    Returns:
        ``(x_train, y_train, x_test, y_test, classes, files)``: uint8 ``(50000, 3, 32, 32)``, int64
        ``(50000,)``, uint8 ``(10000, 3, 32, 32)``, int64 ``(10000,)``, the 10 class names, and
        ``{file: sha256}`` of what was read.

    Raises:
        DataFileError: as :func:`read_cifar_batch`, a missing batch, or a corrupt archive.
    """
    path = Path(path)
    src = _BatchSource(path)
    try:
        xs, ys = [], []
        for name in BATCH_FILES:
            f, where = src.open(name)
            with f:
                if name == META:
                    classes = read_cifar_meta(f, where)
                else:
                    x, y = read_cifar_batch(f, where, rows)
                    xs.append(x)
                    ys.append(y)
    finally:
        src.close()
    files = ({path.name: sha256_file(path)} if path.is_file()
             else {f"{BATCH_DIR}/{n}": sha256_file(path / n) for n in BATCH_FILES})
    return (np.concatenate(xs[:5]), np.concatenate(ys[:5]), xs[5], ys[5], classes, files)


# ---------------------------------------------------------------------------------------------
# the JPEG archive


def read_image_tar(archive: Path, splits: Sequence[str], classes: Sequence[str]):
    """Read ``SPLIT/CLASS/name`` image members of a tar.gz into memory, without extracting.

    Returns:
        ``{split: [(member name, label, bytes)]}``, sorted by name, and the names skipped
        (``[(name, reason)]``: members outside ``SPLIT/CLASS/`` (reason :data:`LAYOUT_MISMATCH`),
        non-files).

    Raises:
        DataFileError: a corrupt or truncated archive, or a member with an absolute or ``..`` path.
    """
    out: dict[str, list] = {s: [] for s in splits}
    skipped = []
    index = {c: i for i, c in enumerate(classes)}
    try:
        with tarfile.open(archive, "r|gz") as tf:  # streaming: one pass over the gzip stream
            for m in tf:
                p = PurePosixPath(m.name)
                if p.is_absolute() or ".." in p.parts:
                    raise DataFileError(f"{archive}: member {m.name!r} has an unsafe path; refusing it")
                if m.isdir():
                    continue
                parts = p.parts[1:] if p.parts and p.parts[0] == "." else p.parts
                if len(parts) != 3 or parts[0] not in out or parts[1] not in index:
                    skipped.append((m.name, LAYOUT_MISMATCH))
                    continue
                if not m.isfile():
                    skipped.append((m.name, "not a regular file"))
                    continue
                data = tf.extractfile(m).read()
                out[parts[0]].append(("/".join(parts), index[parts[1]], data))
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise DataFileError(f"{archive}: cannot read the archive ({type(e).__name__}: {e}); it is "
                            "truncated or corrupt") from e
    for v in out.values():
        v.sort(key=lambda t: (t[1], t[0]))
    return out, skipped


def _load_jpeg_archive(archive: Path, workers: int | None) -> tuple[dict, str]:
    """Decode (or read from the cache) both splits of a CIFAR image archive; returns them and
    the archive's sha256, which keys the cache (a copy that keeps size and mtime, ``cp -p``,
    is still another archive)."""
    digest = sha256_file(archive)
    settings = {"size": None, "color": "rgb", "resize": "none", "expect_size": [32, 32]}
    result = {}
    members = None
    for split in ("train", "test"):
        fingerprint = [digest, split]

        def decode(split=split):
            nonlocal members
            if members is None:
                members = read_image_tar(archive, ("train", "test"), CLASSES)
            items = [(n, lab, (lambda b=b: b)) for n, lab, b in members[0][split]]
            dec = decode_files(items, None, "rgb", "none", workers, expect_size=(32, 32))
            if split == "train":  # members outside SPLIT/CLASS/, recorded once, in the train entry
                dec.skipped += members[1]
            return dec

        dec, meta, path, hit = cached_decode(f"cifar10-jpeg-{split}", fingerprint, settings, decode,
                                             stats=split == "train")
        result[split] = (dec, meta, path, hit)
    return result, digest


# ---------------------------------------------------------------------------------------------
# the dataset


def _find_source(data_dir, source: str = "auto") -> tuple[str, Path] | None:
    """The best CIFAR-10 source found, as ``(kind, path)``: the lossless python batches (folder,
    then archive) in any candidate folder before an image tree (folder, then archive)."""
    dirs = candidate_dirs("cifar10", data_dir)
    if source in ("auto", "pickle"):
        for d in dirs:
            for b in (d / BATCH_DIR, d):
                if all((b / n).is_file() for n in BATCH_FILES):
                    return "batches", b
            if (d / ARCHIVE).is_file():
                return "python-archive", d / ARCHIVE
    if source in ("auto", "jpeg"):
        for d in dirs:
            if (d / "train" / "airplane").is_dir() and (d / "test" / "airplane").is_dir():
                return "jpeg-folder", d
            if (d / JPEG_ARCHIVE).is_file():
                return "jpeg-archive", d / JPEG_ARCHIVE
    return None


def load_cifar10(data_dir=None, download: bool = True, source: str = "auto",
                 workers: int | None = None) -> ImageDataset:
    """CIFAR-10: uint8 (N, 3, 32, 32), 50,000 train / 10,000 test, 10 classes.

    Args:
        data_dir: a folder holding the files or a ``cifar10/`` sub-folder with them.
        download: when nothing is found, fetch the official archive (md5-checked) into
            ``cache_dir()/cifar10`` and extract it with the safe filter.
        source: ``"auto"`` (the official batches first, then an image tree), ``"pickle"`` or
            ``"jpeg"`` to insist on one layout.

    Raises:
        ValueError: ``source`` not ``"auto"``, ``"pickle"`` or ``"jpeg"``.
        FileNotFoundError: no source found and downloading is off (or ``source="jpeg"``, whose
            archive is never downloaded); lists where it looked.
        DataFileError: a corrupt, refused or inconsistent file, naming it; an image archive with
            no readable image of a class in a split (in another layout, say).
        OSError: the archive could not be downloaded; lists where the files were looked for, then
            each URL and its error.
        ChecksumError: no URL worked, and at least one delivered an archive with the wrong md5.
        DiskFullError: the disk filled up while downloading.
    """
    if source not in ("auto", "pickle", "jpeg"):
        raise ValueError(f"source must be 'auto', 'pickle' or 'jpeg', got {source!r}")
    found = _find_source(data_dir, source)
    if found is None:
        names = ([BATCH_DIR + "/", ARCHIVE] if source != "jpeg" else []) + \
                (["train/ + test/", JPEG_ARCHIVE] if source != "pickle" else [])
        if download and source != "jpeg":
            root = cache_dir() / "cifar10"
            if not (root / ARCHIVE).exists():
                try:
                    fetch(URLS, root / ARCHIVE, md5=ARCHIVE_MD5)
                except DiskFullError:
                    raise
                except (OSError, ChecksumError) as e:
                    raise download_failed("cifar10", "cifar10", names, data_dir, e) from None
            safe_extract(root / ARCHIVE, root)
            found = ("batches", root / BATCH_DIR)
        else:
            raise not_found("cifar10", "cifar10", names, data_dir,
                            " (none of these layouts; downloading is off)" if not download else "")
    kind, path = found
    if kind in ("batches", "python-archive"):
        xtr, ytr, xte, yte, classes, files = read_cifar_python(path, rows=BATCH_ROWS)
        if classes != CLASSES:
            raise DataFileError(f"{path}: batches.meta names {classes}, expected CIFAR-10's {CLASSES}")
        return ImageDataset(
            name="cifar10", train_images=torch.from_numpy(xtr), train_labels=torch.from_numpy(ytr),
            test_images=torch.from_numpy(xte), test_labels=torch.from_numpy(yte), classes=list(CLASSES),
            provenance={"source": "official CIFAR-10 python batches (Krizhevsky 2009)",
                        "layout": kind, "folder": str(path), "files": files, "lossy": False,
                        "md5": {ARCHIVE: ARCHIVE_MD5}})
    if kind == "jpeg-folder":
        ds = load_image_folder(path, None, "rgb", "none", test_dir="test", name="cifar10", lossy=True,
                               workers=workers, classes=CLASSES, expect_size=(32, 32),
                               source="CIFAR-10 image tree train/CLASS, test/CLASS (LOSSY if JPEG: "
                                      "not the official pixels)")
        ds.provenance["layout"] = kind
        _check_counts(ds)
        return ds
    res, digest = _load_jpeg_archive(path, workers)
    (dtr, mtr, ptr, htr), (dte, _, pte, hte) = res["train"], res["test"]
    skipped = dtr.skipped + dte.skipped
    _check_classes(path, {"train": dtr.labels, "test": dte.labels}, skipped)
    ds = ImageDataset(
        name="cifar10", train_images=dtr.images, train_labels=dtr.labels, test_images=dte.images,
        test_labels=dte.labels, classes=list(CLASSES), mean=tuple(mtr["mean"]), std=tuple(mtr["std"]),
        provenance={"source": f"{JPEG_ARCHIVE}: CIFAR-10 re-encoded as JPEG, LOSSY (not the official "
                              "pixels; compare results only with runs on the same copy)",
                    "layout": kind, "folder": str(path.parent), "files": {path.name: digest},
                    "lossy": True, "cache": [str(ptr), str(pte)], "from_cache": htr and hte,
                    "order": "sorted by class, then file name (the official batch order is not "
                             "recoverable from an image tree)"})
    ds.provenance["skipped"] = report_skipped(str(path), skipped)
    _check_counts(ds)
    return ds


def _check_classes(archive: Path, labels: dict[str, torch.Tensor], skipped) -> None:
    """DataFileError naming ``archive`` when a split has no image of some class: the archive is in
    another layout (say with a top folder, ``cifar10/train/airplane/0.jpg``), or incomplete."""
    for split, y in labels.items():
        missing = [c for k, c in enumerate(CLASSES) if not bool((y == k).any())]
        if not missing:
            continue
        which = "any class" if len(missing) == len(CLASSES) else ", ".join(missing)
        outside = [n for n, reason in skipped if reason == LAYOUT_MISMATCH]
        if outside:
            found = (f"{len(outside)} member(s) are not, e.g. {outside[0]!r}: repack it with train/ and test/ "
                     f"at its top (tar czf {JPEG_ARCHIVE} -C FOLDER train test)")
        elif skipped:
            found = f"{len(skipped)} file(s) were skipped, e.g. {skipped[0][0]!r} ({skipped[0][1]})"
        else:
            found = "it holds no other file"
        raise DataFileError(f"{archive}: no readable {split} image of {which}; a CIFAR image archive holds "
                            f"SPLIT/CLASS/FILE members (train/airplane/0001.jpg, test/truck/0001.jpg); {found}")


def _check_counts(ds: ImageDataset) -> None:
    """Warn (and record) when an image tree does not hold the complete official split."""
    counts = {s: torch.bincount(getattr(ds, f"{s}_labels"), minlength=10).tolist() for s in PER_CLASS}
    complete = all(c == PER_CLASS[s] for s, cs in counts.items() for c in cs)
    ds.provenance["complete"] = complete
    if not complete:
        import warnings

        from .images import DataSkipWarning
        warnings.warn(f"cifar10 from {ds.provenance.get('folder')}: per-class counts {counts} differ "
                      f"from the official {PER_CLASS}; this is not the complete CIFAR-10",
                      DataSkipWarning, stacklevel=3)


@register_dataset("cifar10", description="CIFAR-10, 32x32 RGB, 10 classes, 50,000/10,000 (official "
                                          "python batches, or an image tree such as the lossy JPEG copy)")
def cifar10(data_dir=None, download: bool = True, source: str = "auto",
            workers: int | None = None) -> ImageDataset:
    """CIFAR-10: uint8 (N, 3, 32, 32), labels 0-9 (airplane .. truck); see :func:`load_cifar10`."""
    return load_cifar10(data_dir, download, source, workers)


CATSDOGS = (3, 5)  # CIFAR-10's cat and dog labels


@register_dataset("cifar10-catsdogs", folder="cifar10",
                  description="CIFAR-10 cats (0) and dogs (1) only, 10,000/2,000, 32x32 RGB (seed 001 §8)")
def cifar10_catsdogs(data_dir=None, download: bool = True, source: str = "auto",
                     size: int | None = None, workers: int | None = None) -> ImageDataset:
    """The binary cats-vs-dogs subset of CIFAR-10 used by seed 001 §8: uint8 (N, 3, 32, 32),
    CIFAR's cat (3) relabelled 0 and dog (5) relabelled 1; 5,000 + 5,000 train, 1,000 + 1,000 test.

    Args:
        size: resize to ``size x size`` (bilinear) when loading, as the seed's 150x150 input; the
            default keeps 32x32 and leaves resizing to the batch pipeline (150x150 RGB uint8 for
            10,000 images is 675 MB).
    """
    full = load_cifar10(data_dir, download, source, workers)

    def pick(x, y):
        keep = (y == CATSDOGS[0]) | (y == CATSDOGS[1])
        x, y = x[keep], (y[keep] == CATSDOGS[1]).to(torch.int64)
        if size is not None:
            # in chunks: float32 150x150 copies of all 10,000 images would need 2.7 GB at once
            x = torch.cat([torch.nn.functional.interpolate(
                c.float(), size=(size, size), mode="bilinear", align_corners=False,
                antialias=True).round_().clamp_(0, 255).to(torch.uint8) for c in x.split(500)])
        return x, y

    xtr, ytr = pick(full.train_images, full.train_labels)
    xte, yte = pick(full.test_images, full.test_labels)
    prov = dict(full.provenance)
    prov["subset"] = (f"CIFAR-10 classes cat ({CATSDOGS[0]}) -> 0 and dog ({CATSDOGS[1]}) -> 1"
                      + (f"; resized to {size}x{size} (bilinear)" if size else ""))
    return ImageDataset(name="cifar10-catsdogs", train_images=xtr, train_labels=ytr, test_images=xte,
                        test_labels=yte, classes=["cat", "dog"], provenance=prov)


@register_dataset("cifar10-no-catsdogs", folder="cifar10",
                  description="CIFAR-10 without cats and dogs: the other 8 classes, 40,000/8,000, 32x32 "
                              "RGB (a source task for transfer learning to cats vs dogs)")
def cifar10_no_catsdogs(data_dir=None, download: bool = True, source: str = "auto",
                        workers: int | None = None) -> ImageDataset:
    """CIFAR-10's eight classes other than cat and dog: uint8 (N, 3, 32, 32), labels 0-7 in
    CIFAR's order (airplane, automobile, bird, deer, frog, horse, ship, truck); 40,000 train,
    8,000 test. cnnlab pretrains backbones on it (recipe ``vgg16-cifar8-pretrain``) so that
    transfer to cats vs dogs starts from features that have never seen a cat or a dog."""
    full = load_cifar10(data_dir, download, source, workers)
    others = [c for c in range(10) if c not in CATSDOGS]
    new_label = torch.full((10,), -1, dtype=torch.int64)
    new_label[others] = torch.arange(len(others))

    def pick(x, y):
        keep = new_label[y] >= 0
        return x[keep], new_label[y[keep]]

    xtr, ytr = pick(full.train_images, full.train_labels)
    xte, yte = pick(full.test_images, full.test_labels)
    prov = dict(full.provenance)
    prov["subset"] = "CIFAR-10 without cat (3) and dog (5); the other 8 classes relabelled 0-7 in order"
    return ImageDataset(name="cifar10-no-catsdogs", train_images=xtr, train_labels=ytr, test_images=xte,
                        test_labels=yte, classes=[CLASSES[c] for c in others], provenance=prov)


__all__ = ["CLASSES", "ARCHIVE_MD5", "CifarUnpickler", "cifar10", "cifar10_catsdogs",
           "cifar10_no_catsdogs", "load_cifar10",
           "read_cifar_batch", "read_cifar_meta", "read_cifar_python", "read_image_tar"]
