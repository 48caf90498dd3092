"""Downloads from official sources, verified by checksum, and safe archive extraction.

Tests never reach the network (they set ``CNNLAB_OFFLINE`` and replace ``urlopen``). A download
goes to a temporary file, is checked against its ``Content-Length`` and md5, and only then renamed
into place, so a broken connection never leaves a file that looks complete.
"""
from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import platform
import shutil
import tarfile
import tempfile
import urllib.request
import zlib
from pathlib import Path
from typing import Sequence

from .._io import DiskFullError, atomic_path
from .idx import DataFileError


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
    """Fetch ``dest`` from the first of ``urls`` that delivers it whole (with the md5 ``md5``).

    The URLs are tried in turn: a connection or HTTP error, a body shorter or longer than its
    ``Content-Length``, or bytes with the wrong md5 (an HTML error page, say) move on to the next
    URL; nothing of a failed attempt is kept.

    Raises:
        ChecksumError: no URL worked, and one at least delivered a file whose md5 differs from
            ``md5``; the message lists each URL and its error.
        OSError: no URL worked (none delivered a file); the message lists each URL and its error.
        DiskFullError: the disk is full (no other URL is tried).
    """
    dest = Path(dest)
    errors, wrong_bytes = [], False
    for url in urls:
        try:
            with atomic_path(dest) as tmp:
                print(f"downloading {url} -> {dest}", flush=True)
                with urllib.request.urlopen(url, timeout=timeout) as r, open(tmp, "wb") as f:
                    shutil.copyfileobj(r, f, 1 << 20)
                    length, got = r.headers.get("Content-Length", ""), f.tell()
                if length.strip().isdigit() and got != int(length):
                    raise OSError(f"{got} bytes arrived of the {int(length)} announced (Content-Length); "
                                  "the connection broke")
                if md5 and (digest := file_digest(tmp, "md5")) != md5:
                    raise ChecksumError(f"md5 {digest} != published {md5}; not kept")
            return dest
        except DiskFullError:
            raise
        except (OSError, http.client.HTTPException, ChecksumError) as e:
            errors.append(f"{url}: {e if str(e) else repr(e)}")
            wrong_bytes |= isinstance(e, ChecksumError)
    error = ChecksumError if wrong_bytes else OSError
    raise error(f"could not download {dest.name} from any of {len(urls)} URL(s):\n  " + "\n  ".join(errors))


def safe_extract(archive: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Extract a tar archive into ``dest``; it may hold only plain files and folders.

    The official archives hold nothing else, so a symlink, a hard link, a device file, an absolute
    path or a ``..`` component is refused before anything is written. The standard library's
    ``data`` filter (Python 3.12+, backported to 3.10.12/3.11.4) checks each member again as it is
    written; without it nothing is extracted. The members are written to a temporary folder inside
    ``dest`` and moved into place only once all are, so a failure leaves nothing half-extracted
    (files already in ``dest`` are replaced by the archive's, other files kept).

    Raises:
        DataFileError: (a ValueError) an unsafe member, named; or a file that is not a tar
            archive, or a truncated or corrupt one; or this Python's ``tarfile`` has no
            ``data_filter`` (the archive cannot be used here). The message names the archive.
        OSError: writing failed (e.g. the disk is full); ``dest`` is left as it was.
    """
    if not hasattr(tarfile, "data_filter"):
        raise DataFileError(f"{archive}: not extracted: this Python ({platform.python_version()}) has no "
                           "tarfile.data_filter, which safe extraction needs (Python 3.10.12+, 3.11.4+ "
                           f"or 3.12+); upgrade Python, or extract the archive into {dest} yourself")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{Path(archive).name}.", suffix=".tmp", dir=dest))
    try:
        _extract_checked(archive, tmp)
        _move_into(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _extract_checked(archive, dest: Path) -> None:
    """Check every member of ``archive`` (see :func:`safe_extract`), then extract them all."""
    try:
        with tarfile.open(archive) as tf:
            members = tf.getmembers()
            for m in members:
                _check_member(archive, m)
            tf.extractall(dest, members=members, filter="data")
    except tarfile.FilterError as e:
        raise DataFileError(f"{archive}: {e}; refusing to extract") from e
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as e:
        # gzip/bz2/xz raise EOFError or zlib.error on a truncated or damaged stream
        reason = str(e).splitlines()[0].rstrip(":") if str(e) else ""
        raise DataFileError(f"{archive}: not a tar archive, or a truncated or corrupt one ({type(e).__name__}: "
                            f"{reason}); delete it and download it again") from e


def _check_member(archive, m: tarfile.TarInfo) -> None:
    """DataFileError unless ``m`` is a plain file or folder with a relative path inside the target."""
    name = m.name
    if name.startswith(("/", "\\")) or Path(name).is_absolute() or ".." in Path(name).parts:
        raise DataFileError(f"{archive}: member {name!r} escapes the target folder; refusing to extract")
    if not (m.isfile() or m.isdir()):
        kind = ("a symlink" if m.issym() else "a hard link" if m.islnk()
                else "a device file or FIFO" if m.isdev() else "not a plain file or folder")
        link = f" (-> {m.linkname!r})" if m.issym() or m.islnk() else ""
        raise DataFileError(f"{archive}: member {name!r} is {kind}{link}; the archives cnnlab reads hold "
                            "only files and folders; refusing to extract")


def _move_into(src: Path, dst: Path) -> None:
    """Move everything in ``src`` into ``dst``: folders merge into existing (real) folders, files
    replace files of the same name."""
    for p in sorted(src.iterdir()):
        target = dst / p.name
        if p.is_dir() and target.is_dir() and not target.is_symlink():
            _move_into(p, target)
        else:
            os.replace(p, target)
