"""Data parallelism across processes: one process per device, one global batch.

Launch::

    torchrun --nproc-per-node 2 -m metamask run SPEC --distributed

Each process joins torchrun's process group (gloo on CPU, nccl on CUDA), builds the same graph
from the same seed and trains on its share of every global batch (``data.batch_size`` per
process; see :mod:`metamask.sampling`). The run is the single-process run with batch size
``W * data.batch_size``, up to floating-point summation order, because everything that
couples the examples of a batch is computed over the global batch:

- gradients: Betty differentiates with ``torch.autograd.grad``, which DDP's reducer hooks
  never see, so each node averages its gradients across processes (:func:`mean_`) right
  before its optimizer step;
- random draws per example (masks, nearby-S support): every process draws the global batch's
  numbers from the same RNG stream and keeps its rows (:func:`uniform`);
- losses pooled over the batch: their normalisers are summed across processes
  (:func:`total`), and the batch-wise terms (the contrastive loss, the projector's
  BatchNorm) run on the gathered global batch (:func:`gather_rows`).

Without a process group every function here is the single-process identity, so model code
calls them unconditionally.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from metamask.errors import ConfigError

_TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class Parallel:
    """This process's place in a data-parallel run."""

    world_size: int  # number of processes
    rank: int  # this process, 0..world_size-1; rank 0 writes every file
    local_rank: int  # this process on its machine (picks the CUDA device)
    backend: str  # gloo (CPU) or nccl (CUDA)
    device: torch.device  # where this process trains

    @property
    def is_main(self) -> bool:
        return self.rank == 0


_CURRENT: Parallel | None = None


def current() -> Parallel | None:
    """The active data-parallel setting, or None in a single-process run."""
    return _CURRENT


def world_size() -> int:
    return 1 if _CURRENT is None else _CURRENT.world_size


def rank() -> int:
    return 0 if _CURRENT is None else _CURRENT.rank


def is_main() -> bool:
    """True in the process that writes files (rank 0, or the only process)."""
    return _CURRENT is None or _CURRENT.is_main


def launch(device: str = "auto", timeout_s: float = 1800.0) -> Parallel:
    """Join the process group torchrun set up; ConfigError when not launched by torchrun.

    Args:
        device: ``auto`` (CUDA when available, else CPU), ``cpu`` or ``cuda``; with CUDA each
            process takes ``cuda:LOCAL_RANK``.
        timeout_s: how long a collective waits for a missing process before failing.
    """
    global _CURRENT
    missing = [name for name in _TORCHRUN_VARS if name not in os.environ]
    if missing:
        raise ConfigError(
            f"--distributed: this process was not started by torchrun ({', '.join(missing)} "
            "unset); launch with `torchrun --nproc-per-node N -m metamask run SPEC --distributed`"
        )
    size, rank_, local = (int(os.environ[k]) for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK"))
    if size < 2:
        raise ConfigError(
            "--distributed: torchrun started 1 process; Betty's distributed strategy needs at "
            "least 2 (drop --distributed to train in one process)"
        )
    target = _device_for(device, local)
    backend = "nccl" if target.type == "cuda" else "gloo"
    if target.type == "cuda":
        torch.cuda.set_device(target)
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    _CURRENT = Parallel(size, rank_, local, backend, target)
    return _CURRENT


def _device_for(request: str, local_rank: int) -> torch.device:
    kind = torch.device(request).type if request != "auto" else None
    if kind is None:
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    if kind == "cpu":
        return torch.device("cpu")
    if kind != "cuda":
        raise ConfigError(f"--distributed: device {request!r} is not cpu, cuda or auto")
    count = torch.cuda.device_count()
    if local_rank >= count:
        raise ConfigError(
            f"--distributed: local rank {local_rank} needs a CUDA device but this machine has "
            f"{count}; start at most {count} processes per node"
        )
    return torch.device("cuda", local_rank)


def close() -> None:
    """Leave the process group if one is joined, without waiting for the other processes
    (what an exiting process does, after an error as after success)."""
    global _CURRENT
    if _CURRENT is not None and dist.is_initialized():
        dist.destroy_process_group()
    _CURRENT = None


def shutdown() -> None:
    """Leave the process group (after a barrier, so no process exits while others still talk)."""
    global _CURRENT
    if _CURRENT is not None and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    _CURRENT = None


# ----------------------------------------------------------------------------------------------
# collectives (identities in one process)
# ----------------------------------------------------------------------------------------------


def mean_(tensors: Sequence[torch.Tensor]) -> None:
    """Average ``tensors`` in place across processes, in one flat all-reduce."""
    if _CURRENT is None or not tensors:
        return
    flat = torch.cat([t.detach().reshape(-1) for t in tensors])
    dist.all_reduce(flat)
    flat /= _CURRENT.world_size
    offset = 0
    with torch.no_grad():
        for t in tensors:
            t.copy_(flat[offset : offset + t.numel()].view_as(t))
            offset += t.numel()


def total(value: torch.Tensor) -> torch.Tensor:
    """The sum of ``value`` over processes, as a constant (no gradient flows through it)."""
    out = value.detach().clone()
    if _CURRENT is not None:
        dist.all_reduce(out)
    return out


def total_with_grad(value: torch.Tensor) -> torch.Tensor:
    """The sum of ``value`` over processes; gradients flow back to every process's ``value``.

    Every process uses the same sum, so the backward pass sums the incoming gradients over
    processes (see :func:`gather_rows` for why that gives single-process gradients).
    """
    if _CURRENT is None:
        return value
    if not value.requires_grad:
        return total(value)
    summed: torch.Tensor = _SumAcross.apply(value)
    return summed


def any_true(flag: bool) -> bool:
    """True when ``flag`` is true in any process (every process gets the same answer)."""
    if _CURRENT is None:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=_CURRENT.device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def barrier() -> None:
    """Wait until every process gets here (nothing to wait for in one process)."""
    if _CURRENT is not None:
        dist.barrier()


def broadcast_(tensors: Sequence[torch.Tensor]) -> None:
    """Overwrite ``tensors`` with rank 0's values (what DDP does when it wraps a module)."""
    if _CURRENT is None:
        return
    with torch.no_grad():
        for t in tensors:
            dist.broadcast(t.data, 0)


def uniform(rows: int, *shape: int, device: torch.device | str | None = None) -> torch.Tensor:
    """``torch.rand(rows, *shape)`` drawn as one global batch: this process's rows of it.

    Every process draws the global ``(W * rows, *shape)`` block from its RNG (identical in all
    processes: same seed, same draws) and keeps rows ``rank * rows ... (rank + 1) * rows``, so
    example ``i`` of the global batch gets the same numbers as in a single-process run.
    """
    if _CURRENT is None:
        return torch.rand(rows, *shape, device=device)
    full = torch.rand(rows * _CURRENT.world_size, *shape, device=device)
    return full[_CURRENT.rank * rows : (_CURRENT.rank + 1) * rows]


def gather_rows(x: torch.Tensor) -> torch.Tensor:
    """Concatenate every process's ``x`` along dim 0, in rank order, keeping gradients.

    The backward pass sums the incoming gradients over processes and returns this process's
    rows: each process computes the same function of the gathered batch, so after the
    optimizer's gradient average every parameter sees the single-process gradient.
    """
    if _CURRENT is None:
        return x
    gathered: torch.Tensor = _GatherRows.apply(x)
    return gathered


class _GatherRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(x) for _ in range(world_size())]
        dist.all_gather(parts, x.contiguous())
        ctx.rows = x.shape[0]
        return torch.cat(parts)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        start = rank() * ctx.rows
        return grad[start : start + ctx.rows]


class _SumAcross(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        out = x.detach().clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad
