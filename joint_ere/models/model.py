from typing import Any, Dict, List

import torch
from tango.common import Registrable

from joint_ere.data.document import Document
from joint_ere.data.vocabulary import Vocabulary
from joint_ere.metrics import EntityRelationMetrics


class Model(torch.nn.Module, Registrable):
    """
    Base class of the joint models: ``forward(**batch)`` returns a dict with ``"loss"`` when gold labels are
    given; ``make_output_human_readable`` turns that dict into predicted ``Document``s; ``get_metrics``
    reports the entity/relation metrics accumulated on (non-training) forward passes.
    """

    def __init__(self, vocab: Vocabulary) -> None:
        super().__init__()
        self.vocab = vocab
        self.metrics = EntityRelationMetrics()

    def forward(self, **batch: Any) -> Dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def make_output_human_readable(self, output_dict: Dict[str, Any]) -> List[Document]:
        raise NotImplementedError

    def get_metrics(self, reset: bool = False, per_type: bool = False) -> Dict[str, float]:
        return self.metrics.get_metric(reset=reset, per_type=per_type)
