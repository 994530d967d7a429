"""Training on several processes with DistributedDataParallel, started by `torchrun`.

`torchrun` gives each process RANK, WORLD_SIZE and LOCAL_RANK; without them (WORLD_SIZE unset or 1)
everything here is a no-op and a run is the single-process run it always was. With them, each
process trains on its own share of every epoch's samples on its own device (GPU `LOCAL_RANK`, or a
CPU share with the gloo backend), gradients are averaged by DDP, and one process, the leader (rank
0), writes the run directory: the others never touch a file the leader writes, so the run
directory is the same as a single process's, and a run can be resumed with any number of processes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

GROUP_TIMEOUT = timedelta(minutes=30)  # the leader prepares a night's footage while the others wait


@dataclass(frozen=True)
class Group:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def leader(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def share(self, value):
        """The leader's `value`, on every process (the leader's decision, taken once)."""
        if not self.distributed:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def join_group(device_type: str) -> Group:
    """This process's place in the `torchrun` group (joined on first call), or the single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Group()
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, timeout=GROUP_TIMEOUT)
    return Group(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def leave_group(group: Group) -> None:
    if group.distributed and dist.is_initialized():
        dist.destroy_process_group()


@contextmanager
def leader_first(group: Group) -> Iterator[None]:
    """The leader does the block first (writes the files, fills the caches); the others do it after,
    finding them there."""
    if not group.leader:
        group.barrier()
    yield
    if group.leader:
        group.barrier()


def process_device(device: torch.device, group: Group) -> torch.device:
    """Each process its own GPU; CPU processes share the CPU."""
    if device.type == "cuda" and group.distributed:
        torch.cuda.set_device(group.local_rank)
        return torch.device("cuda", group.local_rank)
    return device
