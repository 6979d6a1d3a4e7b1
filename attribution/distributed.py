"""Data parallelism over ``torch.distributed``: each rank takes a contiguous shard of the
examples, and sums (edge scores, metric totals) or per-example values are combined across
ranks, so every rank ends with the single-process result up to summation order.

Nothing here starts processes: launch with ``torchrun --nproc-per-node N ...`` (or call
``torch.distributed.init_process_group`` yourself). Without an initialised process group, or
with one rank, every function is a no-op and the code runs as a single process.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

__all__ = [
    "all_gather_rows",
    "all_reduce_sum",
    "init_from_environment",
    "is_distributed",
    "is_main_process",
    "rank",
    "shard_range",
    "world_size",
]


def is_distributed() -> bool:
    """True when a process group with more than one rank is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    """Rank 0 (or a single process): the one that writes files and shows progress."""
    return rank() == 0


def init_from_environment() -> bool:
    """Join the process group ``torchrun`` describes (``WORLD_SIZE`` > 1); gloo on CPU, NCCL
    when CUDA is available. Returns whether this process now runs distributed."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not dist.is_available():
        return False
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend)
    return is_distributed()


def shard_range(n: int) -> range:
    """This rank's contiguous share of ``range(n)``; shares differ in size by at most one."""
    r, w = rank(), world_size()
    return range(r * n // w, (r + 1) * n // w)


def _device_for_collectives(tensor: torch.Tensor) -> torch.device:
    # NCCL only reduces CUDA tensors; gloo reduces CPU tensors.
    return (
        torch.device("cuda", torch.cuda.current_device())
        if dist.get_backend() == "nccl"
        else torch.device("cpu")
    )


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """The element-wise sum of ``tensor`` over ranks (a new tensor on ``tensor``'s device)."""
    if not is_distributed():
        return tensor
    work = tensor.detach().to(_device_for_collectives(tensor)).clone()
    dist.all_reduce(work, op=dist.ReduceOp.SUM)
    return work.to(tensor.device)


def all_gather_rows(tensor: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """Concatenate every rank's ``tensor`` along ``dim`` in rank order (sizes may differ)."""
    if not is_distributed():
        return tensor
    device = _device_for_collectives(tensor)
    local = tensor.detach().movedim(dim, 0).contiguous().to(device)
    sizes = [torch.zeros(1, dtype=torch.long, device=device) for _ in range(world_size())]
    dist.all_gather(sizes, torch.tensor([local.shape[0]], dtype=torch.long, device=device))
    biggest = int(max(s.item() for s in sizes))
    padded = torch.zeros((biggest, *local.shape[1:]), dtype=local.dtype, device=device)
    padded[: local.shape[0]] = local
    gathered = [torch.empty_like(padded) for _ in range(world_size())]
    dist.all_gather(gathered, padded)
    rows = torch.cat([g[: int(s.item())] for g, s in zip(gathered, sizes, strict=True)])
    return rows.movedim(0, dim).to(tensor.device)
