"""
How Cascade-SRN passes what one turn found to the next (§3.4): the entities EE predicted reach subject extraction,
and the entities plus one subject reach subject-oriented object extraction. A ``Fusion`` turns them into the token
representations the SE and SOE heads read: ``late`` (§3.4.2) by embedding tags beside one shared encoding,
``early`` (§3.4.1) by inserting text markers and encoding the sentence again.
"""
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Sequence, Tuple

import torch
from tango.common import Registrable

ENTITY_TASKS = ("e", "es", "eo", "eso")  # eq. 11: what each turn reads of the three-task encoder
SUBJECT_TASKS = ("s", "es", "so", "eso")
OBJECT_TASKS = ("o", "eo", "so", "eso")

Span = Tuple[int, int]  # start, end (exclusive)
TypedSpan = Tuple[int, int, int]  # start, end (exclusive), entity type


@dataclass
class EncodedText:
    """One batch as the model encoded it: the indexer tensors, the word mask (B, T), the encoder's named
    representations (B, T, d), and the model's encoding function (text field tensors -> representations), which
    early fusion calls again on marked text."""

    tokens: Dict[str, Dict[str, torch.Tensor]]
    mask: torch.Tensor
    states: Dict[str, torch.Tensor]
    encode: Callable[[Dict[str, Dict[str, torch.Tensor]]], Dict[str, torch.Tensor]]
    cache: Dict[str, Tuple[object, Any]] = field(default_factory=dict)

    def once(self, name: str, source: object, compute: Callable[[], Any]) -> Any:
        """``compute()``, kept for this batch while ``source`` is the same object: SE and SOE of one batch ask
        for the same entity tags or wordpiece lists, and need them built (and copied from the device) once."""
        kept = self.cache.get(name)
        if kept is None or kept[0] is not source:
            kept = self.cache[name] = (source, compute())
        return kept[1]


class Fusion(torch.nn.Module, Registrable):
    """Builds SE's and SOE's inputs from the prior information. Subclasses give their sizes to the model."""

    default_implementation = "late"

    def get_subject_dim(self) -> int:
        raise NotImplementedError

    def get_object_dim(self) -> int:
        raise NotImplementedError

    def subject_states(self, text: EncodedText, entities: List[List[TypedSpan]]) -> torch.Tensor:
        """ĥ_s (B, T, subject dim) for every sentence, given its entities (gold in training, EE's at inference)."""
        raise NotImplementedError

    def object_states(self, text: EncodedText, entities: List[List[TypedSpan]], rows: List[int],
                      subjects: List[Span]) -> torch.Tensor:
        """ĥ_o (P, T, object dim) for P (sentence row, subject) pairs, all pairs of the batch in one tensor; the
        mask of pair p is ``text.mask[rows[p]]``."""
        raise NotImplementedError


def join(states: Dict[str, torch.Tensor], names: Sequence[str]) -> torch.Tensor:
    return torch.cat([states[name] for name in names], dim=-1)
