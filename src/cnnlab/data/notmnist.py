"""notMNIST small (Yaroslav Bulatov 2011, "notMNIST dataset", http://yaroslavvb.blogspot.com/2011/09/
notmnist-dataset.html): the letters A-J rendered in many fonts, 28x28 grayscale, 18,724 images.

Three layouts are read, all giving the same dataset:

1. the IDX copy (``notMNIST_small-images-idx3-ubyte.gz`` + ``-labels-idx1-ubyte.gz``, label A=0 ..
   J=9), checked against ``notMNIST_small-index.csv`` when present;
2. ``notMNIST_small.mat``, the file seed 000 downloads (variables ``images`` (28, 28, N) and
   ``labels`` (N,)); needs scipy (``pip install scipy``, or the ``mat`` extra);
3. the original PNGs: letter folders ``A/`` .. ``J/`` (extracted, directly or under
   ``notMNIST_small/``) or the archive ``notMNIST_small.tar.gz`` read in place. The original
   archive holds unreadable (zero-byte) files: they are skipped, counted, reported.

There is no official train/test split. cnnlab fixes one that does not depend on the layout or file
order. First the exact duplicates go: the set holds 18,232 distinct images among its 18,724 (one
all-white "I" 254 times), and a split of the copies put 70 test images' twins in the training
split. One copy of each distinct image is kept, and the 2 images drawn under two letters (8
copies) are dropped as ambiguous: 18,230 remain (the provenance's ``distinct`` counts them).
Then the images are put in a canonical order -- by label, then by the sha256 of their 784 pixel
bytes -- and ``stratified_split(labels, TEST_FRACTION=0.1, seed=SPLIT_SEED=0)`` holds out 10%
of each letter (1,824 in all; 16,406 remain for training), so no test image has a copy in
training.
"""
from __future__ import annotations

import csv
import hashlib
import tarfile
import zlib
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from .core import ImageDataset, candidate_dirs, not_found, register_dataset, sha256_file, stratified_split
from .idx import DataFileError, read_idx_pair
from .images import decode_files, manifest_sha256, report_skipped

LETTERS = list("ABCDEFGHIJ")
IDX_FILES = ("notMNIST_small-images-idx3-ubyte.gz", "notMNIST_small-labels-idx1-ubyte.gz")
INDEX_CSV = "notMNIST_small-index.csv"
MAT = "notMNIST_small.mat"
MAT_URL = "http://yaroslavvb.com/upload/notMNIST/notMNIST_small.mat"
TAR = "notMNIST_small.tar.gz"
TEST_FRACTION = 0.1
SPLIT_SEED = 0
TOTAL = 18724  # readable images in notMNIST_small (the two zero-byte files excluded)


def canonical_order(images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Indices that sort examples by label, then by the sha256 of the image's bytes.

    Any two copies of the same set of (image, label) pairs, in any order, come out identical.
    """
    keys = [hashlib.sha256(np.ascontiguousarray(im).tobytes()).hexdigest() for im in images]
    return np.array(sorted(range(len(labels)), key=lambda i: (int(labels[i]), keys[i])), dtype=np.int64)


def distinct(images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
    """One copy of each distinct image, without the images drawn under more than one label.

    Returns:
        ``(images, labels, counts)``: the kept examples (in first-seen order) and
        ``{"copies_removed": n, "ambiguous_dropped": m}`` (copies of kept images, and all copies of
        images with conflicting labels).
    """
    first, seen_labels, copies = {}, {}, {}
    for i, im in enumerate(images):
        key = np.ascontiguousarray(im).tobytes()
        first.setdefault(key, i)
        seen_labels.setdefault(key, set()).add(int(labels[i]))
        copies[key] = copies.get(key, 0) + 1
    keep = sorted(i for key, i in first.items() if len(seen_labels[key]) == 1)
    ambiguous = sum(n for key, n in copies.items() if len(seen_labels[key]) > 1)
    counts = {"copies_removed": len(images) - len(keep) - ambiguous, "ambiguous_dropped": ambiguous}
    return images[keep], labels[keep], counts


def split_canonical(images: np.ndarray, labels: np.ndarray):
    """The fixed notMNIST split: duplicates removed (:func:`distinct`), canonical order, then a 10%
    stratified test split (seed 0).

    Returns:
        ``(x_train, y_train, x_test, y_test, counts)``: numpy arrays in canonical order, and
        :func:`distinct`'s counts.
    """
    images, labels, counts = distinct(images, labels)
    order = canonical_order(images, labels)
    x, y = images[order], labels[order]
    itr, ite = stratified_split(torch.from_numpy(y), TEST_FRACTION, SPLIT_SEED)
    return x[itr.numpy()], y[itr.numpy()], x[ite.numpy()], y[ite.numpy()], counts


def split_sha256(*arrays: np.ndarray) -> str:
    """sha256 of the split's pixels and labels (``x_train, y_train, x_test, y_test``, as uint8 and
    little-endian int64 bytes): equal for every layout that holds the same images."""
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<")).tobytes())
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# readers: each returns uint8 (N, 28, 28), int64 (N,), {file: sha256}, skipped [(name, reason)]


def read_idx_copy(root: Path):
    """The IDX copy; labels checked against the index CSV when it is there.

    Raises:
        DataFileError: a truncated/corrupt IDX file (:func:`~cnnlab.data.idx.read_idx_pair`),
            images not 28x28, labels above 9, or an index CSV without an integer ``label`` column
            or whose labels differ from the IDX labels; the message names the file.
    """
    x, y = read_idx_pair(root / IDX_FILES[0], root / IDX_FILES[1])
    if x.shape[1:] != (28, 28):
        raise DataFileError(f"{root / IDX_FILES[0]}: images are {x.shape[1:]}, expected 28x28")
    y = y.astype(np.int64)
    if len(y) and y.max() > 9:
        raise DataFileError(f"{root / IDX_FILES[1]}: labels up to {y.max()}, expected 0..9 (A..J)")
    files = {f: sha256_file(root / f) for f in IDX_FILES}
    if (root / INDEX_CSV).is_file():
        with open(root / INDEX_CSV, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        try:
            csv_labels = np.array([int(r["label"]) for r in rows], dtype=np.int64)
        except (KeyError, ValueError, TypeError) as e:
            raise DataFileError(f"{root / INDEX_CSV}: no integer 'label' column ({e})") from e
        if len(csv_labels) != len(y) or not np.array_equal(csv_labels, y):
            raise DataFileError(f"{root / INDEX_CSV}: its {len(csv_labels)} labels do not match the "
                                f"{len(y)} of {IDX_FILES[1]}; the files do not belong together")
        files[INDEX_CSV] = sha256_file(root / INDEX_CSV)
    return np.ascontiguousarray(x), y, files, []


def read_mat(path: Path):
    """``notMNIST_small.mat``: ``images`` (28, 28, N) 0-255 and ``labels`` (N,) 0-9.

    Raises:
        ImportError: scipy is not installed (the message says how to get it).
        DataFileError: unreadable, or the variables are missing or have the wrong shape/values.
    """
    try:
        from scipy.io import loadmat
    except ImportError as e:
        raise ImportError(f"reading {path} needs scipy: pip install scipy (or cnnlab[mat]); or use "
                          "the IDX or PNG copies of notMNIST_small, which need nothing more") from e
    try:
        m = loadmat(str(path))
    except NotImplementedError as e:  # MATLAB v7.3 files are HDF5
        raise DataFileError(f"{path}: a MATLAB v7.3 (HDF5) file; scipy reads v4-v7.2 only ({e})") from e
    except Exception as e:  # noqa: BLE001 - scipy raises ValueError, TypeError, OSError...
        raise DataFileError(f"{path}: not a readable .mat file ({type(e).__name__}: {e})") from e
    if "images" not in m or "labels" not in m:
        keys = sorted(k for k in m if not k.startswith("__"))
        raise DataFileError(f"{path}: expected variables 'images' and 'labels', found {keys}")
    x, y = np.asarray(m["images"]), np.asarray(m["labels"]).reshape(-1)
    if x.ndim != 3 or x.shape[:2] != (28, 28):
        raise DataFileError(f"{path}: 'images' is {x.shape}, expected (28, 28, N)")
    x = np.moveaxis(x, 2, 0)  # (28, 28, N) -> (N, 28, 28)
    if len(x) != len(y):
        raise DataFileError(f"{path}: {len(x)} images but {len(y)} labels")
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise DataFileError(f"{path}: 'images' has dtype {x.dtype}, expected numbers 0-255")
    if x.size and (x.min() < 0 or x.max() > 255 or (x.dtype.kind == "f" and not np.all(x == np.round(x)))):
        raise DataFileError(f"{path}: 'images' values are not integers in 0-255 "
                            f"(min {x.min()}, max {x.max()})")
    if y.size and (not np.all(y == np.round(y)) or y.min() < 0 or y.max() > 9):
        raise DataFileError(f"{path}: 'labels' are not integers 0-9 (min {y.min()}, max {y.max()})")
    return x.astype(np.uint8), y.astype(np.int64), {path.name: sha256_file(path)}, []


def _letter_items(pairs):
    items, skipped = [], []
    for name, read in pairs:
        parts = PurePosixPath(name).parts
        letter = parts[-2] if len(parts) >= 2 else ""
        if letter not in LETTERS:
            skipped.append((name, "not in a letter folder A-J"))
        elif not name.lower().endswith(".png"):
            skipped.append((name, "not a .png file"))
        else:
            items.append((name, LETTERS.index(letter), read))
    items.sort(key=lambda t: (t[1], t[0]))
    return items, skipped


def _decode_letters(items, skipped, workers=None):
    dec = decode_files(items, None, "grayscale", "none", workers, expect_size=(28, 28))
    x = dec.images[:, 0].numpy()
    return x, dec.labels.numpy(), dec, skipped + dec.skipped


def read_png_folder(root: Path, workers: int | None = None):
    """Letter folders ``root/A`` .. ``root/J`` of 28x28 PNGs; undecodable files are skipped.

    Raises:
        DataFileError: a letter folder is missing.
    """
    missing = [c for c in LETTERS if not (root / c).is_dir()]
    if missing:
        raise DataFileError(f"{root}: letter folders {missing} missing; expected A/ .. J/")
    pairs = [(f"{c}/{p.name}", (lambda p=p: p.read_bytes()))
             for c in LETTERS for p in sorted((root / c).iterdir()) if p.is_file()]
    items, skipped = _letter_items(pairs)
    x, y, dec, skipped = _decode_letters(items, skipped, workers)
    return x, y, {"A/ .. J/": manifest_sha256(dec.names, dec.sha256)}, skipped


def read_png_tar(path: Path, workers: int | None = None):
    """The PNGs straight from ``notMNIST_small.tar.gz`` (no extraction).

    Raises:
        DataFileError: a member with an unsafe path (absolute or with ``..``), or an archive that
            cannot be read (truncated or corrupt).
    """
    pairs = []
    try:
        with tarfile.open(path, "r|gz") as tf:
            for m in tf:
                p = PurePosixPath(m.name)
                if p.is_absolute() or ".." in p.parts:
                    raise DataFileError(f"{path}: member {m.name!r} has an unsafe path; refusing it")
                if m.isfile():
                    data = tf.extractfile(m).read()
                    pairs.append(("/".join(p.parts[-2:]), (lambda b=data: b)))
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise DataFileError(f"{path}: cannot read the archive ({type(e).__name__}: {e}); it is "
                            "truncated or corrupt") from e
    items, skipped = _letter_items(pairs)
    x, y, _, skipped = _decode_letters(items, skipped, workers)
    return x, y, {path.name: sha256_file(path)}, skipped


def _find(data_dir, layout: str):
    """(layout, path) of the first source found, in the order idx, mat, png folder, png archive."""
    dirs = candidate_dirs("notmnist-small", data_dir)
    order = ["idx", "mat", "png"] if layout == "auto" else [layout]
    for kind in order:
        for d in dirs:
            if kind == "idx" and all((d / f).is_file() for f in IDX_FILES):
                return kind, d
            if kind == "mat" and (d / MAT).is_file():
                return kind, d / MAT
            if kind == "png":
                for r in (d, d / "notMNIST_small"):
                    if all((r / c).is_dir() for c in LETTERS):
                        return "png-folder", r
                if (d / TAR).is_file():
                    return "png-archive", d / TAR
    return None


READERS = {"idx": read_idx_copy, "mat": read_mat, "png-folder": read_png_folder,
           "png-archive": read_png_tar}


@register_dataset("notmnist-small", description="notMNIST small, letters A-J, 28x28 grayscale, 18,724 "
                  "images, 18,230 distinct; fixed seeded stratified 90/10 split (16,406/1,824)")
def notmnist_small(data_dir=None, download: bool = True, layout: str = "auto") -> ImageDataset:
    """notMNIST small: uint8 (N, 1, 28, 28), labels A=0 .. J=9, the fixed split of the module
    docstring. Bulatov 2011.

    Args:
        data_dir: a folder holding the files, or a ``notmnist-small/`` sub-folder with them.
        layout: ``"auto"`` (IDX, then .mat, then PNGs), ``"idx"``, ``"mat"`` or ``"png"``.
        download: unused: notMNIST_small.mat has no published checksum, so it is not fetched
            automatically (the error says where to get it).

    Raises:
        ValueError: ``layout`` not one of the four above.
        FileNotFoundError: no layout found; lists where it looked.
        DataFileError: a corrupt or inconsistent file, naming it.
        ImportError: the .mat layout without scipy.
    """
    if layout not in ("auto", "idx", "mat", "png"):
        raise ValueError(f"layout must be 'auto', 'idx', 'mat' or 'png', got {layout!r}")
    found = _find(data_dir, layout)
    if found is None:
        raise not_found("notmnist-small", "notmnist-small", [" + ".join(IDX_FILES), MAT, "A/ .. J/", TAR],
                        data_dir, f" (any one of these layouts; the .mat is at {MAT_URL}, no "
                                  "published checksum, so cnnlab does not download it)")
    kind, path = found
    x, y, files, skipped = READERS[kind](path)
    xtr, ytr, xte, yte, counts = split_canonical(x, y)
    prov = {"source": f"notMNIST_small (Bulatov 2011), {kind} layout", "layout": kind,
            "folder": str(path if path.is_dir() else path.parent), "files": files, "lossy": False,
            "total": int(len(y)),
            "distinct": counts,
            "split": {"test_fraction": TEST_FRACTION, "seed": SPLIT_SEED, "duplicates": "removed first",
                      "order": "by label, then sha256 of the 784 pixel bytes (layout-independent)",
                      "method": "cnnlab.data.stratified_split"},
            "skipped": report_skipped(str(path), skipped),
            # the same examples in the same splits, whatever the layout (a run's files may differ)
            "split_sha256": split_sha256(xtr, ytr, xte, yte)}
    if len(y) != TOTAL:
        prov["note"] = f"{len(y)} images, not the {TOTAL} of the reference copy"
    return ImageDataset(
        name="notmnist-small",
        train_images=torch.from_numpy(np.ascontiguousarray(xtr)).unsqueeze(1),
        train_labels=torch.from_numpy(ytr), test_images=torch.from_numpy(np.ascontiguousarray(xte)).unsqueeze(1),
        test_labels=torch.from_numpy(yte), classes=list(LETTERS), provenance=prov)


__all__ = ["LETTERS", "SPLIT_SEED", "TEST_FRACTION", "canonical_order", "distinct", "notmnist_small", "read_idx_copy",
           "read_mat", "read_png_folder", "read_png_tar", "split_canonical",
           "split_sha256"]
