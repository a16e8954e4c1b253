"""Which torch device a config's (or a command line's) ``cuda_device`` names, and what the CPU can do."""
import functools
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


@functools.lru_cache(maxsize=None)
def onednn_bfloat16() -> bool:
    """Whether oneDNN runs bfloat16 on this CPU (AVX-512 and up; ``ONEDNN_MAX_CPU_ISA`` can lower what it uses)."""
    return torch.backends.mkldnn.is_available() and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


@functools.lru_cache(maxsize=None)
def cpu_has_native_bfloat16() -> bool:
    """Whether the CPU computes in bfloat16 natively (AVX512-BF16 or AMX); older ones emulate it."""
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except (AttributeError, RuntimeError):
        return True  # unknown: no warning
