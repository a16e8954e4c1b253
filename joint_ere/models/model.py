from typing import Any, Dict, List, Optional

import torch
from tango.common import Registrable

from joint_ere.data.document import Document, Entity, Relation
from joint_ere.data.instance import ENTITY_LABELS
from joint_ere.data.vocabulary import Vocabulary
from joint_ere.metrics import EntityRelationMetrics


class Model(torch.nn.Module, Registrable):
    """
    Base class of the joint models: ``forward(**batch)`` returns a dict with ``"loss"`` when gold labels are
    given; ``make_output_human_readable`` turns that dict into predicted ``Document``s; ``get_metrics``
    reports the entity/relation metrics accumulated on (non-training) forward passes.

    ``prediction_streams``: how many batches a ``Predictor`` runs at once on a CPU unless told (0: one per torch
    thread). One by default; a model whose forward is many small operations (recurrent encoders over short
    sentences) sets 0, having measured that it gains.
    """

    prediction_streams: int = 1

    def __init__(self, vocab: Vocabulary) -> None:
        super().__init__()
        self.vocab = vocab
        self.metrics = EntityRelationMetrics(typed_entities=vocab.get_vocab_size(ENTITY_LABELS) != 1)

    def forward(self, **batch: Any) -> Dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def make_output_human_readable(self, output_dict: Dict[str, Any]) -> List[Document]:
        raise NotImplementedError

    def score_predictions(self, output: Dict[str, Any]) -> None:
        """On an evaluation batch with gold documents: decode it (kept for evaluate's output) and update metrics.
        The evaluation loop calls it after ``forward`` (``joint_ere/training/evaluation.py``)."""
        if not self.training and output.get("metadata") is not None:
            output["documents"] = self.make_output_human_readable(output)
            self.metrics(output["documents"], output["metadata"])

    @staticmethod
    def predicted_document(source: Optional[Document], length: int, entities: List[Entity],
                           relations: List[Relation]) -> Document:
        """A prediction for ``source`` (its tokens and meta), or for ``length`` unnamed words without one."""
        tokens = source.tokens if source is not None else [""] * length
        return Document(list(tokens), entities, relations, dict(source.meta) if source is not None else {})

    def get_metrics(self, reset: bool = False, per_type: bool = False) -> Dict[str, float]:
        return self.metrics.get_metric(reset=reset, per_type=per_type)

    def sum_metrics_across_processes(self) -> None:
        """Distributed training: each process scored its own shard of the validation data; pool the counts."""
        self.metrics.sum_across_processes()

