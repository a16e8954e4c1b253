r"""
Joint NER + RE by table filling (the decoder of the Partition Filter Network, Yan et al. 2021; with the SRN
encoder it is the Cascade-SRN paper's "Table-SRN", Table 6).

    embeddings -> two-task encoder (pfn | srn | shared BiLSTM) -> h_e, h_r, h_er
    entity table    P(words i..j are an entity of type k)  = sigmoid(TableHead(h_e, h_er)[i, j, k]),  i <= j
    relation table  P(relation r from the entity starting at i to the one starting at j)
                                                            = sigmoid(TableHead(h_r, h_er)[i, j, r])

Decoding: every cell over ``threshold`` of the entity table is an entity (overlapping and nested spans are
allowed); a relation links two predicted entities whose first words' cell is over ``threshold``.
The loss is binary cross-entropy summed over the valid cells of both tables, per sentence.
"""
from typing import Any, Dict, List, Optional

import torch
from allennlp_light.nn import util

from joint_ere.common.errors import check_dimensions
from joint_ere.common.targets import mark_cells
from joint_ere.data.document import Document, Entity, Relation
from joint_ere.data.instance import ENTITY_LABELS, RELATION_LABELS
from joint_ere.data.vocabulary import Vocabulary
from joint_ere.models.model import Model
from joint_ere.modules.encoders import MultiTaskEncoder
from joint_ere.modules.heads import TableHead
from joint_ere.modules.token_embedders import TextFieldEmbedder


@Model.register("table_filling")
class TableFilling(Model):
    """
    # Parameters

    text_field_embedder : `TextFieldEmbedder`
    encoder : `MultiTaskEncoder`
        Two tasks: ``pfn``, ``srn`` with ``num_tasks: 2``, or ``shared`` (one BiLSTM for both).
    entity_task, relation_task, shared_task : `str`, optional (default = `"e"`, `"r"`, `"er"`)
        The encoder representations the entity table, the relation table and both tables' summaries read.
    hidden_dim : `int`, optional (default = `150`)
        Size of a table cell before its labels are scored.
    dropout : `float`, optional (default = `0.1`)
        On the embeddings and the table cells.
    threshold : `float`, optional (default = `0.5`)
    re_loss_weight : `float`, optional (default = `1.0`)
    """

    def __init__(self, vocab: Vocabulary, text_field_embedder: TextFieldEmbedder, encoder: MultiTaskEncoder,
                 entity_task: str = "e", relation_task: str = "r", shared_task: str = "er", hidden_dim: int = 150,
                 dropout: float = 0.1, threshold: float = 0.5, re_loss_weight: float = 1.0) -> None:
        super().__init__(vocab)
        check_dimensions("model.encoder", encoder.get_input_dim(), "the text_field_embedder's output",
                         text_field_embedder.get_output_dim())
        encoder.check_provides("model.encoder", "table_filling", 2, [entity_task, relation_task, shared_task])
        self.text_field_embedder = text_field_embedder
        self.encoder = encoder
        self.entity_task, self.relation_task, self.shared_task = entity_task, relation_task, shared_task
        self.num_entity_types = vocab.get_vocab_size(ENTITY_LABELS)
        self.num_relations = vocab.get_vocab_size(RELATION_LABELS)
        size = encoder.get_output_dim()
        self.entity_table = TableHead(size, size, hidden_dim, self.num_entity_types, dropout, upper_triangular=True)
        self.relation_table = TableHead(size, size, hidden_dim, self.num_relations, dropout)
        self.dropout = torch.nn.Dropout(dropout)
        self.threshold = threshold
        self.re_loss_weight = re_loss_weight

    def forward(self, tokens: Dict[str, Dict[str, torch.Tensor]], entities: Optional[torch.Tensor] = None,
                relations: Optional[torch.Tensor] = None, metadata: Optional[List[Document]] = None,
                **_: Any) -> Dict[str, Any]:
        mask = util.get_text_field_mask(tokens)
        states = self.encoder(self.dropout(self.text_field_embedder(tokens)), mask)
        shared = states[self.shared_task]
        entity_target = relation_target = None
        if entities is not None and relations is not None:
            entity_target, relation_target = self._targets(entities, relations, mask.size(1))
        entity = self.entity_table(states[self.entity_task], shared, mask, entity_target)  # (B, T, T, types)
        relation = self.relation_table(states[self.relation_task], shared, mask, relation_target)  # relations
        output: Dict[str, Any] = {"mask": mask, "entity_logits": entity["logits"],
                                  "relation_logits": relation["logits"], "span_mask": entity["cells"],
                                  "metadata": metadata}
        if entity_target is not None:
            output["ner_loss"], output["re_loss"] = entity["loss"], relation["loss"]
            output["loss"] = entity["loss"] + self.re_loss_weight * relation["loss"]
        return output

    def _targets(self, entities: torch.Tensor, relations: torch.Tensor, length: int):
        """0/1 tables: (B, T, T, types) at (first word, last word, type) and (B, T, T, relations) at
        (head entity's first word, tail entity's first word, relation)."""
        batch = entities.size(0)
        device = entities.device
        entity_target = torch.zeros(batch, length, length, max(1, self.num_entity_types), device=device)
        relation_target = torch.zeros(batch, length, length, max(1, self.num_relations), device=device)
        if entities.size(1) == 0:  # no entity slots: nothing to mark, nothing to gather relations from
            return entity_target, relation_target
        rows = torch.arange(batch, device=device).unsqueeze(1)
        starts, ends = entities[..., 0], entities[..., 1] - 1
        mark_cells(entity_target, (rows.expand_as(starts), starts, ends, entities[..., 2]), entities[..., 2] >= 0)
        head = starts.gather(1, relations[..., 0].clamp(min=0))
        tail = starts.gather(1, relations[..., 1].clamp(min=0))
        mark_cells(relation_target, (rows.expand_as(head), head, tail, relations[..., 2]), relations[..., 2] >= 0)
        return entity_target, relation_target

    def make_output_human_readable(self, output_dict: Dict[str, Any]) -> List[Document]:
        # (row, start, last word, type), sorted
        found, entity_probs = TableHead.decode(output_dict["entity_logits"], output_dict["span_mask"], self.threshold)
        relation_probs = torch.sigmoid(output_dict["relation_logits"].float()).cpu()
        entity_labels = self.vocab.get_index_to_token_vocabulary(ENTITY_LABELS)
        relation_labels = self.vocab.get_index_to_token_vocabulary(RELATION_LABELS)
        lengths = output_dict["mask"].sum(1).tolist()
        metadata = output_dict.get("metadata") or [None] * len(lengths)
        per_row: List[List[Entity]] = [[] for _ in lengths]
        for row, start, last, label in found:
            per_row[row].append(Entity(entity_labels[label], start, last + 1,
                                       entity_probs[row, start, last, label].item()))
        documents = []
        for row, (length, source) in enumerate(zip(lengths, metadata)):
            entity_list = per_row[row]
            relation_list: List[Relation] = []
            if entity_list and self.num_relations:
                starts = torch.tensor([entity.start for entity in entity_list])
                probs = relation_probs[row][starts][:, starts]  # (E, E, relations)
                for head, tail, label in (probs > self.threshold).nonzero().tolist():
                    if head != tail:
                        relation_list.append(Relation(relation_labels[label], head, tail,
                                                      probs[head, tail, label].item()))
            documents.append(self.predicted_document(source, length, entity_list, relation_list))
        return documents

