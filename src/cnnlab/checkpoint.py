"""Weights in safetensors, training state via ``torch.load(weights_only=True)``.

No arbitrary object is ever unpickled: safetensors holds only tensors, and the resumable training
state (optimizer, scheduler, callbacks, RNG, history) is loaded with ``weights_only=True``, PyTorch's
restricted unpickler, which builds tensors and plain containers and refuses any other Python object.
Every write is atomic (see :mod:`cnnlab._io`).
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import torch
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

from ._io import write_bytes


def save_weights(model: torch.nn.Module, path: str | os.PathLike, metadata: dict | None = None) -> None:
    """Write ``model.state_dict()`` to a ``.safetensors`` file atomically.

    Tensors are saved contiguous and on the CPU; shared tensors are cloned (safetensors refuses
    aliases). ``metadata`` values are stored as strings (``str(value)``).

    Raises:
        DiskFullError: the disk is full; the previous file is kept.
    """
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    # serialised first, so that a full disk meets a plain file write (an OSError, named)
    write_bytes(path, safetensors_bytes(state, metadata={k: str(v) for k, v in (metadata or {}).items()}))


def read_safetensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` file, on the CPU.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a valid safetensors file (bad or truncated header); names the file.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} not found")
    try:
        return load_file(str(path))
    except Exception as e:  # safetensors raises its own SafetensorError on bad headers
        raise ValueError(f"{path}: not a readable safetensors file ({e})") from e


def load_weights(model: torch.nn.Module, path: str | os.PathLike, strict: bool = True) -> None:
    """Load a ``.safetensors`` state_dict into ``model`` (on the model's device).

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a valid safetensors file, or its keys/shapes do not fit the
            model; the message names the file and the first mismatches.
    """
    state = read_safetensors(path)
    try:
        model.load_state_dict(state, strict=strict)
    except RuntimeError as e:
        raise ValueError(f"{path}: weights do not fit the model: {str(e)[:1000]}") from e


def save_state(state: dict, path: str | os.PathLike) -> None:
    """Write a training-state dict (tensors, numbers, strings, lists, dicts only) atomically.

    Raises:
        DiskFullError: the disk is full; the previous file is kept.
    """
    buf = io.BytesIO()
    torch.save(state, buf)
    write_bytes(path, buf.getbuffer())


def load_state(path: str | os.PathLike) -> dict:
    """Read a training state written by :func:`save_state`, refusing anything but plain data.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a corrupt file, or one holding Python objects (not written by cnnlab).
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:
        raise ValueError(f"{path}: cannot read training state ({type(e).__name__}: {_reason(e)})") from e


def _reason(e: Exception) -> str:
    """The gist of a ``torch.load`` error in one line: its first sentence, or for a refused
    Python object the global refused (not PyTorch's advice to load it with weights_only=False)."""
    text = str(e).strip()
    if not text:  # EOFError: an empty file
        return "the file is empty or cut short"
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1].strip()
        return text.split(". ")[0].split("\n")[0] + "; a Python object, refused (never unpickled)"
    return text.splitlines()[0].split(". ")[0][:300]
