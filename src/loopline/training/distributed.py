"""What the trainer needs to run as one of several ``torchrun`` processes (``torch.distributed``).

Inside a process group every rank trains on its share of each global batch (``batch_size`` stays the
global batch, so a run on N processes takes the same optimiser steps as on one), DDP averages the
gradients, and the epoch's loss and counts are summed over ranks. Only rank 0 validates, checkpoints,
saves the model and reports; the others receive its validation scores, so every rank takes the same
early-stopping decision. Outside a process group (one process) everything here is a no-op.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from loopline.training.batching import LengthGroupedSampler


@dataclass(frozen=True)
class Ranks:
    """This process's place in the job: ``rank`` of ``world_size``, ``local_rank`` on its node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def current_ranks() -> Ranks:
    """The ranks of an initialised process group, else a single process."""
    if not (dist.is_available() and dist.is_initialized()):
        return Ranks()
    return Ranks(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def init_process_group(device_type: str) -> Ranks:
    """Join the job torchrun started (``RANK``/``WORLD_SIZE``/``MASTER_ADDR`` in the environment):
    NCCL on GPUs, gloo on CPUs."""
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    return current_ranks()


def sum_over_ranks(*values: float) -> list[float]:
    """Each value summed over all ranks (unchanged in a single process)."""
    if not current_ranks().distributed:
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.tolist()


def from_main(*values: float) -> list[float]:
    """Rank 0's values on every rank (unchanged in a single process)."""
    if not current_ranks().distributed:
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64)
    dist.broadcast(tensor, src=0)
    return tensor.tolist()


def barrier() -> None:
    if current_ranks().distributed:
        dist.barrier()


class DistributedLengthGroupedSampler(LengthGroupedSampler):
    """The single-process sampler's global batches, each cut into ``world_size`` interleaved shards.

    Every rank computes the same global batches (same seed and epoch) and takes ``batch[rank::world]``:
    shards of a length-sorted batch have similar lengths, so ranks wait little for each other. A last
    batch smaller than the world is repeated cyclically so that no rank gets an empty shard (DDP needs
    every rank in every step).
    """

    def __init__(self, lengths: np.ndarray, batch_size: int, seed: int, ranks: Ranks) -> None:
        super().__init__(lengths, batch_size, seed=seed)
        self.ranks = ranks

    def batches(self) -> list[list[int]]:
        world, rank = self.ranks.world_size, self.ranks.rank
        shards = []
        for batch in super().batches():
            if len(batch) < world:
                batch = (batch * world)[:world]
            shards.append(batch[rank::world])
        return shards
