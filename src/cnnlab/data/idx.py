"""Reader for the IDX format of LeCun's MNIST files (also used by Fashion-MNIST and our notMNIST copy).

An IDX file is a big-endian header -- two zero bytes, a type code (0x08 = unsigned byte), the
number of dimensions, then one uint32 size per dimension -- followed by the raw array. Files may be
gzipped (recognised by gzip's magic bytes, whatever the name). See http://yann.lecun.com/exdb/mnist/
("FILE FORMATS").
"""
from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np


class DataFileError(ValueError):
    """A data file is unreadable, truncated, or not what it claims to be. The message names it."""


GZIP_MAGIC = b"\x1f\x8b"
_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, decompressed if they are gzip's (magic ``1f 8b``), whatever its name."""
    data = path.read_bytes()  # OSError (a folder, no permission) as is: it names the file
    if data[:2] != GZIP_MAGIC:
        return data
    try:
        return gzip.decompress(data)
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        # gzip raises EOFError on truncation and BadGzipFile on garbage
        raise DataFileError(f"{path}: cannot decompress ({e}); the file is truncated or corrupt: "
                            "replace it with a good copy (in cnnlab's cache: delete it, and it is "
                            "downloaded again)") from e


def read_idx(path: str | os.PathLike, expect_ndim: int | None = None) -> np.ndarray:
    """Read an IDX (optionally gzipped) file into a numpy array.

    Args:
        path: the ``.idx?-ubyte`` or ``.idx?-ubyte.gz`` file (gzip content is decompressed
            whatever the name).
        expect_ndim: if given, the number of dimensions the file must have (3 for images, 1 for
            labels).

    Returns:
        The array with the file's shape and dtype (``uint8`` for MNIST: images ``(N, 28, 28)``,
        labels ``(N,)``).

    Raises:
        FileNotFoundError: the file does not exist.
        OSError: the file cannot be read (a folder, no permission); the message names it.
        DataFileError: wrong magic number, unknown type code, unexpected number of dimensions,
            truncated or oversized payload, or a corrupt gzip stream. The message names the file.
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise DataFileError(f"{path}: only {len(data)} bytes; an IDX file starts with a 4-byte magic")
    zero, code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or code not in _DTYPES:
        raise DataFileError(f"{path}: bad IDX magic number 0x{data[:4].hex()} (expected 0x0000 then a "
                            f"type code in {sorted(hex(c) for c in _DTYPES)}); not an IDX file"
                            + (", nor gzip data" if path.suffix.lower() == ".gz" else ""))
    if expect_ndim is not None and ndim != expect_ndim:
        raise DataFileError(f"{path}: IDX file has {ndim} dimensions, expected {expect_ndim} "
                            f"({'images' if expect_ndim == 3 else 'labels'})")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataFileError(f"{path}: truncated header ({len(data)} bytes, need {header})")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = np.dtype(_DTYPES[code])
    need = math.prod(shape) * dtype.itemsize  # Python integers: np.prod's int64 wraps around
    got = len(data) - header
    if got != need:
        what = "truncated" if got < need else "has trailing bytes"
        raise DataFileError(f"{path}: {what}: header says shape {shape} ({need} bytes of data), "
                            f"file has {got}")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)


def _code(dtype: np.dtype) -> str:
    return next(hex(c) for c, d in _DTYPES.items() if np.dtype(d) == dtype)


def read_idx_pair(images_path: str | os.PathLike, labels_path: str | os.PathLike):
    """Read matching image and label IDX files.

    Returns:
        ``(images, labels)``: uint8 ``(N, H, W)`` and ``(N,)`` numpy arrays.

    Raises:
        DataFileError: as :func:`read_idx`, a file whose type is not unsigned byte (0x08: images
            0-255 and labels are stored so), or two files with different numbers of items.
    """
    images = read_idx(images_path, expect_ndim=3)
    labels = read_idx(labels_path, expect_ndim=1)
    for path, array in ((images_path, images), (labels_path, labels)):
        if array.dtype != np.uint8:  # float labels would be truncated into classes, silently
            raise DataFileError(f"{path}: holds {array.dtype.name} values (IDX type code "
                                f"{_code(array.dtype)}); image and label files hold unsigned bytes (0x08)")
    if len(images) != len(labels):
        raise DataFileError(f"{images_path} holds {len(images)} images but {labels_path} holds "
                            f"{len(labels)} labels; the files do not belong together")
    return images, labels
