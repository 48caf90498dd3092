"""MNIST (LeCun et al. 1998) and Fashion-MNIST (Xiao, Rasul & Vollgraf 2017, arXiv:1708.07747)
from the four official gzipped IDX files.

The files are looked for in ``--data-dir``/``$CNNLAB_DATA`` (directly or in a ``mnist/`` or
``fashion-mnist/`` sub-folder), then in the user cache, and downloaded there with md5
verification when missing and online.
"""
from __future__ import annotations

import torch

from .._io import DiskFullError
from .core import ImageDataset, download_failed, find_files, not_found, register_dataset, sha256_file, cache_dir
from .download import download, file_digest, ChecksumError
from .idx import DataFileError, read_idx_pair

FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")

MNIST_MD5 = dict(zip(FILES, ("f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
                             "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c")))
FASHION_MD5 = dict(zip(FILES, ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
                               "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310")))
MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/",
                 "http://yann.lecun.com/exdb/mnist/")
FASHION_MIRRORS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot"]


def load_idx_dataset(name: str, folder: str, md5: dict, mirrors, classes, source: str,
                     data_dir=None, download_ok: bool = True) -> ImageDataset:
    """Load a dataset stored as the four MNIST-layout IDX files.

    Raises:
        FileNotFoundError: files not found and downloading is off; lists where it looked.
        DataFileError: a truncated/corrupt file, mismatched counts, images not 28x28 or a label
            outside ``0..len(classes) - 1``, naming the file.
        OSError: a file could not be downloaded from any mirror; lists where the files were looked
            for, then each URL and its error.
        ChecksumError: no mirror worked, and at least one delivered a file with the wrong md5.
        DiskFullError: the disk filled up while downloading.
    """
    root = find_files(folder, FILES, data_dir)
    if root is None:
        if not download_ok:
            raise not_found(name, folder, FILES, data_dir, " (downloading is off: CNNLAB_OFFLINE)")
        root = cache_dir() / folder
        try:
            for f in FILES:
                if not (root / f).exists():
                    download([m + f for m in mirrors], root / f, md5=md5[f])
        except DiskFullError:
            raise
        except (OSError, ChecksumError) as e:
            raise download_failed(name, folder, FILES, data_dir, e) from None
    xtr, ytr = _read_pair(root / FILES[0], root / FILES[1], len(classes))
    xte, yte = _read_pair(root / FILES[2], root / FILES[3], len(classes))
    files = {f: sha256_file(root / f) for f in FILES}
    return ImageDataset(
        name=name,
        train_images=torch.from_numpy(xtr.copy()).unsqueeze(1),
        train_labels=torch.from_numpy(ytr.astype("int64")),
        test_images=torch.from_numpy(xte.copy()).unsqueeze(1),
        test_labels=torch.from_numpy(yte.astype("int64")),
        classes=list(classes),
        provenance={"source": source, "folder": str(root), "files": files, "lossy": False,
                    "md5": md5},
    )


def _read_pair(images_path, labels_path, num_classes: int):
    """:func:`read_idx_pair`, plus what an MNIST-layout pair must hold: 28x28 images, labels
    ``0..num_classes - 1``; DataFileError naming the file otherwise."""
    x, y = read_idx_pair(images_path, labels_path)
    if x.shape[1:] != (28, 28):
        raise DataFileError(f"{images_path}: images are {x.shape[2]}x{x.shape[1]}, expected 28x28")
    if len(y) and int(y.max()) >= num_classes:
        bad = int((y >= num_classes).argmax())
        raise DataFileError(f"{labels_path}: label {int(y[bad])} at index {bad} is outside 0..{num_classes - 1} "
                            f"(the {num_classes} classes); the file is corrupt")
    return x, y


def verify_md5(root, md5: dict) -> dict[str, bool]:
    """Check each file's md5 against the official one; returns {file: ok}."""
    return {f: (root / f).exists() and file_digest(root / f, "md5") == h for f, h in md5.items()}


@register_dataset("mnist", description="MNIST handwritten digits, 28x28 grayscale, 60,000/10,000 "
                                        "(official IDX files)")
def mnist(data_dir=None, download: bool = True) -> ImageDataset:
    """MNIST: uint8 (N, 1, 28, 28), labels 0-9. LeCun, Bottou, Bengio & Haffner 1998."""
    return load_idx_dataset("mnist", "mnist", MNIST_MD5, MNIST_MIRRORS, [str(i) for i in range(10)],
                            "official MNIST IDX files (LeCun, Cortes & Burges)", data_dir, download)


@register_dataset("fashion-mnist", description="Fashion-MNIST (Zalando), 28x28 grayscale, "
                                                "60,000/10,000 (official IDX files)")
def fashion_mnist(data_dir=None, download: bool = True) -> ImageDataset:
    """Fashion-MNIST: uint8 (N, 1, 28, 28), 10 clothing classes. Xiao et al. 2017."""
    return load_idx_dataset("fashion-mnist", "fashion-mnist", FASHION_MD5, FASHION_MIRRORS,
                            FASHION_CLASSES, "official Fashion-MNIST IDX files (Zalando Research, MIT)",
                            data_dir, download)


__all__ = ["mnist", "fashion_mnist", "load_idx_dataset", "verify_md5", "ChecksumError"]
