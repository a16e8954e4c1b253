"""
Training on several processes, one per GPU (or several on the CPU), started by ``torchrun``::

    torchrun --nproc_per_node 4 -m joint_ere train CONFIG -s DIR

``torchrun`` names each process's place in the environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``, ``MASTER_PORT``); :func:`init_from_environment` joins the process group from it (NCCL for a
CUDA trainer, gloo on the CPU). Everything else asks :func:`world_size` and :func:`rank`, which answer 1 and 0
in a plain run, so a single process takes exactly the code path it always took.
"""
import logging
import os
from typing import Any, List

import torch
import torch.distributed as dist

logger = logging.getLogger(__name__)


def launched_by_torchrun() -> bool:
    """Whether this process is one of several that ``torchrun`` (or a launcher like it) started."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    return dist.get_world_size() if is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if is_initialized() else 0


def is_primary() -> bool:
    """Rank 0: the one process that writes the serialization directory and logs progress."""
    return rank() == 0


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def init_from_environment(cuda: bool) -> None:
    """Joins the process group ``torchrun`` set up; a CUDA run puts each process on its own GPU (LOCAL_RANK)."""
    if is_initialized():
        return
    if cuda:
        torch.cuda.set_device(local_rank())
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    logger.info("process %d of %d (%s)", rank(), world_size(), dist.get_backend())


def shutdown() -> None:
    if is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if is_initialized():
        dist.barrier()


def broadcast(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (any picklable object)."""
    if not is_initialized():
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def all_gather(obj: Any) -> List[Any]:
    """Every rank's ``obj``, in rank order, on every rank."""
    if not is_initialized():
        return [obj]
    gathered: List[Any] = [None] * world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def sum_floats(*values: float) -> List[float]:
    """The sums over ranks of a few numbers (one collective for all of them)."""
    if not is_initialized():
        return list(values)
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()
