"""Device and numeric-precision choices.

``auto`` precision means bf16 autocast (with channels_last memory format) where the hardware
computes bf16 natively -- CPUs with AMX-BF16 or AVX512-BF16, CUDA GPUs with bf16 support -- and
fp32 elsewhere, where emulated bf16 would be far slower than fp32 (an AVX2-only CPU multiplies
bf16 matrices at about 1 GFLOP/s against 120 GFLOP/s in fp32). On the CPU, fp32 training keeps
channels_last too (benchmarks/CHANNELS_LAST.md).
"""
from __future__ import annotations

import contextlib
import functools
import platform

import torch

PRECISIONS = ("auto", "fp32", "bf16")


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None``/``"auto"`` -> CUDA if available, else Apple MPS, else CPU.

    Raises:
        ValueError: a device string torch does not understand, or CUDA asked for but absent.
    """
    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise ValueError(f"unknown device {device!r}: {e}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but this PyTorch build sees no CUDA GPU "
                         f"(torch {torch.__version__}); use --device cpu or install a CUDA build")
    return dev


@functools.lru_cache(maxsize=None)
def cpu_flags() -> frozenset[str]:
    """CPU feature flags from /proc/cpuinfo (empty on non-Linux)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def native_bf16(device: torch.device) -> bool:
    """True if ``device`` computes bf16 natively (AMX-BF16/AVX512-BF16 CPU, bf16-capable GPU)."""
    if device.type == "cuda":  # torch.cuda.is_bf16_supported() also says True for the emulated bf16 of
        # GPUs before Ampere (compute capability 8.0: V100, T4), and asks about the current GPU, not device
        return torch.cuda.is_available() and (bool(torch.version.hip)
                                              or torch.cuda.get_device_capability(device)[0] >= 8)
    if device.type == "cpu":
        return bool({"amx_bf16", "avx512_bf16"} & cpu_flags())
    return False


def cpu_isa() -> str:
    """The CPU's widest vector and matrix instruction sets that matter for training speed, e.g.
    ``"AVX2"``, ``"AVX-512, AVX512-BF16"`` or ``"AVX-512, AVX512-BF16, AMX-BF16"`` (``""`` where
    /proc/cpuinfo says nothing). Two CPUs sold under one name (an "AMD EPYC" with or without
    AVX-512) differ by 5-9x in cnnlab's default training path (README, Speed), so benchmark
    tables record it."""
    flags = cpu_flags()
    names = [("avx512f", "AVX-512"), ("avx512_bf16", "AVX512-BF16"), ("amx_bf16", "AMX-BF16")]
    found = [label for flag, label in names if flag in flags]
    if not found and "avx2" in flags:
        found = ["AVX2"]
    if not found and "asimd" in flags:
        found = ["NEON"] + (["BF16"] if "bf16" in flags else [])
    return ", ".join(found)


def resolve_precision(precision: str, device: torch.device) -> str:
    """Map ``auto`` to ``bf16`` or ``fp32`` for ``device``; validate the others.

    Raises:
        ValueError: unknown precision name.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return precision


def autocast(device: torch.device, precision: str):
    """The autocast context for a resolved precision (a no-op for fp32).

    Raises:
        ValueError: ``precision`` is not ``"fp32"`` or ``"bf16"`` (``"auto"`` must be resolved
            first, by :func:`resolve_precision`).
    """
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if precision != "fp32":
        raise ValueError(f"precision {precision!r}: expected 'fp32' or 'bf16' here (resolve 'auto' "
                         "for a device with cnnlab.device.resolve_precision)")
    return contextlib.nullcontext()


def flush_denormals() -> str:
    """Treat denormal floats (magnitudes under 1.2e-38) as zero in CPU arithmetic, as TensorFlow
    does by default: x86 flush-to-zero and denormals-are-zero, ARM's FZ.

    Why: Adam's moment estimates of weights whose gradient stays zero (dead units) decay through
    the denormal range, where every operation takes a slow microcode path. In the faithful
    cifar10-alexnet run 82% of the first moments were denormal after 51 epochs, and training
    steps from that state ran 1.5x faster with the flush (benchmarks/DENORMALS.md). Nothing a
    network computes is lost: such values are 1e30 times smaller than any weight.

    The mode is per thread, and threads inherit it when they are created: called before the
    first parallel operation, it covers PyTorch's OpenMP workers too (the ``cnnlab`` command
    calls it first thing); later, only the calling thread.

    Returns:
        ``"all threads"``, ``"calling thread"`` (PyTorch's worker threads had started without
        it), or ``"unsupported"`` (the CPU has no such mode; nothing changed).
    """
    if not torch.set_flush_denormal(True):
        return "unsupported"
    # a denormal in every intra-op thread's share of a parallel multiply (PyTorch's grain: 32768)
    probe = torch.full((32768 * torch.get_num_threads(),), 0x000A7F3C, dtype=torch.int32).view(torch.float32)
    return "all threads" if bool((probe * 1.0).view(torch.int32).eq(0).all()) else "calling thread"


def describe_machine() -> dict:
    """Machine and versions, recorded with every run and benchmark."""
    cpu = platform.processor() or platform.machine()
    family_model = {}  # x86 "cpu family" and "model": tell CPU generations of one name apart
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name":
                    cpu = value.strip()
                    break
                if key in ("cpu family", "model"):
                    family_model[key] = value.strip()
    except OSError:
        pass
    import os
    info = {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "torch": torch.__version__,
            "cpu_isa": cpu_isa(), "native_bf16_cpu": native_bf16(torch.device("cpu"))}
    if len(family_model) == 2:  # "AMD EPYC" is both Zen 4 (family 25, model 17) and others
        info["cpu_family_model"] = f"{family_model['cpu family']}/{family_model['model']}"
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    return info
