"""Shared test fixtures.

Real-data tests read ``../shared/data`` (or ``$CNNLAB_TEST_DATA``); where it is absent they are
skipped with a loud reason and a warning at the end of the run, never silently passed.
Nothing in the test suite downloads: ``CNNLAB_OFFLINE`` is set for the whole session.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest
import torch

os.environ["CNNLAB_OFFLINE"] = "1"

REPO = Path(__file__).resolve().parents[1]
DATA_ROOT = Path(os.environ.get("CNNLAB_TEST_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(autouse=True)
def _isolate(tmp_path_factory, monkeypatch):
    # keep tests from reading or writing the user's cache and from seeing the user's CNNLAB_DATA
    monkeypatch.setenv("CNNLAB_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.delenv("CNNLAB_DATA", raising=False)
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a whole test module (use with ``pytestmark``).

    The test machine's 2 cores are shared: with 2 intra-op threads every parallel op waits at an
    OpenMP barrier for a thread the OS has descheduled, and the ~1,000 small ops of a ResNet-110
    step went from 1 s to 13 s. One thread costs at most 2x on the few big convs instead.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def real_data(sub: str) -> Path:
    """Path of ``sub`` inside the real data folder; skips the test loudly where it is missing."""
    p = DATA_ROOT / sub
    if not p.exists():
        msg = f"REAL DATA MISSING: {p} not found; real-data test skipped (set CNNLAB_TEST_DATA)"
        warnings.warn(msg)
        pytest.skip(msg)
    return p


@pytest.fixture
def data_root() -> Path:
    """The real data root (``../shared/data``); skips loudly where absent."""
    return real_data("")
