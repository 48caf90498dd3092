"""Atomic file writes: a result or checkpoint is either the old file or the new one, never half.

Every file cnnlab writes for a run goes through :func:`atomic_write`: the data goes to a temporary
file in the same folder, is flushed and fsync'ed, then renamed over the target (``os.replace`` is
atomic on POSIX and Windows), and the folder is fsync'ed (POSIX) so that the rename survives a
power cut. A full disk, an error or Ctrl-C mid-write leaves the previous file intact and no
temporary file behind; a process killed outright (SIGKILL, power loss) may leave a
``.NAME.*.tmp`` beside it, never a half-written NAME.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator


class DiskFullError(OSError):
    """Raised when a write fails for lack of space; names the file, the previous version is kept."""


def _read_umask() -> int:
    mask = os.umask(0o022)  # the only way to read it is to set it; put it back at once
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # once, at import, before any thread that could create files starts


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable, where the file system allows it (POSIX; some network
    and FUSE file systems refuse to fsync a folder: the file is written all the same)."""
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is renamed onto ``path``.

    Use it for writers that want a file name (``savefig``). A full disk is recognised by the
    ``OSError`` it raises; writers that report it otherwise (safetensors' ``save_file``,
    ``torch.save``) should serialise to bytes and use :func:`atomic_write`.

    Raises:
        DiskFullError: if the disk is full (``ENOSPC``/``EDQUOT``); ``path`` is left unchanged.
    """
    path = Path(path)
    tmp_path = None
    try:  # the folder and the temporary file too can meet a full disk
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp_path = Path(tmp)
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        # after the writer, which may have made the file anew (safetensors does): mkstemp's
        # 0600 would make every run file private
        os.chmod(tmp_path, 0o666 & ~_UMASK)
        os.replace(tmp_path, path)
    except BaseException as e:
        if tmp_path is not None:
            tmp_path.unlink(missing_ok=True)
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFullError(e.errno, f"disk full while writing {path}; the previous version "
                                "of the file, if any, is unchanged. Free some space and run the command "
                                "again (a training run: resume it, `cnnlab train --resume RUN_DIR`)") from e
        raise
    _fsync_folder(path.parent)


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None], mode: str = "w") -> None:
    """Write ``path`` atomically; ``write(f)`` receives an open file in ``mode`` ("w" or "wb").

    Raises:
        DiskFullError: the disk is full; ``path`` is left unchanged.
    """
    with atomic_path(path) as tmp:
        with open(tmp, mode, **({} if "b" in mode else {"encoding": "utf-8", "newline": ""})) as f:
            write(f)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    atomic_write(path, lambda f: f.write(json.dumps(obj, indent=2, sort_keys=False) + "\n"))


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) atomically."""
    atomic_write(path, lambda f: f.write(text))


def write_bytes(path: str | os.PathLike, data: bytes | memoryview) -> None:
    """Write ``data`` atomically (a serialised checkpoint: the write of the bytes is what can
    meet a full disk, as an ``OSError`` that becomes :class:`DiskFullError`)."""
    atomic_write(path, lambda f: f.write(data), mode="wb")


def image_format(fig, path: str | os.PathLike) -> str:
    """The file format ``path``'s suffix names (``png`` without one), for a matplotlib figure's
    ``savefig`` on a temporary name (whose suffix says nothing).

    Raises:
        ValueError: a suffix matplotlib cannot write, naming the ones it can.
    """
    fmt = Path(path).suffix.lstrip(".").lower() or "png"
    known = fig.canvas.get_supported_filetypes()
    if fmt not in known:
        raise ValueError(f"{path}: matplotlib writes no .{fmt} files; use one of "
                         f"{', '.join('.' + k for k in sorted(known))}")
    return fmt
