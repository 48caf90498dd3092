"""Archive extraction refuses members that would escape the target folder; downloads are never tried
in tests."""
from __future__ import annotations

import io
import tarfile

import pytest

from cnnlab.data.download import safe_extract


def make_tar(path, members):
    """members: (name, kind, payload): kind 'file' (payload bytes), 'sym'/'hard' (payload link target)."""
    with tarfile.open(path, "w:gz") as tf:
        for name, kind, payload in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(payload)
                tf.addfile(info, io.BytesIO(payload))
            else:
                info.type = tarfile.SYMTYPE if kind == "sym" else tarfile.LNKTYPE
                info.linkname = payload
                tf.addfile(info)
    return path


def test_safe_archive_extracts(tmp_path):
    arch = make_tar(tmp_path / "ok.tar.gz", [("d/a.txt", "file", b"hi"), ("d/link", "sym", "a.txt")])
    out = safe_extract(arch, tmp_path / "out")
    assert (out / "d" / "a.txt").read_bytes() == b"hi" and (out / "d" / "link").is_symlink()


@pytest.mark.parametrize("members, what", [
    ([("/tmp/evil.txt", "file", b"x")], "escapes the target folder"),
    ([("../evil.txt", "file", b"x")], "escapes the target folder"),
    ([("d/../../evil.txt", "file", b"x")], "escapes the target folder"),
    ([("d/link", "sym", "/etc/passwd")], "points outside"),
    ([("d/link", "sym", "../../outside")], "points outside"),
    ([("d/hard", "hard", "../outside")], "points outside|escapes"),
])
def test_escaping_members_refused_before_anything_is_written(tmp_path, members, what):
    arch = make_tar(tmp_path / "evil.tar.gz", [("good.txt", "file", b"ok")] + members)
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=f"evil.tar.gz: .*({what})"):
        safe_extract(arch, out)
    assert not (out / "good.txt").exists()  # checked first, nothing extracted
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "outside").exists()


def test_truncated_archive_is_an_error(tmp_path):
    arch = make_tar(tmp_path / "t.tar.gz", [(f"f{i}.bin", "file", bytes(range(256)) * 64) for i in range(20)])
    data = arch.read_bytes()
    for cut in (500, len(data) // 2):
        arch.write_bytes(data[:cut])
        with pytest.raises(tarfile.ReadError, match="t.tar.gz: truncated or corrupt archive"):
            safe_extract(arch, tmp_path / "out")


def test_not_an_archive(tmp_path):
    p = tmp_path / "x.tar.gz"
    p.write_bytes(b"<html>404 not found</html>")
    with pytest.raises(tarfile.TarError):
        safe_extract(p, tmp_path / "out")


def test_offline_in_tests(monkeypatch, tmp_path):
    """The suite's CNNLAB_OFFLINE makes a missing dataset an error naming it, with no attempt to
    download (a download here would fail the test, not hang on the network)."""
    import os

    import cnnlab.data.mnist
    from cnnlab.data import load_dataset
    assert os.environ.get("CNNLAB_OFFLINE")
    monkeypatch.delenv("CNNLAB_DATA", raising=False)
    monkeypatch.setenv("CNNLAB_CACHE", str(tmp_path / "cache"))

    def no_download(*a, **k):
        raise AssertionError("a test tried to download")
    monkeypatch.setattr(cnnlab.data.mnist, "download", no_download)
    with pytest.raises(FileNotFoundError, match="downloading is off: CNNLAB_OFFLINE"):
        load_dataset("mnist", tmp_path / "empty")


def test_no_room_for_the_temporary_file_is_a_disk_full_error(tmp_path, monkeypatch):
    """Downloads (and every run file) are written through ``atomic_path``; ENOSPC when its
    temporary file is created was a plain OSError without the target's name."""
    import errno
    import tempfile

    from cnnlab._io import DiskFullError, write_text
    target = tmp_path / "f.json"
    write_text(target, "old")

    def no_room(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(tempfile, "mkstemp", no_room)
    with pytest.raises(DiskFullError, match="disk full while writing .*f.json; the previous version"):
        write_text(target, "new")
    assert target.read_text() == "old"
