"""Archive extraction refuses members that would escape the target folder; downloads are tested with
a fake ``urlopen``, never over the network."""
from __future__ import annotations

import http.client
import io
import tarfile

import pytest

from cnnlab.data import DataFileError
from cnnlab.data.download import ChecksumError, download, safe_extract


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
    arch = make_tar(tmp_path / "ok.tar.gz", [("d/a.txt", "file", b"hi"), ("d/e/b.txt", "file", b"yo")])
    out = tmp_path / "out"
    (out / "d").mkdir(parents=True)
    (out / "d" / "a.txt").write_bytes(b"old")
    (out / "kept.txt").write_bytes(b"mine")
    assert safe_extract(arch, out) == out
    assert (out / "d" / "a.txt").read_bytes() == b"hi" and (out / "d" / "e" / "b.txt").read_bytes() == b"yo"
    assert sorted(p.name for p in out.iterdir()) == ["d", "kept.txt"]  # no temporary folder left


@pytest.mark.parametrize("members, what", [
    ([("/tmp/evil.txt", "file", b"x")], "'/tmp/evil.txt' escapes the target folder"),
    ([("../evil.txt", "file", b"x")], "'../evil.txt' escapes the target folder"),
    ([("d/../../evil.txt", "file", b"x")], "'d/../../evil.txt' escapes the target folder"),
    ([("d/link", "sym", "/etc/passwd")], "'d/link' is a symlink"),
    ([("d/link", "sym", "../../outside")], "'d/link' is a symlink"),
    ([("d/hard", "hard", "../outside")], "'d/hard' is a hard link"),
    ([("d/link", "sym", "../good.txt")], "'d/link' is a symlink"),  # inside, but no archive has one
    # a chain each of whose links looks inside on its own: sub -> ., sub/esc -> ../outside
    ([("sub", "sym", "."), ("sub/esc", "sym", "../outside"), ("esc", "file", b"x")], "'sub' is a symlink"),
])
def test_unsafe_members_refused_before_anything_is_written(tmp_path, members, what):
    arch = make_tar(tmp_path / "evil.tar.gz", [("good.txt", "file", b"ok")] + members)
    out = tmp_path / "out"
    with pytest.raises(DataFileError, match=f"evil.tar.gz: member {what}.*refusing to extract"):
        safe_extract(arch, out)
    assert list(out.iterdir()) == []  # checked first, nothing extracted
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "outside").exists()


def test_no_extraction_without_the_data_filter(tmp_path, monkeypatch):
    """On Pythons before 3.10.12/3.11.4 (requires-python allows them) the symlink chain above
    overwrote a file outside the target: safe extraction needs the filter, and says so."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    arch = make_tar(tmp_path / "evil.tar.gz", [("sub", "sym", "."), ("sub/esc", "sym", "../victim.txt"),
                                               ("esc", "file", b"overwritten")])
    monkeypatch.delattr(tarfile, "data_filter", raising=False)
    with pytest.raises(DataFileError, match="evil.tar.gz: not extracted: .* no tarfile.data_filter"):
        safe_extract(arch, tmp_path / "out")
    assert victim.read_text() == "precious"


def test_a_failure_while_writing_leaves_nothing_half_extracted(tmp_path, monkeypatch):
    import errno
    arch = make_tar(tmp_path / "a.tar.gz", [(f"d/f{i}.txt", "file", b"x") for i in range(3)])
    real, calls = tarfile.TarFile.makefile, []

    def makefile(self, tarinfo, targetpath):
        calls.append(tarinfo.name)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, tarinfo, targetpath)
    monkeypatch.setattr(tarfile.TarFile, "makefile", makefile)
    out = tmp_path / "out"
    with pytest.raises(OSError, match="No space left"):
        safe_extract(arch, out)
    assert list(out.iterdir()) == []  # d/f0.txt was written, in the temporary folder, now gone


def test_truncated_archive_is_an_error(tmp_path):
    arch = make_tar(tmp_path / "t.tar.gz", [(f"f{i}.bin", "file", bytes(range(256)) * 64) for i in range(20)])
    data = arch.read_bytes()
    for cut in (500, len(data) // 2):
        arch.write_bytes(data[:cut])
        with pytest.raises(DataFileError, match="t.tar.gz: not a tar archive, or a truncated or corrupt one"):
            safe_extract(arch, tmp_path / "out")
        assert list((tmp_path / "out").iterdir()) == []


def test_not_an_archive(tmp_path):
    p = tmp_path / "x.tar.gz"
    p.write_bytes(b"<html>404 not found</html>")
    with pytest.raises(DataFileError, match=r"x.tar.gz: not a tar archive, or a truncated or corrupt one \(ReadError"):
        safe_extract(p, tmp_path / "out")


class FakeResponse(io.BytesIO):
    """What ``urlopen`` returns: the body, its headers, and optionally an error while reading."""

    def __init__(self, body: bytes, length: int | None = None, fail: Exception | None = None):
        super().__init__(body)
        self.headers = {} if length is None else {"Content-Length": str(length)}
        self.fail = fail

    def read(self, n=-1):
        if self.fail is not None:
            raise self.fail
        return super().read(n)


GOOD = b"the real file" * 100


def fake_urlopen(monkeypatch, by_host):
    """Replace ``urlopen``: host -> a FakeResponse, or an exception to raise; returns the URLs asked."""
    import urllib.request
    calls = []

    def urlopen(url, timeout=None):
        calls.append(url)
        got = by_host[url.split("/")[2]]
        if isinstance(got, Exception):
            raise got
        return got
    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    return calls


def md5(data: bytes) -> str:
    import hashlib
    return hashlib.md5(data).hexdigest()


@pytest.mark.parametrize("first", [
    FakeResponse(b"<html>503 try later</html>"),  # a wrong file (md5): mirror 2 was never tried
    FakeResponse(b"", fail=http.client.IncompleteRead(b"", 1000)),  # not an OSError: escaped uncaught
    FakeResponse(GOOD[:100], length=len(GOOD)),  # a short body
])
def test_download_tries_the_next_url_after_a_failure(tmp_path, monkeypatch, first):
    calls = fake_urlopen(monkeypatch, {"m1": first, "m2": FakeResponse(GOOD, length=len(GOOD))})
    dest = tmp_path / "dl" / "f.gz"
    assert download(["http://m1/f.gz", "http://m2/f.gz"], dest, md5=md5(GOOD)) == dest
    assert calls == ["http://m1/f.gz", "http://m2/f.gz"]
    assert dest.read_bytes() == GOOD and [p.name for p in dest.parent.iterdir()] == ["f.gz"]


def test_a_body_shorter_than_its_content_length_is_not_kept_without_md5(tmp_path, monkeypatch):
    fake_urlopen(monkeypatch, {"m1": FakeResponse(b"x" * 1000, length=100000)})
    dest = tmp_path / "f.bin"
    with pytest.raises(OSError, match=r"(?s)f.bin from any of 1 URL.*http://m1/f.bin: 1000 bytes arrived of "
                                      r"the 100000 announced"):
        download(["http://m1/f.bin"], dest)
    assert list(tmp_path.iterdir()) == []


def test_when_every_url_fails_the_error_lists_each(tmp_path, monkeypatch):
    import urllib.error
    down = urllib.error.URLError("Name or service not known")
    fake_urlopen(monkeypatch, {"m1": down, "m2": FakeResponse(b"<html>")})
    with pytest.raises(ChecksumError, match=r"(?s)f.gz from any of 2 URL.*http://m1/f.gz: .*Name or service"
                                            r".*http://m2/f.gz: md5 \w+ != published"):
        download(["http://m1/f.gz", "http://m2/f.gz"], tmp_path / "f.gz", md5=md5(GOOD))
    fake_urlopen(monkeypatch, {"m1": down, "m2": FakeResponse(b"", fail=http.client.IncompleteRead(b"", 9))})
    with pytest.raises(OSError, match=r"(?s)http://m1/f.gz: .*Name or service.*http://m2/f.gz: IncompleteRead"):
        download(["http://m1/f.gz", "http://m2/f.gz"], tmp_path / "f.gz", md5=md5(GOOD))
    assert list(tmp_path.iterdir()) == []


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


@pytest.mark.parametrize("name, module, fetch", [("mnist", "mnist", "download"), ("cifar10", "cifar", "fetch")])
def test_a_failed_download_says_where_the_files_were_looked_for(monkeypatch, tmp_path, name, module, fetch):
    """Offline, a mistyped --data-dir gave only the URLs' "Name or service not known"; the error
    names the folders searched first, and keeps its type (ChecksumError: a wrong file arrived)."""
    import importlib
    import re

    from cnnlab.data import load_dataset
    monkeypatch.delenv("CNNLAB_OFFLINE")
    monkeypatch.delenv("CNNLAB_DATA", raising=False)
    monkeypatch.setenv("CNNLAB_CACHE", str(tmp_path / "cache"))
    for error in (OSError("could not download x.gz from any of 2 URL(s): Name or service not known"),
                  ChecksumError("could not download x.gz from any of 1 URL(s): md5 0 != published 1")):
        def fail(*a, **k):
            raise error
        monkeypatch.setattr(importlib.import_module(f"cnnlab.data.{module}"), fetch, fail)
        typo = re.escape(str(tmp_path / "typo" / name))
        with pytest.raises(type(error), match=rf"(?s)dataset '{name}': files .* not found in any of:\n  {typo}\n"
                                              r".*Downloading them failed: could not download x.gz"):
            load_dataset(name, tmp_path / "typo")


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
    # not only runs write files (export, data info, reproduce): the advice is to run the command again
    with pytest.raises(DiskFullError, match="disk full while writing .*f.json; the previous version of the "
                                            "file, if any, is unchanged. Free some space and run the command again"):
        write_text(target, "new")
    assert target.read_text() == "old"
