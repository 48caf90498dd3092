"""Iris (Fisher 1936, "The use of multiple measurements in taxonomic problems", Annals of Eugenics 7)
from CSV, as 1-D signals for the Conv1D example of seed 004.

Each flower is 4 measurements in cm (sepal length, sepal width, petal length, petal width), held
as float32 ``(N, 1, 4)``: one channel of length 4, the shape of Keras' ``Conv1D(4, 3,
input_shape=(4, 1))`` input in PyTorch's channels-first order. Mean/std are then one value over all
four measurements (what a per-channel normalisation of that input computes).

Three registered copies:

* ``iris``: ``iris_sklearn_150.csv``, the full 150 rows (scikit-learn's copy, 50 per class). No
  test split exists: a seeded stratified 20% is held out (``stratified_split(labels, 0.2, seed=0)``
  over the file's row order: 10 per class, 30 in all; 120 remain).
* ``iris-teaching``: ``iris.csv``, the seed's 120-row teaching copy with one-hot labels.
* ``iris-teaching-index``: ``iris_with_category_index.csv``, the same 120 rows with an integer
  class -- EXCEPT 4 rows (data rows 18, 21, 22, 34) whose petal width 2.1 became 2.0 and class 2
  (virginica) became 1 (versicolor). Use ``iris-teaching`` unless reproducing that file exactly.

The teaching copies get the same seeded stratified 20% test split (97/23 for ``iris.csv``, whose
classes hold 42/36/42 rows; 96/24 for the index copy, 42/40/38).
"""
from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import torch

from .core import ImageDataset, find_files, not_found, register_dataset, sha256_file, stratified_split
from .idx import DataFileError

CLASSES = ["setosa", "versicolor", "virginica"]
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
TEST_FRACTION = 0.2
SPLIT_SEED = 0


def _floats(row, path, line, n=4):
    try:
        v = [float(s) for s in row[:n]]
    except ValueError as e:
        raise DataFileError(f"{path}, line {line}: non-numeric measurement in {row[:n]} ({e})") from e
    if not all(np.isfinite(v)):
        raise DataFileError(f"{path}, line {line}: non-finite measurement in {row[:n]}")
    return v


def _int(s, path, line):
    try:
        f = float(s)
    except ValueError as e:
        raise DataFileError(f"{path}, line {line}: class {s!r} is not a number") from e
    if not np.isfinite(f) or f != int(f):
        raise DataFileError(f"{path}, line {line}: class {s!r} is not an integer")
    return int(f)


def read_iris_csv(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Read one of the three iris CSV formats, recognised by the first line.

    * scikit-learn's: ``150,4,setosa,versicolor,virginica`` (row count, feature count, class
      names), then ``f1,f2,f3,f4,class_index`` rows;
    * one-hot: a header of 4 feature names + 3 class names, rows ``f1..f4,0,0,1``;
    * index: a header of 4 feature names + ``class``, rows ``f1..f4,class_index``.

    Returns:
        ``(x, y, classes)``: float32 ``(N, 4)`` in cm, int64 ``(N,)``, the class names.

    Raises:
        DataFileError: an unknown header, a row of the wrong length, a non-numeric value, a one-hot
            row without exactly one 1, a class out of range, or (sklearn format) a row count that
            differs from the header's. The message names the file and line.
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = [r for r in csv.reader(f)]
    except UnicodeDecodeError as e:
        raise DataFileError(f"{path}: not UTF-8 text ({e}); an iris CSV is plain text") from None
    if not rows:
        raise DataFileError(f"{path}: empty file")
    head = [h.strip() for h in rows[0]]
    body = [(i + 2, r) for i, r in enumerate(rows[1:]) if any(c.strip() for c in r)]
    xs, ys = [], []
    if head and head[0].isdigit():  # scikit-learn: n_samples, n_features, class names
        try:
            n, nf = int(head[0]), int(head[1])
        except (IndexError, ValueError) as e:
            raise DataFileError(f"{path}, line 1: bad scikit-learn header {head}") from e
        classes = head[2:]
        if nf != 4 or not classes:
            raise DataFileError(f"{path}, line 1: header says {nf} features and classes {classes}; "
                                "expected 4 features")
        for line, r in body:
            if len(r) != 5:
                raise DataFileError(f"{path}, line {line}: {len(r)} fields, expected 5")
            xs.append(_floats(r, path, line))
            ys.append(_int(r[4], path, line))
        if len(xs) != n:
            raise DataFileError(f"{path}: header says {n} rows, file has {len(xs)}")
    elif len(head) == 4 + len(CLASSES) and [h.lower() for h in head[4:]] == CLASSES:  # one-hot
        classes = head[4:]
        for line, r in body:
            if len(r) != 7:
                raise DataFileError(f"{path}, line {line}: {len(r)} fields, expected 7")
            xs.append(_floats(r, path, line))
            hot = [_int(s, path, line) for s in r[4:]]
            if sorted(hot) != [0, 0, 1]:
                raise DataFileError(f"{path}, line {line}: one-hot label {r[4:]} does not hold exactly one 1")
            ys.append(hot.index(1))
    elif len(head) == 5 and head[4].lower() in ("class", "label", "species"):
        classes = list(CLASSES)
        for line, r in body:
            if len(r) != 5:
                raise DataFileError(f"{path}, line {line}: {len(r)} fields, expected 5")
            xs.append(_floats(r, path, line))
            ys.append(_int(r[4], path, line))
    else:
        raise DataFileError(f"{path}, line 1: unrecognised header {head}; expected scikit-learn's "
                            "'150,4,setosa,...', or 4 feature names + 3 one-hot class names, or + 'class'")
    y = np.array(ys, dtype=np.int64)
    if len(y) and (y.min() < 0 or y.max() >= len(classes)):
        bad = next(line for (line, _), v in zip(body, ys) if not 0 <= v < len(classes))
        raise DataFileError(f"{path}, line {bad}: class outside 0..{len(classes) - 1}")
    return np.array(xs, dtype=np.float32).reshape(-1, 4), y, classes


def load_iris_csv(name: str, filename: str, data_dir=None, note: str = "") -> ImageDataset:
    """Load an iris CSV as float32 ``(N, 1, 4)`` signals with a seeded stratified 20% test split.

    Raises:
        FileNotFoundError: the file is not found; lists where it looked.
        DataFileError: as :func:`read_iris_csv`.
    """
    root = find_files("iris", [filename], data_dir)
    if root is None:
        raise not_found(name, "iris", [filename], data_dir)
    x, y, classes = read_iris_csv(root / filename)
    itr, ite = stratified_split(torch.from_numpy(y), TEST_FRACTION, SPLIT_SEED)
    t = torch.from_numpy(x).unsqueeze(1)  # (N, 1, 4)
    yt = torch.from_numpy(y)
    prov = {"source": f"iris (Fisher 1936), {filename}", "folder": str(root),
            "files": {filename: sha256_file(root / filename)}, "lossy": False,
            "features": FEATURES, "units": "cm", "rows": int(len(y)),
            "split": {"test_fraction": TEST_FRACTION, "seed": SPLIT_SEED,
                      "method": "cnnlab.data.stratified_split over the file's row order"}}
    if note:
        prov["note"] = note
    return ImageDataset(name=name, train_images=t[itr], train_labels=yt[itr], test_images=t[ite],
                        test_labels=yt[ite], classes=list(classes), provenance=prov)


@register_dataset("iris", description="iris, 150 rows (scikit-learn copy), 4 measurements as float32 "
                                       "(1, 4) signals; seeded stratified 120/30 split")
def iris(data_dir=None, download: bool = True) -> ImageDataset:
    """Iris, all 150 rows: float32 (N, 1, 4) in cm, labels setosa=0, versicolor=1, virginica=2."""
    return load_iris_csv("iris", "iris_sklearn_150.csv", data_dir)


@register_dataset("iris-teaching", folder="iris", description="iris, the 120-row one-hot teaching "
                  "copy of seed 004 (iris.csv); seeded stratified 97/23 split")
def iris_teaching(data_dir=None, download: bool = True) -> ImageDataset:
    """The seed's 120-row teaching copy (``iris.csv``, one-hot labels): float32 (N, 1, 4)."""
    return load_iris_csv("iris-teaching", "iris.csv", data_dir,
                         note="120 of the 150 iris rows (teaching copy, GitHub dhrim/bmac_seminar)")


@register_dataset("iris-teaching-index", folder="iris", description="iris, the 120-row teaching copy "
                  "with integer classes (iris_with_category_index.csv; 4 rows relabelled vs iris.csv); 96/24 split")
def iris_teaching_index(data_dir=None, download: bool = True) -> ImageDataset:
    """``iris_with_category_index.csv``: as ``iris-teaching`` but 4 rows (data rows 18, 21, 22, 34)
    have petal width 2.0 instead of 2.1 and class versicolor instead of virginica."""
    return load_iris_csv("iris-teaching-index", "iris_with_category_index.csv", data_dir,
                         note="4 rows (data rows 18, 21, 22, 34) differ from iris.csv: petal width "
                              "2.0 vs 2.1, class 1 (versicolor) vs 2 (virginica)")


__all__ = ["CLASSES", "FEATURES", "iris", "iris_teaching", "iris_teaching_index", "load_iris_csv",
           "read_iris_csv"]
