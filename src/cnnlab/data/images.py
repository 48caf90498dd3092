"""Image folders -- one sub-folder of photos per class -- decoded once, resized, cached as uint8 tensors.

Two layouts are read (the ones Keras' ``flow_from_directory`` and torchvision's ``ImageFolder`` use):

* split layout: ``root/train/CLASS/*.jpg`` plus ``root/test/CLASS/*``, ``root/validation/CLASS/*``,
  ``root/val/CLASS/*`` or ``root/valid/CLASS/*`` (the first found, in that order; the Dogs vs.
  Cats subset of the seeds, ``cats_and_dogs_filtered``, has ``validation/``); the names in any
  case (``Train/``, ``Validation/``);
* class layout: ``root/CLASS/*.jpg``; the test split is then a seeded stratified split.

If ``root`` holds a ``train/`` folder the split layout is assumed, so a class cannot be called
``train``; ``Train/`` in another case is read as the split folder only beside a test folder (alone,
it stays a class). Class names are the sub-folder names in sorted order (label = position), as in Keras.

Decoding photos is slow (about 1 ms per 500x375 JPEG on one core), so the decoded tensors are
cached under ``cache_dir()/decoded/`` as safetensors files (never pickle), keyed by a hash of the
folder's absolute path, every file's relative path, size, mtime and ctime (the inode change time,
which every write or copy of a file sets, even one that keeps its size and restores its mtime),
and the resize settings: the second load only lists the folder and reads one file. A changed,
added or removed image (or a moved folder) changes the key and the folder is decoded again;
stale cache files are left behind (delete ``cache_dir()/decoded`` to reclaim them).

Resize policies (``resize=``):

* ``"squash"`` (default): scale each image to exactly ``size``, not keeping its aspect ratio. This
  is what the seeds' Keras ``target_size=(150, 150)`` does, so models see what they saw there.
* ``"center-crop"``: scale the shorter side to fit, keeping the aspect ratio, then cut the centre
  (torchvision's ``Resize`` + ``CenterCrop``); nothing is distorted, the borders are lost.
* ``"none"``: keep each image's own size; all images must then have the same size.

Resampling is PIL's bilinear filter, which widens its support when shrinking (antialiased). Large
JPEGs are first decoded at a reduced DCT scale (``Image.draft``: 1/2, 1/4 or 1/8, never below the
target size), which is several times faster and averages pixels much as the filter would. EXIF
orientation tags are ignored, as in Keras and torchvision (a phone photo stored sideways is read
sideways). Images with an alpha channel lose it: transparent pixels take their stored colour,
often black. 16-bit greyscale images are scaled to 8 bits (65535 -> 255, a dark frame
stays dark); 32-bit integer and float ones by a guess of their range (see ``_to_8bit``).

Files whose extension is not an image's, and images PIL cannot decode (a truncated JPEG, a zero-byte
file), are skipped; the count and the first few names are printed as a :class:`DataSkipWarning` and
recorded in ``provenance["skipped"]``. An empty class folder, a folder with no class
sub-folders, or one with a single class folder, is an error.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from .._io import write_bytes
from .core import ImageDataset, cache_dir, candidate_dirs, channel_stats, register_dataset, stratified_split
from .idx import DataFileError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jfif", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff",
                              ".ppm", ".pgm", ".pbm"})
RESIZE_POLICIES = ("squash", "center-crop", "none")
COLORS = {"rgb": "RGB", "grayscale": "L"}
RESAMPLE = "PIL bilinear (antialiased), JPEG draft decoding"  # how files are resized (recorded in provenance)
# bump when decoding changes (resampling, draft rule, layout of the cache file): old entries then
# simply stop matching
CACHE_VERSION = 2  # 2: 16-bit grey scaled whatever its brightest pixel
# how many skipped names a warning and the provenance list; the count is always complete
SHOW_SKIPPED = 5


class DataSkipWarning(UserWarning):
    """Some files of a dataset were skipped (not images, or undecodable); the message counts them."""


def _size_hw(size: int | Sequence[int] | None) -> tuple[int, int] | None:
    if size is None:
        return None
    try:
        if isinstance(size, (int, str)):
            size = (int(size), int(size))
        h, w = (int(s) for s in size)
    except (TypeError, ValueError):
        raise ValueError(f"image size is an integer or (height, width), got {size!r}") from None
    if h < 1 or w < 1:
        raise ValueError(f"image size must be positive, got {size}")
    return h, w


def _check_options(color: str, resize: str, size) -> None:
    if color not in COLORS:
        raise ValueError(f"color must be one of {sorted(COLORS)}, got {color!r}")
    if resize not in RESIZE_POLICIES:
        raise ValueError(f"resize must be one of {RESIZE_POLICIES}, got {resize!r}")
    if (size is None) != (resize == "none"):
        raise ValueError(f"resize={resize!r} with size={size!r}: give a size with 'squash' or "
                         "'center-crop', and size=None with 'none'")


# ---------------------------------------------------------------------------------------------
# decoding


def decode_image(data: bytes, size: tuple[int, int] | None, color: str = "rgb",
                 resize: str = "squash") -> np.ndarray:
    """Decode one encoded image (JPEG, PNG, ...) into a uint8 ``(H, W, C)`` array.

    Args:
        data: the file's bytes.
        size: ``(height, width)`` to resize to, or None to keep the image's own size.
        color: ``"rgb"`` (C = 3) or ``"grayscale"`` (C = 1).
        resize: a policy of :data:`RESIZE_POLICIES` (see the module docstring).

    Raises:
        Exception: whatever PIL raises for an undecodable file (``OSError`` for a truncated JPEG,
            ``PIL.UnidentifiedImageError`` for a non-image); callers catch and report it.
    """
    from PIL import Image

    mode = COLORS[color]
    with Image.open(io.BytesIO(data)) as im:
        if size is not None:
            th, tw = size
            w, h = im.size
            if resize == "center-crop":
                f = max(tw / w, th / h)
                need = (max(tw, round(w * f)), max(th, round(h * f)))
            else:
                need = (tw, th)
            # JPEG only (a no-op for other formats): decode at 1/2, 1/4, 1/8 scale while the result
            # stays >= the size needed
            im.draft(mode, need)
        if im.mode in ("I", "I;16", "I;16L", "I;16B", "F"):  # 16-bit or float grey: PIL's convert
            im = _to_8bit(im)  # would clip every value above 255 to white
        im = im.convert(mode)  # also forces the decode, which raises on a truncated file
        if size is not None:
            if resize == "center-crop":
                w, h = im.size
                f = max(tw / w, th / h)
                sw, sh = max(tw, round(w * f)), max(th, round(h * f))
                im = im.resize((sw, sh), Image.BILINEAR)
                left, top = (sw - tw) // 2, (sh - th) // 2
                im = im.crop((left, top, left + tw, top + th))
            elif im.size != (tw, th):
                im = im.resize((tw, th), Image.BILINEAR)
        a = np.asarray(im, dtype=np.uint8)
    return a[:, :, None] if a.ndim == 2 else a


def _to_8bit(im):
    """A 16-bit (0-65535) or 32-bit integer grey image, or a float one, as 8-bit grey ``L``.

    16-bit values (modes ``I;16*``: PNG and TIFF; PGM's ``I``, which Pillow scales to 0-65535)
    are divided by 257 (65535 -> 255), whatever the image's brightest pixel. Other 32-bit ``I``
    and float ``F`` images say nothing of their range, so it is guessed per image: ``I`` as
    16-bit if a value exceeds 255, else 0-255; ``F`` as 0-1 if its values stay there, else 0-255.
    """
    from PIL import Image
    a = np.asarray(im, dtype=np.float64)
    sixteen = im.mode.startswith("I;16") or (im.mode == "I" and im.format == "PPM")
    if im.mode == "F":
        a = a * 255 if a.size and np.nanmax(a) <= 1.0 else a
    elif sixteen or (a.size and a.max() > 255):
        a = a / 257
    return Image.fromarray(np.clip(np.nan_to_num(a), 0, 255).round().astype(np.uint8), "L")


@dataclass
class Decoded:
    """The result of decoding a list of files.

    Attributes:
        images: uint8 ``(N, C, H, W)``, the images that decoded, in input order.
        labels: int64 ``(N,)``.
        names: the names of all files read, in input order (decoded or not).
        sha256: uint8 ``(len(names), 32)``: each file's sha256 digest.
        skipped: ``[(name, reason)]`` for every file that did not decode.
    """

    images: torch.Tensor
    labels: torch.Tensor
    names: list[str]
    sha256: torch.Tensor
    skipped: list[tuple[str, str]] = field(default_factory=list)


def decode_error(e: Exception) -> str:
    """A decoder's exception as a short reason, e.g. ``"no image format PIL reads"``, without PIL's
    ``<_io.BytesIO object at 0x...>``."""
    from PIL import UnidentifiedImageError
    if isinstance(e, UnidentifiedImageError):
        return "no image format PIL reads"
    msg = re.sub(r"\s*<_io\.BytesIO object at 0x[0-9a-f]+>", " file", str(e))
    return f"{type(e).__name__}: {msg}" if msg else type(e).__name__


def decode_files(items: Sequence[tuple[str, int, Callable[[], bytes]]], size: tuple[int, int] | None,
                 color: str = "rgb", resize: str = "squash", workers: int | None = None,
                 expect_size: tuple[int, int] | None = None, root: str | os.PathLike | None = None) -> Decoded:
    """Read and decode many files with a thread pool (PIL releases the GIL while decoding).

    Args:
        items: ``(name, label, read)`` per file; ``read()`` returns the file's bytes.
        size, color, resize: as :func:`decode_image`.
        workers: threads; default ``min(4, cpu_count)``.
        expect_size: with ``size=None``, the ``(H, W)`` every image must have; others are skipped.
            Without it, the first image's size is required of all and a mismatch is an error.
        root: the folder the names are relative to, to name files in full in errors.

    Raises:
        DataFileError: with ``size=None`` and no ``expect_size``, images of different sizes.
        OSError: a file cannot be read at all (a missing file is not skipped: the folder changed).
    """
    n = len(items)
    digests = np.zeros((n, 32), dtype=np.uint8)
    arrays: list[np.ndarray | None] = [None] * n
    errors: list[str | None] = [None] * n

    def work(i: int) -> None:
        data = items[i][2]()
        digests[i] = np.frombuffer(hashlib.sha256(data).digest(), dtype=np.uint8)
        if not data:
            errors[i] = "empty file, 0 bytes"
            return
        try:
            a = decode_image(data, size, color, resize)
        except Exception as e:  # noqa: BLE001 - any decoder failure means "skip this file"
            errors[i] = decode_error(e)
            return
        if size is None and expect_size is not None and a.shape[:2] != tuple(expect_size):
            errors[i] = f"size {a.shape[1]}x{a.shape[0]}, expected {expect_size[1]}x{expect_size[0]}"
            return
        arrays[i] = a

    workers = workers or min(4, os.cpu_count() or 1)
    # chunks keep the pool's per-task overhead small next to 32x32 images (~50 us each)
    chunks = [range(i, min(i + 256, n)) for i in range(0, n, 256)]
    if workers > 1 and n > 64:
        with ThreadPoolExecutor(workers) as pool:
            for _ in pool.map(lambda r: [work(i) for i in r], chunks):
                pass
    else:
        for i in range(n):
            work(i)

    ok = [i for i in range(n) if arrays[i] is not None]
    skipped = [(items[i][0], errors[i]) for i in range(n) if errors[i] is not None]
    if ok:
        shapes = {arrays[i].shape for i in ok}
        if len(shapes) > 1:
            first = arrays[ok[0]].shape
            odd = next(i for i in ok if arrays[i].shape != first)
            full = [Path(root, items[i][0]) if root else items[i][0] for i in (odd, ok[0])]
            raise DataFileError(
                f"{full[0]}: image is {arrays[odd].shape[1]}x{arrays[odd].shape[0]} but "
                f"{full[1]} is {first[1]}x{first[0]}; with size=None all images must have "
                "one size: pass a size (and a resize policy) to resize them")
        x = np.stack([arrays[i] for i in ok])
    else:
        c = 1 if color == "grayscale" else 3
        h, w = size or expect_size or (0, 0)
        x = np.zeros((0, h, w, c), dtype=np.uint8)
    images = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
    labels = torch.tensor([items[i][1] for i in ok], dtype=torch.int64)
    return Decoded(images, labels, [it[0] for it in items], torch.from_numpy(digests), skipped)


# ---------------------------------------------------------------------------------------------
# the cache


def cache_key(fingerprint, settings: dict) -> str:
    """Hex sha256 of the cache format version, the decode settings and the files' fingerprint."""
    blob = json.dumps([CACHE_VERSION, settings, fingerprint], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def cache_file(tag: str, key: str) -> Path:
    """Where a decoded set is cached: ``cache_dir()/decoded/{tag}-{key[:32]}.safetensors``."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in tag)
    return cache_dir() / "decoded" / f"{safe}-{key[:32]}.safetensors"


def save_decoded(path: Path, dec: Decoded, extra: dict | None = None) -> None:
    """Write a :class:`Decoded` set as one safetensors file, atomically (metadata as JSON)."""
    from safetensors.torch import save

    meta = {"names": dec.names, "skipped": [list(s) for s in dec.skipped], **(extra or {})}
    tensors = {"images": dec.images.contiguous(), "labels": dec.labels.contiguous(),
               "sha256": dec.sha256.contiguous()}
    write_bytes(path, save(tensors, metadata={"cnnlab": json.dumps(meta)}))


def load_decoded(path: Path) -> tuple[Decoded, dict] | None:
    """Read a cache file written by :func:`save_decoded`; None if absent or unreadable (a damaged
    cache file is reported and decoded again, never trusted)."""
    if not path.exists():
        return None
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads(f.metadata()["cnnlab"])
            t = {k: f.get_tensor(k) for k in ("images", "labels", "sha256")}
        dec = Decoded(t["images"], t["labels"], meta.pop("names"), t["sha256"],
                      [tuple(s) for s in meta.pop("skipped")])
        if len(dec.images) != len(dec.labels) or len(dec.names) != len(dec.sha256):
            raise ValueError("inconsistent tensor lengths")
        return dec, meta
    except Exception as e:  # noqa: BLE001 - any damage means: decode again
        warnings.warn(f"{path}: unreadable cache file ({type(e).__name__}: {e}); decoding again",
                      DataSkipWarning, stacklevel=3)
        return None


def cached_decode(tag: str, fingerprint, settings: dict, decode: Callable[[], Decoded],
                  stats: bool = False) -> tuple[Decoded, dict, Path, bool]:
    """Return the decoded set for ``fingerprint`` + ``settings`` from the cache, or ``decode()`` it
    and cache it.

    Args:
        stats: also compute and cache the per-channel mean/std (``meta["mean"]``, ``meta["std"]``),
            so that a cached load does not pass over every pixel again.

    Returns:
        ``(decoded, meta, cache_path, from_cache)``.
    """
    path = cache_file(tag, cache_key(fingerprint, settings))
    got = load_decoded(path)
    if got is not None and (not stats or "mean" in got[1]):
        return got[0], got[1], path, True
    dec = decode()
    meta: dict = {"settings": settings}
    if stats:
        mean, std = channel_stats(dec.images) if len(dec.images) else ((), ())
        meta.update(mean=list(mean), std=list(std))
    try:
        save_decoded(path, dec, meta)
    except OSError as e:  # a read-only or full cache must not stop the load; it is only slower
        warnings.warn(f"could not write the decode cache {path}: {e}", DataSkipWarning, stacklevel=3)
    return dec, meta, path, False


def manifest_sha256(names: Sequence[str], sha256: torch.Tensor, prefix: str = "") -> str:
    """sha256 of the ``sha256sum``-style listing ``"{hex}  {prefix}{name}\\n"`` of the files, sorted
    by name: one checksum that changes when any of those files is changed, added or removed. The
    names are those of the image files read, relative to the split folder with ``prefix``
    (hidden and non-image files are not among them), sorted by code point, as
    ``cd ROOT && find PREFIX -type f | LC_ALL=C sort | xargs sha256sum`` lists a folder that
    holds nothing else (and no symlinked sub-folders, which cnnlab follows and find does not)."""
    hexes = [bytes(row).hex() for row in sha256.numpy()]
    lines = sorted(f"{prefix}{n}" for n in names)
    by_name = {f"{prefix}{n}": h for n, h in zip(names, hexes)}
    text = "".join(f"{by_name[n]}  {n}\n" for n in lines)
    return hashlib.sha256(text.encode()).hexdigest()


def report_skipped(where: str, skipped: Sequence[tuple[str, str]], stacklevel: int = 3) -> dict:
    """Warn about skipped files (count, the first few names and why); returns the provenance entry
    ``{"count": n, "first": [[name, reason], ...]}``."""
    entry = {"count": len(skipped), "first": [list(s) for s in skipped[:SHOW_SKIPPED]]}
    if skipped:
        first = "; ".join(f"{n} ({r})" for n, r in skipped[:SHOW_SKIPPED])
        more = f" and {len(skipped) - SHOW_SKIPPED} more" if len(skipped) > SHOW_SKIPPED else ""
        warnings.warn(f"{where}: skipped {len(skipped)} file(s): "
                      f"{first}{more}", DataSkipWarning, stacklevel=stacklevel)
    return entry


# ---------------------------------------------------------------------------------------------
# folders


def _is_image_name(name: str) -> bool:
    return Path(name).suffix.lower() in IMAGE_EXTENSIONS and not Path(name).name.startswith(".")


def walk_visible(folder: str | os.PathLike) -> Iterator[tuple[Path, list[str]]]:
    """``os.walk(folder)`` as training and ``cnnlab predict`` read a folder: symlinked sub-folders
    followed, each folder once (no loops), hidden folders and files (``.ipynb_checkpoints``,
    macOS's ``._photo.jpg``) left out; yields ``(folder, sorted file names)``, folders in sorted
    order."""
    seen = {os.path.realpath(folder)}
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = [d for d in sorted(dirnames) if not d.startswith(".")
                       and os.path.realpath(Path(dirpath) / d) not in seen]
        seen.update(os.path.realpath(Path(dirpath) / d) for d in dirnames)
        yield Path(dirpath), sorted(f for f in filenames if not f.startswith("."))


def scan_class_folders(root: str | os.PathLike, classes: Sequence[str] | None = None):
    """List the images of a class-per-sub-folder tree.

    Sub-folders are walked recursively, in sorted order, symlinked ones too; hidden files and
    folders (``.DS_Store``, ``.ipynb_checkpoints``) are ignored.

    Args:
        root: the folder holding one sub-folder per class.
        classes: the class names it must hold (a test split must have the training split's classes).

    Returns:
        ``(classes, files, skipped)``: class names (sorted sub-folder names); ``[(relpath, label,
        size, mtime_ns, ctime_ns)]`` for each file with an image extension, sorted by class then
        path (``/`` separated, relative to ``root``); ``[(relpath, reason)]`` for the other files
        and for images beside the class folders.

    Raises:
        DataFileError: ``root`` is not a folder, has no class sub-folders, has a class folder without
            image files, or (with ``classes``) a different set of class folders.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataFileError(f"{root}: not a folder")
    subdirs = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not subdirs:
        loose = sum(1 for p in root.iterdir() if p.is_file())
        raise DataFileError(f"{root}: no class sub-folders (found {loose} loose file(s)); an image "
                            "folder holds one sub-folder of images per class: ROOT/CLASS/*.jpg")
    if classes is not None and list(classes) != subdirs:
        missing = sorted(set(classes) - set(subdirs))
        extra = sorted(set(subdirs) - set(classes))
        if not missing and not extra:  # the same names in another order: labels are positions
            raise DataFileError(f"{root}: the classes given, {list(classes)}, are not in sorted "
                                f"order; labels follow the sorted folder names {subdirs}")
        raise DataFileError(f"{root}: class folders {subdirs} differ from the expected {list(classes)} "
                            f"(the training split's, or those given; missing {missing}, unexpected "
                            f"{extra})")
    files = []  # an image beside the class folders has no label: said, not silently left out
    skipped = [(p.name, "outside the class folders, no label") for p in sorted(root.iterdir())
               if p.is_file() and _is_image_name(p.name)]
    for label, cls in enumerate(subdirs):
        n_images = 0
        for dirpath, filenames in walk_visible(root / cls):
            for fn in filenames:
                p = dirpath / fn
                rel = p.relative_to(root).as_posix()
                if not _is_image_name(fn):
                    skipped.append((rel, "not an image file (extension)"))
                    continue
                st = p.stat()
                files.append((rel, label, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
                n_images += 1
        if n_images == 0:
            raise DataFileError(f"{root / cls}: class folder {cls!r} holds no image files "
                                f"({', '.join(sorted(IMAGE_EXTENSIONS))}); remove it or add images")
    return subdirs, files, skipped


@dataclass
class FolderSplit:
    """One decoded split of an image folder (see :func:`read_class_folder`)."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    manifest_sha256: str
    n_files: int
    skipped: list[tuple[str, str]]
    cache: Path
    from_cache: bool
    mean: tuple = ()
    std: tuple = ()


def read_class_folder(root: str | os.PathLike, size: int | Sequence[int] | None = 150, color: str = "rgb",
                      resize: str = "squash", classes: Sequence[str] | None = None,
                      workers: int | None = None, stats: bool = True, prefix: str = "",
                      expect_size: tuple[int, int] | None = None) -> FolderSplit:
    """Decode (or read from the cache) every image under ``root/CLASS/``.

    Args:
        root: the split folder (``.../train``).
        size: ``(height, width)`` or one int for a square, or None (``resize="none"``).
        color: ``"rgb"`` or ``"grayscale"``.
        resize: ``"squash"``, ``"center-crop"`` or ``"none"``.
        classes: the class folders required (a test split passes the training split's classes).
        stats: compute the per-channel mean/std (cached with the images).
        prefix: put before each relative path in the manifest (``"train/"``).
        expect_size: as :func:`decode_files`.

    Returns:
        A :class:`FolderSplit`; ``images`` uint8 ``(N, C, H, W)``, ``labels`` int64 ``(N,)``.

    Raises:
        DataFileError: as :func:`scan_class_folders`; or every image of a class failed to decode.
        ValueError: a bad ``size``/``color``/``resize`` combination.
    """
    root = Path(root)
    hw = _size_hw(size)
    _check_options(color, resize, hw)
    cls, files, skipped_scan = scan_class_folders(root, classes)
    settings = {"size": list(hw) if hw else None, "color": color, "resize": resize,
                "resample": "bilinear", "draft": True,
                "expect_size": list(expect_size) if expect_size else None}
    fingerprint = [str(root.resolve()), cls, [list(f) for f in files]]
    items = [(rel, label, (lambda p=root / rel: p.read_bytes())) for rel, label, *_ in files]

    def decode():
        return decode_files(items, hw, color, resize, workers, expect_size, root)

    tag = f"folder-{root.resolve().parent.name}-{root.name}"
    dec, meta, path, hit = cached_decode(tag, fingerprint, settings, decode, stats=stats)
    skipped = list(skipped_scan) + list(dec.skipped)
    empty = [c for i, c in enumerate(cls) if not bool((dec.labels == i).any())]
    if empty:
        raise DataFileError(f"{root / empty[0]}: no image of class {empty[0]!r} could be decoded "
                            f"({sum(1 for s in dec.skipped if s[0].startswith(empty[0] + '/'))} "
                            "undecodable files)")
    return FolderSplit(dec.images, dec.labels, cls, manifest_sha256(dec.names, dec.sha256, prefix),
                       len(dec.names), skipped, path, hit,
                       tuple(meta.get("mean", ())), tuple(meta.get("std", ())))


def load_image_folder(path: str | os.PathLike, size: int | Sequence[int] | None = 150,
                      color: str = "rgb", resize: str = "squash", *, test_dir: str | None = None,
                      test_fraction: float = 0.2, seed: int = 0, name: str = "image-folder",
                      lossy: bool = False, workers: int | None = None, source: str | None = None,
                      classes: Sequence[str] | None = None,
                      expect_size: tuple[int, int] | None = None) -> ImageDataset:
    """Load a folder of photos, one sub-folder per class, as an :class:`ImageDataset`.

    Args:
        path: the root: either ``train/`` (+ ``test/`` or ``validation/``) of class folders, or the
            class folders themselves.
        size: output ``(height, width)``, one int for a square (default 150, as in the seeds; 224
            for VGG-style nets), or None to keep the images' own (common) size.
        color: ``"rgb"`` (3 channels) or ``"grayscale"`` (1 channel).
        resize: ``"squash"`` (default), ``"center-crop"`` or ``"none"``; see the module docstring.
        test_dir: the split layout's sub-folder used as the test split: default the first of
            ``test/``, ``validation/``, ``val/``, ``valid/`` that exists (any case). With none, or
            in the class layout, a seeded stratified ``test_fraction`` of the images is held out
            (``stratified_split(labels, test_fraction, seed)`` over the sorted file list, so the
            same files on any machine).
        name: the dataset's name in results.
        lossy: record that the images are a lossy re-encoding of an original dataset.
        classes: the class folders required (default: whatever sub-folders there are); text is
            split at commas (``"cats, dogs"``, as ``--set classes=cats,dogs`` passes it).
        expect_size: with ``size=None``, the ``(H, W)`` every image must have; others are skipped
            and reported (CIFAR-10's 32x32). Without it, images of different sizes are an error.

    Returns:
        uint8 ``(N, C, H, W)`` images, int64 labels, class names = sorted sub-folder names.

    Raises:
        DataFileError: no class sub-folders, a single one, an empty class folder, test classes differ
            from train.
        FileNotFoundError: ``path`` or ``test_dir`` does not exist.
        ValueError: ``test_dir`` is the training folder, lies inside it or holds it; bad options.
    """
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"image folder {root} does not exist")
    if isinstance(classes, str):  # list("cats,dogs") would be its characters
        classes = [c.strip() for c in classes.split(",") if c.strip()]
    hw = _size_hw(size)
    _check_options(color, resize, hw)
    opts = dict(size=hw, color=color, resize=resize, workers=workers, expect_size=expect_size)
    prov: dict = {"source": source or f"image folder {root}", "folder": str(root), "lossy": lossy,
                  "resize": {"size": list(hw) if hw else None, "policy": resize, "color": color,
                             "resample": RESAMPLE}}
    split_dirs = _split_dirs(root)
    # train/ is the split layout; Train/ too beside a test folder (alone it may be a class: trains)
    if "train" in split_dirs and (split_dirs["train"] == "train" or any(d in split_dirs for d in TEST_FOLDERS)):
        got = _read_split_layout(root, split_dirs, test_dir, classes, opts, test_fraction, seed, prov)
    else:
        tr = read_class_folder(root, classes=classes, stats=False, **opts)
        got = _Read(*_split(tr, test_fraction, seed, prov), tr.classes, {"./": tr.manifest_sha256},
                    {"./": tr.n_files}, tr.skipped, [str(tr.cache)], tr.from_cache)
        prov["layout"] = "class sub-folders, no split folders"
    if len(got.classes) < 2:  # one logit would be read as a two-class sigmoid: predict then fails
        raise DataFileError(f"{root}: one class folder ({got.classes[0]!r}); a classifier needs at least two: "
                            "add a sub-folder of images for each other class")
    prov.update(files=got.files, files_note="for a folder: sha256 of its sorted 'sha256  path' "
                "listing (sha256sum format) of every file read", file_counts=got.counts,
                skipped=report_skipped(str(root), got.skipped), cache=got.cache, from_cache=got.from_cache)
    untested = [c for i, c in enumerate(got.classes) if not bool((got.yte == i).any())]
    if untested:
        warnings.warn(f"{root}: no test image of class(es) {', '.join(untested)} (a class needs "
                      f"several images for a held-out share); their test accuracy is undefined",
                      DataSkipWarning, stacklevel=2)
    return ImageDataset(name=name, train_images=got.xtr, train_labels=got.ytr, test_images=got.xte,
                        test_labels=got.yte, classes=list(got.classes), mean=tuple(got.mean),
                        std=tuple(got.std), provenance=prov)


# the test split's folder names, in the order one is chosen (``val``: the short form many use)
TEST_FOLDERS = ("test", "validation", "val", "valid")


@dataclass
class _Read:
    """An image folder read in one of its layouts: both splits, and what provenance records."""
    xtr: torch.Tensor
    ytr: torch.Tensor
    xte: torch.Tensor
    yte: torch.Tensor
    mean: tuple
    std: tuple
    classes: list[str]
    files: dict[str, str]  # split folder -> manifest sha256
    counts: dict[str, int]  # split folder -> files read
    skipped: list[tuple[str, str]]
    cache: list[str]
    from_cache: bool


def _read_split_layout(root: Path, split_dirs: dict[str, str], test_dir: str | None, classes,
                       opts: dict, test_fraction: float, seed: int, prov: dict) -> _Read:
    """``root/train/CLASS/*`` with its test folder (``test_dir``, else the first of
    :data:`TEST_FOLDERS`), or without one (a seeded share of train/ held out)."""
    train_root = root / split_dirs["train"]
    if test_dir is None:
        test_dir = next((split_dirs[d] for d in TEST_FOLDERS if d in split_dirs), None)
    elif not (root / test_dir).is_dir():
        raise FileNotFoundError(f"{root / test_dir}: test folder not found")
    else:
        _check_apart(root / test_dir, train_root)
    tr = read_class_folder(train_root, classes=classes, prefix=f"{train_root.name}/", **opts)
    key = f"{train_root.name}/"  # the split folder, as provenance names it
    files, counts = {key: tr.manifest_sha256}, {key: tr.n_files}
    skipped = [(f"{key}{n}", r) for n, r in tr.skipped]
    if test_dir is None:
        split = _split(tr, test_fraction, seed, prov)
        prov["layout"] = (f"train/ only (class sub-folders); a seeded stratified {test_fraction:g} "
                          "of it is the test split")
        return _Read(*split, tr.classes, files, counts, skipped, [str(tr.cache)], tr.from_cache)
    _check_labelled(root / test_dir, train_root)
    te = read_class_folder(root / test_dir, classes=tr.classes, stats=False, prefix=f"{test_dir}/", **opts)
    files[f"{test_dir}/"], counts[f"{test_dir}/"] = te.manifest_sha256, te.n_files
    skipped += [(f"{test_dir}/{n}", r) for n, r in te.skipped]
    prov["layout"] = f"train/ + {test_dir}/ (class sub-folders); {test_dir}/ is the test split"
    if test_dir.lower() != "test":
        prov["note"] = (f"{test_dir}/ is used as the test split, as the seeds use it; make a "
                        "validation split from train/ for model selection")
        others = [split_dirs[d] for d in TEST_FOLDERS if d in split_dirs and split_dirs[d] != test_dir]
        if others:
            prov["note"] += f"; {others[0]}/ exists and was not read"
    return _Read(tr.images, tr.labels, te.images, te.labels, tr.mean, tr.std, tr.classes, files,
                 counts, skipped, [str(tr.cache), str(te.cache)], tr.from_cache and te.from_cache)


def _check_apart(test_root: Path, train_root: Path) -> None:
    """ValueError when the test folder is the training folder, lies inside it or holds it
    (``test_dir='train/'``, ``'./train'``, ``'.'``): the model would be scored on its training images."""
    te, tr = test_root.resolve(), train_root.resolve()
    how = "is" if te == tr else "lies inside" if tr in te.parents else "holds" if te in tr.parents else None
    if how:
        raise ValueError(f"test folder {test_root} {how} the training folder {train_root}; the test split "
                         "must be other images: pass another test_dir, or none")


def _split_dirs(root: Path) -> dict[str, str]:
    """The split folders in ``root``, lower-cased name -> name as on disk (``Train/`` counts)."""
    return {d.name.lower(): d.name for d in sorted(root.iterdir())
            if d.is_dir() and d.name.lower() in ("train", *TEST_FOLDERS)}


def _check_labelled(test_root: Path, train_root: Path) -> None:
    """A test folder of loose images (Kaggle's unlabelled test/) cannot score a model: say what to do."""
    if test_root.is_dir() and not any(d.is_dir() and not d.name.startswith(".") for d in test_root.iterdir()):
        raise DataFileError(f"{test_root}: images without class sub-folders, i.e. without labels (as "
                            "Kaggle's test/ ships); cnnlab needs labels to score its test split: train "
                            f"on --data-dir {train_root} (a seeded share of it is then held out) and "
                            f"classify these with cnnlab predict")


def _split(tr: FolderSplit, fraction: float, seed: int, prov: dict):
    """Hold out a seeded stratified test split of a folder without a test folder."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1) for a folder without a test split, got {fraction}")
    itr, ite = stratified_split(tr.labels, fraction, seed)
    prov["split"] = {"test_fraction": fraction, "seed": seed,
                     "method": "cnnlab.data.stratified_split over the files sorted by class and path"}
    xtr = tr.images[itr]
    # the cached stats cover all images; the training split's own are computed here
    mean, std = channel_stats(xtr) if len(xtr) else ((), ())
    return xtr, tr.labels[itr], tr.images[ite], tr.labels[ite], mean, std


# ---------------------------------------------------------------------------------------------
# registered datasets


def _find_folder(folder: str, data_dir, need: Sequence[str]) -> Path | None:
    for d in candidate_dirs(folder, data_dir):
        if all((d / n).is_dir() for n in need):
            return d
    return None


@register_dataset("cats_vs_dogs", description="Dogs vs. Cats photos (Kaggle; 'cats_and_dogs_filtered'), "
                  "train/ 2,000, validation/ 1,000 (used as test), resized to 150x150 RGB")
def cats_vs_dogs(data_dir=None, download: bool = True, size: int | Sequence[int] = 150,
                 resize: str = "squash", color: str = "rgb", test_dir: str = "validation",
                 workers: int | None = None) -> ImageDataset:
    """Dogs vs. Cats photos: uint8 (N, 3, size, size), labels cats=0, dogs=1.

    Reads a ``cats_vs_dogs/`` folder with ``train/{cats,dogs}`` and ``validation/{cats,dogs}`` (and
    an optional ``test/``) of JPEG/PNG photos, e.g. Google's ``cats_and_dogs_filtered`` (2,000 /
    1,000 photos from the Kaggle "Dogs vs. Cats" competition, Asirra: Elson et al., CCS 2007).
    ``validation/`` is the test split, as in the seeds (001 §6, §9); pass ``test_dir="test"`` to use
    ``test/`` instead. Size 150 as the seeds; 224 for VGG-style input. Not downloaded (the public
    zip has no published checksum): fetch it yourself and point ``data_dir`` at it.

    Raises:
        FileNotFoundError: no folder with ``train/`` and ``test_dir`` (default ``validation/``);
            lists where it looked.
        DataFileError: as :func:`load_image_folder`.
    """
    root = _find_folder("cats_vs_dogs", data_dir, ("train", test_dir))
    if root is None:
        where = "\n  ".join(str(d) for d in candidate_dirs("cats_vs_dogs", data_dir))
        raise FileNotFoundError(
            f"dataset 'cats_vs_dogs': no folder with train/ and {test_dir}/ sub-folders in any of:\n"
            f"  {where}\nGet cats_and_dogs_filtered.zip (https://storage.googleapis.com/mledu-datasets/"
            "cats_and_dogs_filtered.zip), unzip it, and point --data-dir at it.")
    return load_image_folder(root, size, color, resize, test_dir=test_dir, name="cats_vs_dogs",
                             workers=workers,
                             source="Dogs vs. Cats photos (Kaggle/Asirra), original JPEG files; "
                                    f"{test_dir}/ used as the test split")


@register_dataset("cats_vs_dogs-64", folder="cats_vs_dogs",
                  description="the Dogs vs. Cats photos resized to 64x64 RGB (transfer from 32x32 backbones)")
def cats_vs_dogs_64(data_dir=None, download: bool = True, workers: int | None = None) -> ImageDataset:
    """:func:`cats_vs_dogs` at 64x64: uint8 (N, 3, 64, 64), cats=0, dogs=1. The transfer recipes
    use it with a backbone pretrained on 32x32 CIFAR images, whose objects are then about the
    size they had there (a dog fills most of either frame), at a sixth of 150x150's cost."""
    ds = cats_vs_dogs(data_dir, download, size=64, workers=workers)
    ds.name = "cats_vs_dogs-64"
    return ds


@register_dataset("image-folder", folder=".", description="any folder of images with one sub-folder "
                  "per class (train/ + test/|validation/, or class folders only); --data-dir is the folder")
def image_folder(data_dir=None, download: bool = True, size: int | Sequence[int] | None = 150,
                 color: str = "rgb", resize: str = "squash", test_dir: str | None = None,
                 test_fraction: float = 0.2, seed: int = 0, classes: Sequence[str] | None = None,
                 workers: int | None = None) -> ImageDataset:
    """A user's image folder: see :func:`load_image_folder` (``data_dir`` is the folder itself;
    the other arguments are its options, a recipe's ``dataset_kwargs``).

    Raises:
        ValueError: no ``data_dir`` given.
    """
    if data_dir is None:
        raise ValueError("dataset 'image-folder' needs the folder: pass data_dir (--data-dir PATH); "
                         "its options: size, color, resize, test_dir, test_fraction, seed, classes")
    return load_image_folder(data_dir, size, color, resize, test_dir=test_dir,
                             test_fraction=test_fraction, seed=seed, classes=classes, workers=workers)


__all__ = ["DataSkipWarning", "Decoded", "FolderSplit", "IMAGE_EXTENSIONS", "RESIZE_POLICIES",
           "cache_file", "cache_key", "cached_decode", "cats_vs_dogs", "decode_files", "decode_image",
           "image_folder", "load_image_folder", "manifest_sha256", "read_class_folder",
           "report_skipped", "scan_class_folders"]
