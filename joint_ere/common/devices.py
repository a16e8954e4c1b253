"""Which torch device a config's (or a command line's) ``cuda_device`` names."""
from typing import Optional, Union

import torch

from joint_ere.common import distributed
from joint_ere.common.errors import ConfigurationError


def resolve_device(cuda_device: Optional[Union[int, str]], key: str = "trainer.cuda_device") -> torch.device:
    if cuda_device is None or cuda_device == -1 or cuda_device == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigurationError(f"{key} is {cuda_device!r}, but this machine has no CUDA device "
                                 f"(use -1 for the CPU)")
    if distributed.world_size() > 1:  # torchrun: one GPU per process
        return torch.device("cuda", distributed.local_rank())
    return torch.device(f"cuda:{cuda_device}" if isinstance(cuda_device, int) else cuda_device)
