"""Small synthetic data shared by tests (real-format files and learnable toy datasets)."""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import torch

from cnnlab.data.core import ImageDataset


def write_idx(path: Path, array: np.ndarray, gz: bool = True) -> Path:
    """Write ``array`` (uint8) in the real IDX format, gzipped like the official files."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        with gzip.open(path, "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)
    return path


def write_mnist_folder(root: Path, n_train: int = 60, n_test: int = 20, seed: int = 0) -> Path:
    """The four MNIST files with random content, in the official names and format."""
    rng = np.random.default_rng(seed)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(root / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", (np.arange(n) % 10).astype(np.uint8))
    return root


def toy_dataset(n_train: int = 600, n_test: int = 200, classes: int = 4, size: int = 28,
                seed: int = 0) -> ImageDataset:
    """A learnable dataset: class k has a bright 7x7 square in position k, plus noise."""
    g = torch.Generator().manual_seed(seed)

    def make(n):
        y = torch.arange(n) % classes
        x = torch.randint(0, 60, (n, 1, size, size), generator=g).to(torch.uint8)
        for k in range(classes):
            r, c = divmod(k, 2)
            x[y == k, :, 3 + 12 * r:10 + 12 * r, 3 + 12 * c:10 + 12 * c] = 230
        return x, y

    xtr, ytr = make(n_train)
    xte, yte = make(n_test)
    return ImageDataset("toy", xtr, ytr, xte, yte, [f"c{k}" for k in range(classes)],
                        provenance={"source": "synthetic (tests/helpers.py)"})


def without_times(history) -> list[dict]:
    """A History's per-epoch metrics without the wall times, for comparing two runs."""
    return [{k: v for k, v in e.items() if k != "time_s"} for e in history.epochs]
