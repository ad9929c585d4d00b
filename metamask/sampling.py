"""Batches whose position can be saved, and that split one global batch across processes.

A node's data loader draws batches from a :class:`ResumableBatchSampler`. Epoch ``e``'s order
is a pure function of ``(seed, e)`` (``randperm`` from a generator seeded per epoch), so the
whole data position is two integers: the epoch and the number of batches already taken from
it. A checkpoint stores them and a resumed run continues with the very next batch.

With ``world_size`` W > 1 (data parallelism), every global batch holds ``W * batch_size``
consecutive positions of the epoch's order and process ``rank`` takes the ``rank``-th
``batch_size`` of them: together the processes see exactly the batch that one process with
batch size ``W * batch_size`` sees, in rank order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

_EPOCH_STRIDE = 1_000_003  # separates the per-epoch seeds of one node


class ResumableBatchSampler(Sampler[list[int]]):
    """Index batches over ``size`` examples with a savable position; one shard per process.

    Example:
        >>> sampler = ResumableBatchSampler(10, batch_size=4, seed=0)
        >>> first = next(iter(sampler))
        >>> state = sampler.state_dict()  # {'epoch': 0, 'taken': 1}
        >>> again = ResumableBatchSampler(10, batch_size=4, seed=0)
        >>> again.load_state_dict(state)
        >>> next(iter(again)) == list(iter(sampler))[0]
        True
    """

    def __init__(
        self,
        size: int,
        batch_size: int,
        shuffle: bool = True,
        drop_last: bool = True,
        seed: int = 0,
        world_size: int = 1,
        rank: int = 0,
    ) -> None:
        if world_size > 1 and not drop_last:
            raise ValueError("sharded batches need drop_last (every process takes a full share)")
        self.size = size
        self.batch_size = batch_size  # per process
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.world_size = world_size
        self.rank = rank
        self.epoch = 0  # epochs completed
        self.taken = 0  # batches taken from the current epoch
        #: told the epoch as each epoch's batches start (an augmented dataset's ``set_epoch``:
        #: its views are a function of the epoch, so they resume with the position)
        self.on_epoch: Callable[[int], None] | None = None

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.world_size

    def __len__(self) -> int:
        """Batches per epoch (the same on every process)."""
        full, rest = divmod(self.size, self.global_batch)
        return full + (1 if rest and not self.drop_last else 0)

    def order(self, epoch: int) -> list[int]:
        """The positions of epoch ``epoch`` in the order they are served."""
        if not self.shuffle:
            return list(range(self.size))
        generator = torch.Generator().manual_seed(self.seed + epoch * _EPOCH_STRIDE)
        order: list[int] = torch.randperm(self.size, generator=generator).tolist()
        return order

    def __iter__(self) -> Iterator[list[int]]:
        if self.on_epoch is not None:
            self.on_epoch(self.epoch)
        order = self.order(self.epoch)
        while self.taken < len(self):
            start = self.taken * self.global_batch
            shard = order[start : start + self.global_batch]
            self.taken += 1  # counted before yielding: a batch handed out is consumed
            yield shard[self.rank * self.batch_size : (self.rank + 1) * self.batch_size]
        self.epoch += 1
        self.taken = 0

    def state_dict(self) -> dict[str, int]:
        """The data position: epochs completed and batches taken from the current one."""
        return {"epoch": self.epoch, "taken": self.taken}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch = int(state["epoch"])
        self.taken = int(state["taken"])


class ResumableLoader(DataLoader):
    """A DataLoader over a :class:`ResumableBatchSampler`, in the main process.

    It draws its iterators' base seed from a private generator, so starting an epoch never
    consumes the global torch RNG, and it accepts Betty's ``set_epoch`` (the sampler counts
    epochs itself). Loading in the main process (no workers) keeps the sampler's position
    exact: no batch is fetched ahead of its use.

    For a CUDA node (:meth:`to_device`), batches are collated into pinned host memory and
    copied with ``non_blocking=True``: the copy overlaps the work already queued on the GPU.
    """

    batch_sampler: ResumableBatchSampler

    def __init__(self, dataset: Dataset, sampler: ResumableBatchSampler) -> None:
        super().__init__(dataset, batch_sampler=sampler, generator=torch.Generator())
        self.device: torch.device | None = None

    def to_device(self, device: torch.device) -> None:
        """Hand out batches already on ``device`` (pinned + non-blocking copies on CUDA)."""
        if device.type == "cuda":
            self.device = device
            self.pin_memory = True

    def __iter__(self) -> Any:
        batches = super().__iter__()
        if self.device is None:
            return batches
        return (_moved(batch, self.device) for batch in batches)

    def set_epoch(self, epoch: int) -> None:
        """Betty calls this at each epoch under its distributed strategy; nothing to do."""

    def state_dict(self) -> dict[str, int]:
        return self.batch_sampler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.batch_sampler.load_state_dict(state)


class EmptyBatches:
    """The loader of a node that reads no data (a closed-form problem, a loss of parameters
    alone): every batch is the empty tuple ``()``, forever; nothing to save or restore."""

    def __iter__(self) -> Iterator[tuple[()]]:
        while True:
            yield ()

    def set_epoch(self, epoch: int) -> None:
        """Betty calls this at each epoch under its distributed strategy; nothing to do."""

    def state_dict(self) -> dict[str, int]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Nothing was saved."""


def _moved(batch: Any, device: torch.device) -> Any:
    """A collated batch's tensors on ``device`` (non-blocking: they come from pinned memory)."""
    if torch.is_tensor(batch):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, tuple | list):
        return type(batch)(_moved(item, device) for item in batch)
    if isinstance(batch, dict):
        return {key: _moved(value, device) for key, value in batch.items()}
    return batch
