"""Batches of padded tensors from indexed instances: plain (optionally shuffled) or length-bucketed."""
import math
import random
from typing import Dict, Iterator, List, Optional

import torch
from tango.common import FromParams, Registrable

from joint_ere.common import distributed
from joint_ere.common.errors import ConfigurationError
from joint_ere.data.instance import Instance
from joint_ere.data.vocabulary import Vocabulary


class BatchSampler(Registrable):
    default_implementation = "bucket"

    def get_batch_indices(self, instances: List[Instance]) -> List[List[int]]:
        raise NotImplementedError


@BatchSampler.register("bucket")
class BucketBatchSampler(BatchSampler):
    """
    Groups sentences of similar length so little padding is computed (AllenNLP's ``bucket``).

    # Parameters

    batch_size : `int`
    padding_noise : `float`, optional (default = `0.1`)
        Lengths are jittered by up to this fraction before sorting, so batches differ between epochs.
    shuffle : `bool`, optional (default = `True`)
        Shuffle the order of the batches.
    """

    def __init__(self, batch_size: int, padding_noise: float = 0.1, shuffle: bool = True,
                 drop_last: bool = False) -> None:
        if batch_size < 1:
            raise ConfigurationError("batch_size must be at least 1")
        self.batch_size = batch_size
        self.padding_noise = padding_noise
        self.shuffle = shuffle
        self.drop_last = drop_last

    def get_batch_indices(self, instances: List[Instance]) -> List[List[int]]:
        def noisy(i: int) -> float:
            length = len(instances[i])
            noise = random.uniform(-self.padding_noise, self.padding_noise) if self.shuffle else 0.0
            return length * (1.0 + noise)

        order = sorted(range(len(instances)), key=noisy)
        batches = [order[i: i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        if self.shuffle:
            random.shuffle(batches)
        return batches


class DataLoader(FromParams):
    """
    # Parameters

    batch_size : `int`, optional
        Sentences per batch (give this or ``batch_sampler``).
    shuffle : `bool`, optional (default = `False`)
    batch_sampler : `BatchSampler`, optional
        E.g. ``{"type": "bucket", "batch_size": 32}``.
    """

    def __init__(self, instances: List[Instance], batch_size: Optional[int] = None, shuffle: bool = False,
                 batch_sampler: Optional[BatchSampler] = None, drop_last: bool = False) -> None:
        if (batch_size is None) == (batch_sampler is None):
            raise ConfigurationError("give exactly one of batch_size and batch_sampler")
        self.instances = instances
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.batch_sampler = batch_sampler
        self.drop_last = drop_last
        self.device = torch.device("cpu")
        self.vocab: Optional[Vocabulary] = None
        self.num_shards, self.shard, self.equal_shards = 1, 0, True

    def set_shard(self, shard: int, num_shards: int, equal: bool) -> None:
        """
        Distributed training: this process gets batches ``shard``, ``shard + num_shards``, ... of each epoch's
        list (drawn once, on rank 0, and broadcast), so the ranks' batches at one step are consecutive batches
        of a single process's epoch. ``equal`` (training) tops the shorter shards up with batches from the start
        of the list, as every rank must take the same number of steps; validation shards stay unequal, so every
        sentence is scored once.
        """
        if not 0 <= shard < num_shards:
            raise ValueError(f"shard {shard} of {num_shards}")
        self.num_shards, self.shard, self.equal_shards = num_shards, shard, equal

    def index_with(self, vocab: Vocabulary) -> None:
        self.vocab = vocab
        for instance in self.instances:
            instance.index_fields(vocab)

    def set_target_device(self, device: torch.device) -> None:
        self.device = device

    def _batches(self) -> List[List[int]]:
        if self.batch_sampler is not None:
            return self.batch_sampler.get_batch_indices(self.instances)
        order = list(range(len(self.instances)))
        if self.shuffle:
            random.shuffle(order)
        size = self.batch_size or 1
        batches = [order[i: i + size] for i in range(0, len(order), size)]
        if self.drop_last and batches and len(batches[-1]) < size:
            batches.pop()
        return batches

    def _sharded(self, batches: List[List[int]]) -> List[List[int]]:
        if self.num_shards == 1:
            return batches
        batches = distributed.broadcast(batches)  # rank 0's draw of this epoch, the same on every rank
        mine = batches[self.shard:: self.num_shards]
        if self.equal_shards and batches:
            wanted = math.ceil(len(batches) / self.num_shards)
            mine += [batches[i % len(batches)] for i in range(wanted - len(mine))]
        return mine

    def _num_batches(self) -> int:
        size = self.batch_sampler.batch_size if self.batch_sampler is not None else self.batch_size
        count, rest = divmod(len(self.instances), size)
        return count + (1 if rest and not self.drop_last else 0)

    def __len__(self) -> int:
        """Batches of this process (of its shard in a distributed run)."""
        total = self._num_batches()
        if self.num_shards == 1:
            return total
        if self.equal_shards:
            return math.ceil(total / self.num_shards)
        return len(range(self.shard, total, self.num_shards))

    def __iter__(self) -> Iterator[Dict]:
        if self.vocab is None:
            raise RuntimeError("call index_with(vocab) before iterating over a DataLoader")
        for indices in self._sharded(self._batches()):
            yield move_to_device(batch_instances([self.instances[i] for i in indices]), self.device)


def batch_instances(instances: List[Instance]) -> Dict:
    """Pads one batch: ``tokens`` (AllenNLP TextFieldTensors), ``entities``/``relations`` (B, N, 3; -1 pads)."""
    length = max(len(instance) for instance in instances)
    tokens: Dict[str, Dict[str, torch.Tensor]] = {}
    for name, indexer in instances[0].token_indexers.items():
        tokens[name] = indexer.as_padded_tensor([inst.indexed[name] for inst in instances], length)
    return {
        "tokens": tokens,
        "entities": _pad_triples([inst.entities for inst in instances]),
        "relations": _pad_triples([inst.relations for inst in instances]),
        "metadata": [inst.document for inst in instances],
    }


def _pad_triples(rows: List[list]) -> torch.Tensor:
    width = max(1, max(len(r) for r in rows))
    out = torch.full((len(rows), width, 3), -1, dtype=torch.long)
    for i, row in enumerate(rows):
        if row:
            out[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return out


def move_to_device(obj, device: torch.device):
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True) if obj.device != device else obj
    if isinstance(obj, dict):
        return {k: move_to_device(v, device) for k, v in obj.items()}
    return obj
