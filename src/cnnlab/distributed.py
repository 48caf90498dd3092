"""Data-parallel training on several processes: PyTorch's DistributedDataParallel under torchrun.

    torchrun --nproc_per_node=2 -m cnnlab.cli train mnist-cnn-small       # 2 processes, 1 machine
    torchrun --nnodes=2 --node_rank=R --master_addr=HOST --master_port=29500 \\
             --nproc_per_node=1 -m cnnlab.cli train mnist-cnn-small       # on each of 2 machines

``cnnlab train`` (and :func:`cnnlab.train`) notice torchrun's environment (``WORLD_SIZE`` >
1) and join the process group themselves: NCCL on CUDA (process ``LOCAL_RANK`` uses GPU
``LOCAL_RANK``), gloo on the CPU. What changes against one process, and what does not:

* The recipe's ``batch_size`` stays the **global** batch: every batch of the epoch's permutation
  (the same on every process) is cut into ``world_size`` equal parts, one per process, and DDP
  averages the gradients. The update is therefore that of one process on the whole batch, so
  the learning rate needs no rescaling and a recipe reaches the same accuracy on any number of
  processes. ``batch_size`` must divide by ``world_size``; the last incomplete batch of an
  epoch is dropped (at most ``batch_size - 1`` images), as ``DistributedSampler(drop_last=True)``.
* BatchNorm statistics are those of each process's part of the batch (DDP's default; no
  SyncBatchNorm), and rank 0's running statistics are copied to all before each validation.
* Each process draws its own augmentation and dropout randomness, so runs on different numbers of
  processes agree statistically, not bit for bit (without those two and BatchNorm they agree up
  to float rounding: ``tests/test_distributed.py``).
* Validation is split across the processes and its sums all-reduced: every process sees the same
  ``val_loss``/``val_accuracy``, so EarlyStopping and ReduceLROnPlateau act alike everywhere.
* Rank 0 alone logs, writes the run folder (checkpoints, metrics, plots) and evaluates the test
  split; ``--resume`` reads the folder on every process (on several machines: a shared file system).
"""
from __future__ import annotations

import contextlib
import gc
import os

import torch
import torch.distributed as dist
from torch import nn


def launched() -> bool:
    """True when torchrun started this process as one of several (``WORLD_SIZE`` > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(device: torch.device) -> tuple[int, int]:
    """Join torchrun's process group if this process is one of several; idempotent.

    Args:
        device: the device training will use; ``cuda`` selects GPU ``LOCAL_RANK`` and NCCL.

    Returns:
        ``(rank, world_size)``; ``(0, 1)`` when not launched by torchrun.

    Raises:
        RuntimeError: the process group cannot form (e.g. the rendezvous times out).
        ValueError: a GPU named by index (``cuda:1``) that is not this process's ``LOCAL_RANK``:
            every process would train on that one GPU; or torchrun's rendezvous variables
            (``MASTER_ADDR``, ``MASTER_PORT``, ``RANK``) are incomplete (PyTorch's env:// check).
    """
    if not launched():
        return 0, 1
    if not dist.is_initialized():
        if device.type == "cuda":
            local = int(os.environ.get("LOCAL_RANK", "0"))
            if device.index is not None and device.index != local:
                raise ValueError(f"device {str(device)!r} under torchrun: each process trains on "
                                 f"GPU LOCAL_RANK (this one: cuda:{local}); use --device cuda")
            torch.cuda.set_device(local)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size()


def shutdown(wait: bool = True) -> None:
    """Leave the process group, where :func:`setup` joined one.

    Args:
        wait: first wait for every process to get here (a barrier), so none tears down its
            connections while another still uses them (gloo may then abort the process at exit).
            Pass False after an error: the other processes may never arrive.
    """
    if dist.is_available() and dist.is_initialized():
        # free unreachable DistributedDataParallel wrappers (they sit in reference cycles) while
        # the group is alive: destroyed at interpreter exit instead, they abort the process
        # ("terminate called without an active exception"), seen in about 1 run of 3 under load
        gc.collect()
        if wait:
            dist.barrier()
        dist.destroy_process_group()


def rank() -> int:
    """This process's rank (0 when not distributed)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    """The number of processes (1 when not distributed)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main() -> bool:
    """True on the process that logs and writes files (rank 0), and when not distributed."""
    return rank() == 0


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum ``t`` over the processes, in place; returned for chaining (a no-op on one process)."""
    if world_size() > 1:
        dist.all_reduce(t)
    return t


def broadcast_buffers(module: nn.Module) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every process, in place."""
    if world_size() > 1:
        for b in module.buffers():
            dist.broadcast(b, 0)


def all_gather(t: torch.Tensor) -> list[torch.Tensor]:
    """``t`` of every process, in rank order, as CPU tensors (``[t]`` on one process).

    ``t`` must have the same shape and dtype on every process (e.g. a random generator's state:
    uint8 (5056,) for the CPU's); sent as a tensor, so nothing is unpickled."""
    if world_size() == 1:
        return [t]
    dev = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
    mine = t.to(dev)
    every = [torch.empty_like(mine) for _ in range(world_size())]
    dist.all_gather(every, mine)
    return [e.cpu() for e in every]


def broadcast_str(text: str) -> str:
    """Rank 0's ``text`` on every process (sent as UTF-8 bytes: nothing is unpickled)."""
    if world_size() == 1:
        return text
    dev = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
    data = torch.tensor(list(text.encode()) if is_main() else [], dtype=torch.uint8, device=dev)
    n = torch.tensor([len(data)], device=dev)
    dist.broadcast(n, 0)
    buf = data if is_main() else torch.empty(int(n.item()), dtype=torch.uint8, device=dev)
    dist.broadcast(buf, 0)
    return bytes(buf.cpu().tolist()).decode()


def barrier() -> None:
    """Wait for every process (a no-op on one)."""
    if world_size() > 1:
        dist.barrier()


@contextlib.contextmanager
def local_main_first():
    """Run the block on each machine's first process (``LOCAL_RANK`` 0) before the others: for
    downloads and caches that the machine's processes share. A no-op on one process."""
    first = int(os.environ.get("LOCAL_RANK", "0")) == 0
    if not first:
        barrier()
    try:
        yield
    finally:
        if first:
            barrier()


def wrap(model: nn.Module) -> nn.Module:
    """``model`` in ``DistributedDataParallel`` when distributed, else ``model`` itself.

    The wrapper shares the model's parameters; it is only used for the training forward pass, so
    state_dicts, checkpoints and evaluation keep using ``model`` (no ``module.`` prefixes).
    """
    if world_size() == 1:
        return model
    dev = next(model.parameters()).device
    return nn.parallel.DistributedDataParallel(
        model, device_ids=[dev.index if dev.index is not None else torch.cuda.current_device()]
        if dev.type == "cuda" else None)


def local_part(n: int) -> slice:
    """This process's contiguous share of ``n`` examples (for evaluation): the shares of all
    processes cover ``0..n-1`` once, their sizes differ by at most one."""
    r, w = rank(), world_size()
    return slice(n * r // w, n * (r + 1) // w)
