"""Downloads from official sources, verified by checksum, and safe archive extraction.

Never used by tests (they set ``CNNLAB_OFFLINE``). A download goes to a temporary file, is
checked against its md5/sha256, and only then renamed into place, so a broken connection never
leaves a file that looks complete.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import urllib.request
import zlib
from pathlib import Path
from typing import Sequence

from .._io import atomic_path


class ChecksumError(ValueError):
    """A downloaded or local file does not have the published checksum."""


def file_digest(path: str | os.PathLike, algo: str = "md5") -> str:
    """The hex digest of a file's bytes by ``hashlib`` algorithm ``algo``, read in 1 MiB blocks."""
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        while b := f.read(1 << 20):
            h.update(b)
    return h.hexdigest()


def download(urls: Sequence[str], dest: str | os.PathLike, md5: str | None = None,
             timeout: float = 60.0) -> Path:
    """Fetch the first URL of ``urls`` that works into ``dest`` and verify its md5.

    Raises:
        ChecksumError: a file arrived but its md5 differs from ``md5`` (not kept).
        OSError: no URL could be fetched; the message lists each URL and its error.
    """
    dest = Path(dest)
    errors = []
    for url in urls:
        try:
            with atomic_path(dest) as tmp:
                print(f"downloading {url} -> {dest}", flush=True)
                with urllib.request.urlopen(url, timeout=timeout) as r, open(tmp, "wb") as f:
                    shutil.copyfileobj(r, f, 1 << 20)
                if md5 and (got := file_digest(tmp, "md5")) != md5:
                    raise ChecksumError(f"{url}: md5 {got} != published {md5}; not kept")
            return dest
        except ChecksumError:
            raise
        except OSError as e:
            errors.append(f"{url}: {e}")
    raise OSError("could not download " + dest.name + ":\n  " + "\n  ".join(errors))


def _is_within(base: Path, target: Path) -> bool:
    try:
        target.resolve().relative_to(base.resolve())
        return True
    except ValueError:
        return False


def safe_extract(archive: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Extract a tar archive, refusing members that would escape ``dest``.

    Uses the standard library's ``data`` filter where available (Python 3.12+, backported to
    3.10.12/3.11.4) and checks every member itself as well: an absolute path, a ``..`` component,
    a link pointing outside ``dest``, a device file -- each raises before anything is written.

    Raises:
        ValueError: an unsafe member; the message names it.
        tarfile.TarError: a corrupt archive.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    try:
        _extract_checked(archive, dest)
    except (EOFError, zlib.error) as e:
        # gzip/bz2/xz raise these on a truncated or damaged stream; say which file
        raise tarfile.ReadError(f"{archive}: truncated or corrupt archive ({type(e).__name__}: {e}); "
                                "delete it and download it again") from e
    return dest


def _extract_checked(archive, dest: Path) -> None:
    """Check every member of ``archive`` (see :func:`safe_extract`), then extract them all."""
    with tarfile.open(archive) as tf:
        members = tf.getmembers()
        for m in members:
            name = m.name
            if name.startswith(("/", "\\")) or Path(name).is_absolute() or ".." in Path(name).parts:
                raise ValueError(f"{archive}: member {name!r} escapes the target folder; refusing to extract")
            if m.issym() or m.islnk():
                link = Path(m.linkname)
                target = (dest / name).parent / link if m.issym() else dest / link
                if link.is_absolute() or not _is_within(dest, target):
                    raise ValueError(f"{archive}: link {name!r} -> {m.linkname!r} points outside the "
                                     "target folder; refusing to extract")
            if m.isdev():
                raise ValueError(f"{archive}: member {name!r} is a device file; refusing to extract")
        if hasattr(tarfile, "data_filter"):
            tf.extractall(dest, members=members, filter="data")
        else:  # pragma: no cover - old Pythons without the filter; members were checked above
            tf.extractall(dest, members=members)
