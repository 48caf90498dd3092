"""The dataset type, the dataset registry, where data is looked for, and the validation split.

A dataset is a handful of in-memory tensors (:class:`ImageDataset`): small image datasets fit in
memory many times over, and slicing a uint8 tensor is far faster than any per-sample pipeline.
"""
from __future__ import annotations

import inspect
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from ..registry import Registry, check_options
from .loader import check_finite, class_indices


@dataclass
class ImageDataset:
    """A classification dataset held in memory.

    Attributes:
        name: registry name (``"mnist"``).
        train_images: uint8 ``(N, C, H, W)``, pixel values 0-255; or, for 1-D signals and
            tabular data (iris), float32 ``(N, C, L)`` raw values (normalised by mean/std only).
        train_labels: int64 ``(N,)`` class indices.
        test_images: uint8 ``(M, C, H, W)`` (float32 ``(M, C, L)`` for signals, as training's);
            the official test split, used only for the final evaluation.
        test_labels: int64 ``(M,)``.
        classes: class names, index = label.
        mean: per-channel mean of the training images, scaled to [0, 1].
        std: per-channel standard deviation of the training images, scaled to [0, 1].
        provenance: where the data came from: ``source`` (text), ``files`` (name -> sha256),
            ``lossy`` (bool: e.g. a JPEG re-encoding), and any notes. Saved with every run.

    Labels of another dtype (int32, uint8, bool, whole-number floats) are converted to int64.

    Raises:
        ValueError: images of another dtype or rank, images that look NHWC (channels last),
            training and test images of different shapes, NaN or infinite signal values, images
            and labels of different lengths, labels that are not integer class indices (one-hot,
            float), or labels outside ``0..len(classes) - 1``.
    """

    name: str
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    classes: list[str]
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    provenance: dict = field(default_factory=dict)

    def __post_init__(self):
        for split in ("train", "test"):
            x, y = getattr(self, f"{split}_images"), getattr(self, f"{split}_labels")
            if not ((x.dtype == torch.uint8 and x.dim() == 4) or
                    (x.dtype == torch.float32 and x.dim() == 3)):
                raise ValueError(f"{self.name}: {split}_images must be uint8 (N, C, H, W) images "
                                 f"or float32 (N, C, L) signals, got {x.dtype} {tuple(x.shape)}")
            if x.dim() == 4 and x.shape[1] > 4 and x.shape[3] in (1, 3, 4):
                raise ValueError(f"{self.name}: {split}_images of shape {tuple(x.shape)} look NHWC "
                                 f"(channels last); cnnlab takes NCHW: images.permute(0, 3, 1, 2)")
            check_finite(x, f"{self.name}: {split}_images")
            if len(x) != len(y):
                raise ValueError(f"{self.name}: {len(x)} {split} images but {len(y)} labels")
            y = class_indices(y, f"{self.name}: {split}_labels")
            setattr(self, f"{split}_labels", y)
            if len(y) and (int(y.min()) < 0 or int(y.max()) >= len(self.classes)):
                bad = int(((y < 0) | (y >= len(self.classes))).nonzero()[0])
                raise ValueError(f"{self.name}: {split} labels outside 0..{len(self.classes) - 1} "
                                 f"(the {len(self.classes)} classes), e.g. {int(y[bad])} at index "
                                 f"{bad}; a corrupt labels file?")
        if self.train_images.shape[1:] != self.test_images.shape[1:]:
            raise ValueError(f"{self.name}: training images are {tuple(self.train_images.shape[1:])}, "
                             f"test images {tuple(self.test_images.shape[1:])}; they must match")
        if not self.mean:
            self.mean, self.std = channel_stats(self.train_images)

    @property
    def image_shape(self) -> tuple[int, ...]:
        """(channels, height, width), or (channels, length) for 1-D signals."""
        return tuple(self.train_images.shape[1:])

    @property
    def num_classes(self) -> int:
        """Number of classes, ``len(classes)``."""
        return len(self.classes)


def channel_stats(images: torch.Tensor, chunk: int = 1 << 24) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 ``(N, C, H, W)`` images, in [0, 1] units; for float
    ``(N, C, L)`` signals, in the data's own units. Rounded to 4 decimals.

    For uint8 the sums come from a per-channel histogram of the 256 values (``chunk`` pixels at a
    time), which is exact and several times faster than summing float64 copies of the pixels (a
    150x150 photo set would need gigabytes as float64).
    """
    if images.dtype != torch.uint8:
        x = images.to(torch.float64)
        dims = tuple(d for d in range(x.dim()) if d != 1)
        return (tuple(round(v, 4) for v in x.mean(dims).tolist()),
                tuple(round(v, 4) for v in x.std(dims, unbiased=False).tolist()))
    c = images.shape[1]
    hist = torch.zeros(c, 256, dtype=torch.int64)
    per = max(1, chunk // max(1, images[0].numel())) if len(images) else 1
    for i in range(0, len(images), per):
        x = images[i:i + per].transpose(0, 1).reshape(c, -1)
        for k in range(c):
            hist[k] += torch.bincount(x[k], minlength=256)
    v = torch.arange(256, dtype=torch.float64) / 255.0
    n = hist.sum(1).to(torch.float64).clamp_min(1)
    h = hist.to(torch.float64)
    mean = (h * v).sum(1) / n
    std = ((h * v.square()).sum(1) / n - mean.square()).clamp_min(0).sqrt()
    return tuple(round(v, 4) for v in mean.tolist()), tuple(round(v, 4) for v in std.tolist())


@dataclass(frozen=True)
class DatasetEntry:
    """A registered dataset: ``loader(data_dir: Path | None, download: bool) -> ImageDataset``."""

    loader: Callable[..., ImageDataset]
    description: str
    folder: str


DATASETS: Registry[DatasetEntry] = Registry("dataset")


def register_dataset(name: str, *, description: str, folder: str | None = None):
    """Decorator registering a dataset loader under ``name`` (``folder``: its sub-folder name in a
    data directory, default ``name``)."""
    def deco(loader):
        DATASETS.register(name, DatasetEntry(loader, description, folder or name))
        return loader
    return deco


def load_dataset(name: str, data_dir: str | os.PathLike | None = None, download: bool | None = None,
                 **kwargs) -> ImageDataset:
    """Load a registered dataset into memory.

    Args:
        name: registry name (``cnnlab data list``).
        data_dir: a folder holding the dataset's files, or holding a sub-folder named after the
            dataset (e.g. ``../shared/data`` with ``mnist/`` inside). Default: ``$CNNLAB_DATA``,
            then the user cache folder (see :func:`cache_dir`).
        download: allow downloading from the official source when the files are nowhere found.
            Default: allowed unless ``$CNNLAB_OFFLINE`` is set.
        kwargs: the dataset's own options (:func:`dataset_options`), e.g. ``size=64`` for
            ``image-folder``; a recipe's ``dataset_kwargs``.

    Raises:
        UnknownNameError: unknown dataset name.
        FileNotFoundError: the files are not found and downloading is off; the message lists every
            folder searched.
        OSError: a download failed from every URL; the message lists the folders searched, then
            each URL and its error.
        ChecksumError: (a ValueError) no URL worked, and at least one delivered a file with the
            wrong md5.
        DataFileError: a file is corrupt, truncated or inconsistent.
        ValueError: an option (``kwargs`` key) the dataset does not take, with close matches, or
            one of the wrong type (``workers='abc'``), naming the options.
    """
    entry = DATASETS.get(name)
    check_options("dataset", name, kwargs, dataset_options(name))
    if download is None:
        download = not os.environ.get("CNNLAB_OFFLINE")
    try:
        return entry.loader(data_dir=data_dir, download=download, **kwargs)
    except TypeError as e:  # an option of the wrong type (--set dataset_kwargs.workers=abc): no traceback
        if not kwargs:
            raise
        raise ValueError(f"dataset {name!r} options {kwargs}: {e}") from e


def dataset_options(name: str) -> list[str] | None:
    """The options (keyword arguments besides ``data_dir`` and ``download``) the dataset ``name``
    takes, e.g. ``image-folder``'s ``size``, ``color`` and ``resize``; ``None`` for a loader that
    takes any (nothing is checked then).

    Raises:
        UnknownNameError: unknown dataset name.
    """
    params = inspect.signature(DATASETS.get(name).loader).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return sorted(p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                  and p.name not in ("data_dir", "download"))


def cache_dir() -> Path:
    """The user cache folder for downloads and decoded images: ``$CNNLAB_CACHE``, else
    ``$XDG_CACHE_HOME/cnnlab``, else ``~/.cache/cnnlab``."""
    if os.environ.get("CNNLAB_CACHE"):
        return Path(os.environ["CNNLAB_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "cnnlab"


def candidate_dirs(folder: str, data_dir: str | os.PathLike | None) -> list[Path]:
    """Folders searched, in order, for a dataset stored in sub-folder ``folder``:
    ``data_dir/folder``, ``data_dir``, ``$CNNLAB_DATA/folder``, ``$CNNLAB_DATA``, cache/folder."""
    roots = [Path(data_dir)] if data_dir else []
    if os.environ.get("CNNLAB_DATA"):
        roots.append(Path(os.environ["CNNLAB_DATA"]))
    out = []
    for r in roots:
        out += [r / folder, r]
    out.append(cache_dir() / folder)
    return out


def find_files(folder: str, names: Sequence[str], data_dir=None) -> Path | None:
    """The first candidate folder that holds all of ``names``, or None."""
    for d in candidate_dirs(folder, data_dir):
        if all((d / n).exists() for n in names):
            return d
    return None


def not_found(name: str, folder: str, names: Sequence[str], data_dir, extra: str = "") -> FileNotFoundError:
    """A FileNotFoundError that says which files were looked for, where, and how to fix it."""
    where = "\n  ".join(str(d) for d in candidate_dirs(folder, data_dir))
    return FileNotFoundError(
        f"dataset {name!r}: files {', '.join(names)} not found in any of:\n  {where}\n"
        f"Point --data-dir (or $CNNLAB_DATA) at a folder that holds them or a '{folder}/' "
        f"sub-folder{extra}.")


def download_failed(name: str, folder: str, names: Sequence[str], data_dir, error: Exception) -> Exception:
    """``error``, a failed download of files found nowhere, as the same type with :func:`not_found`'s
    message before it: offline, the folders searched (a mistyped ``--data-dir``) matter more than
    the URLs."""
    return type(error)(f"{not_found(name, folder, names, data_dir)}\nDownloading them failed: {error}")


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file (:func:`cnnlab.data.download.file_digest`)."""
    from .download import file_digest
    return file_digest(path, "sha256")


def stratified_split(labels: torch.Tensor, fraction: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Split indices into (train, validation) keeping each class's share.

    From each class, ``round(fraction * class_count)`` examples go to validation, chosen by a
    permutation seeded with ``seed`` (numpy's PCG64, so the split is the same on every machine and
    torch version). Both index tensors are sorted (int64).

    Raises:
        ValueError: if ``fraction`` is not in [0, 1).
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"validation fraction must be in [0, 1), got {fraction}")
    y = labels.cpu().numpy()
    rng = np.random.default_rng(seed)
    val = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        k = int(round(fraction * len(idx)))
        val.append(rng.permutation(idx)[:k])
    val_idx = np.sort(np.concatenate(val)) if val else np.zeros(0, dtype=np.int64)
    mask = np.ones(len(y), dtype=bool)
    mask[val_idx] = False
    return torch.from_numpy(np.flatnonzero(mask)), torch.from_numpy(val_idx.astype(np.int64))
