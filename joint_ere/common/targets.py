"""0/1 target tables built on the device without a host round trip."""
from typing import Sequence

import torch


def mark_cells(target: torch.Tensor, indices: Sequence[torch.Tensor], valid: torch.Tensor) -> torch.Tensor:
    """``target[indices] = 1`` for the entries where ``valid`` holds, in place; returns ``target`` (contiguous).

    Selecting the valid entries first (``target[index[valid], ...]``) makes the host wait for the device to count
    them, on every training step. Here the entries' indices fold into one flat index, and each cell takes the
    maximum of what it holds and what lands on it, so duplicates stay 1. An entry that is not valid, or whose index
    is outside the table in any dimension (padding may point anywhere), lands on a clamped cell carrying 0, so it
    changes nothing and can never clear a real 1.
    """
    if not target.is_contiguous():
        raise ValueError("mark_cells writes through a flat view: the target must be contiguous")
    if target.numel() == 0:
        return target
    flat = torch.zeros_like(valid, dtype=torch.long)
    keep = valid.clone()
    for index, size, stride in zip(indices, target.shape, target.stride()):
        keep &= (index >= 0) & (index < size)
        flat = flat + index.clamp(0, size - 1) * stride
    target.view(-1).scatter_reduce_(0, flat.reshape(-1), keep.reshape(-1).to(target.dtype), reduce="amax")
    return target
