"""Launch settings that pay on CPU: a faster allocator and OpenMP thread settings.

With glibc malloc, training steps whose activations exceed glibc's mmap threshold (32 MiB at most)
return memory to the OS after every step and page-fault it back in the next one: 160k-240k minor
faults per step on ResNet-20 at batch 512. tcmalloc keeps those pages (ResNet-20 batch 512 fp32
429 -> 650 images/s on the benchmark machine). This is what PyTorch's own launcher
``python -m torch.backends.xeon.run_cpu`` does with ``--enable-tcmalloc``, together with one
OpenMP thread per physical core.

The ``cnnlab`` command re-executes itself once with these settings when tcmalloc is installed
(Debian/Ubuntu: ``apt-get install libtcmalloc-minimal4``). Turn it off with ``CNNLAB_LAUNCHER=0``
or ``cnnlab --no-launcher``. An ``LD_PRELOAD`` the user set is kept.
"""
from __future__ import annotations

import glob
import os
import sys

_SEARCH = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib",
           "/usr/local/lib")
_NAMES = ("libtcmalloc_minimal.so.4", "libtcmalloc.so.4", "libtcmalloc_minimal.so", "libtcmalloc.so")


def find_tcmalloc() -> str | None:
    """Path of an installed tcmalloc shared library, or None."""
    prefixes = [os.path.join(sys.prefix, "lib"), *_SEARCH]
    for d in prefixes:
        for n in _NAMES:
            hits = glob.glob(os.path.join(d, n))
            if hits:
                return hits[0]
    return None


def physical_cores(cpus: set[int] | None = None) -> int:
    """The physical cores among the logical CPUs ``cpus`` (default: those this process may run
    on), from Linux's ``/sys/devices/system/cpu/cpuN/topology``: two SMT siblings are one core,
    as ``torch.backends.xeon.run_cpu`` counts them. Where the topology cannot be read, the number
    of logical CPUs."""
    cpus = set(os.sched_getaffinity(0)) if cpus is None else set(cpus)
    cores = set()
    try:
        for n in cpus:
            topo = f"/sys/devices/system/cpu/cpu{n}/topology"
            with open(f"{topo}/physical_package_id") as f, open(f"{topo}/core_id") as g:
                cores.add((f.read().strip(), g.read().strip()))
    except OSError:
        return len(cpus)
    return len(cores) or len(cpus)


def launch_env(environ: dict[str, str] | None = None) -> dict[str, str] | None:
    """The environment to re-execute with, or None when nothing would change.

    Adds tcmalloc to ``LD_PRELOAD`` and sets ``OMP_NUM_THREADS`` to the number of usable physical
    cores (:func:`physical_cores`; unless the user set it), the way ``torch.backends.xeon.run_cpu``
    does.
    """
    env = dict(os.environ if environ is None else environ)
    if env.get("CNNLAB_LAUNCHER", "1") == "0" or env.get("CNNLAB_LAUNCHED") == "1":
        return None
    if not sys.platform.startswith("linux"):
        return None
    changed = False
    lib = find_tcmalloc()
    if lib and "tcmalloc" not in env.get("LD_PRELOAD", ""):
        env["LD_PRELOAD"] = ":".join(p for p in (lib, env.get("LD_PRELOAD", "")) if p)
        changed = True
    if "OMP_NUM_THREADS" not in env:
        env["OMP_NUM_THREADS"] = str(physical_cores())
        changed = True
    if not changed:
        return None
    env["CNNLAB_LAUNCHED"] = "1"
    return env


def maybe_relaunch(argv: list[str]) -> None:
    """Re-execute ``cnnlab ARGV`` with :func:`launch_env`, if it changes anything: Python runs
    :func:`cnnlab.cli.main` again with this process's ``sys.path`` (not ``python -m cnnlab.cli``,
    which puts the working directory first, where a user's ``cnnlab.py`` or ``torch.py`` would
    replace the package the ``cnnlab`` command imported).

    Does not return when it re-executes. Any failure to exec falls back to running in-process.
    """
    env = launch_env()
    if env is None:
        return
    code = f"import sys; sys.path[:] = {sys.path!r}; from cnnlab.cli import main; sys.exit(main())"
    try:
        os.execve(sys.executable, [sys.executable, "-c", code, *argv], env)
    except OSError:
        return


def relaunch_script() -> None:
    """For benchmark scripts: re-execute ``python SCRIPT ARGS`` with :func:`launch_env`, so a
    script measures what the ``cnnlab`` command runs. Does not return when it re-executes."""
    env = launch_env()
    if env is not None:
        os.execve(sys.executable, [sys.executable, *sys.argv], env)
