r"""
Joint NER + RE as multi-head selection (Bekoulis et al. 2018) with task-specific BiLSTM layers (Crone 2020).

    embeddings -> shared_encoder -> ner_encoder -> tag decoder (CRF or softmax)          -> entities
                                 \-> re_encoder ++ label embedding of the NER tags      -> relations

Relation scores (Bekoulis eq. 4): for tokens i, j and relation r,
    s(i, j, r) = V_r . f(W z_i + U z_j + b),      P(head i, tail j, r) = sigmoid(s(i, j, r)),
where z is the RE-side encoding joined to the tag's label embedding (gold tags in training, predicted ones
otherwise). A relation links two predicted entities through their last tokens.
"""
from typing import Any, Dict, List, Optional

import torch
from allennlp_light.modules import Seq2SeqEncoder
from allennlp_light.nn import util
from tango.common import Lazy

from joint_ere.common.errors import ConfigurationError, check_dimensions
from joint_ere.data.document import Document, Entity, Relation
from joint_ere.data.instance import ENTITY_LABELS, RELATION_LABELS
from joint_ere.data.vocabulary import Vocabulary
from joint_ere.models.model import Model
from joint_ere.modules.table_scorer import row_blocks
from joint_ere.modules.tagging import CrfTagDecoder, TagDecoder
from joint_ere.modules.token_embedders import TextFieldEmbedder

ACTIVATIONS = {"relu": torch.relu, "tanh": torch.tanh}


@Model.register("multi_head_selection")
class MultiHeadSelection(Model):
    """
    # Parameters

    text_field_embedder : `TextFieldEmbedder`
    shared_encoder, ner_encoder, re_encoder : `Seq2SeqEncoder`
        Any registered encoder; ``{"type": "pass_through", "input_dim": d}`` for zero layers.
    ner_decoder : `TagDecoder`, optional (default = `{"type": "crf", "label_encoding": "BIO"}`)
    label_embedding_dim : `int`, optional (default = `25`)
        Size of the NER tag embedding joined to the RE encoding.
    relation_hidden_dim : `int`, optional (default = `64`)
        Size of ``W z_i + U z_j``.
    activation : `str`, optional (default = `"relu"`)
        ``f`` in the relation score: ``relu`` or ``tanh``.
    re_loss_weight : `float`, optional (default = `1.0`)
        Weight of the relation loss against the NER loss.
    dropout : `float`, optional (default = `0.0`)
        On the embeddings and every encoder's output.
    relation_threshold : `float`, optional (default = `0.5`)
    """

    def __init__(self, vocab: Vocabulary, text_field_embedder: TextFieldEmbedder, shared_encoder: Seq2SeqEncoder,
                 ner_encoder: Seq2SeqEncoder, re_encoder: Seq2SeqEncoder,
                 ner_decoder: Lazy[TagDecoder] = Lazy(CrfTagDecoder), label_embedding_dim: int = 25,
                 relation_hidden_dim: int = 64, activation: str = "relu", re_loss_weight: float = 1.0,
                 dropout: float = 0.0, relation_threshold: float = 0.5) -> None:
        super().__init__(vocab)
        check_dimensions("model.shared_encoder", shared_encoder.get_input_dim(), "the text_field_embedder's output",
                    text_field_embedder.get_output_dim())
        check_dimensions("model.ner_encoder", ner_encoder.get_input_dim(), "model.shared_encoder's output",
                    shared_encoder.get_output_dim())
        check_dimensions("model.re_encoder", re_encoder.get_input_dim(), "model.shared_encoder's output",
                    shared_encoder.get_output_dim())
        if activation not in ACTIVATIONS:
            raise ConfigurationError(f"model.activation: {activation!r} is not one of {sorted(ACTIVATIONS)}")
        self.text_field_embedder = text_field_embedder
        self.shared_encoder = shared_encoder
        self.ner_encoder = ner_encoder
        self.re_encoder = re_encoder
        self.ner_decoder = ner_decoder.construct(input_dim=ner_encoder.get_output_dim(), vocab=vocab)
        self.scheme = self.ner_decoder.scheme
        self.num_relations = vocab.get_vocab_size(RELATION_LABELS)
        self.label_embedding = torch.nn.Embedding(self.ner_decoder.num_tags, label_embedding_dim)
        z_dim = re_encoder.get_output_dim() + label_embedding_dim
        self.head_projection = torch.nn.Linear(z_dim, relation_hidden_dim)  # W (with b)
        self.tail_projection = torch.nn.Linear(z_dim, relation_hidden_dim, bias=False)  # U
        self.relation_scorer = torch.nn.Linear(relation_hidden_dim, max(1, self.num_relations))  # V
        # Almost every (i, j, r) cell is negative; starting near P = 0.01 keeps the summed relation loss from
        # swamping the NER loss in the first steps.
        torch.nn.init.constant_(self.relation_scorer.bias, -4.6)
        self.activation = ACTIVATIONS[activation]
        self.dropout = torch.nn.Dropout(dropout)
        self.re_loss_weight = re_loss_weight
        self.relation_threshold = relation_threshold

    def forward(self, tokens: Dict[str, Dict[str, torch.Tensor]], entities: Optional[torch.Tensor] = None,
                relations: Optional[torch.Tensor] = None, metadata: Optional[List[Document]] = None,
                **_: Any) -> Dict[str, Any]:
        mask = util.get_text_field_mask(tokens)
        batch, length = mask.shape
        embedded = self.dropout(self.text_field_embedder(tokens))
        shared = self.dropout(self.shared_encoder(embedded, mask))
        ner_features = self.dropout(self.ner_encoder(shared, mask))
        tag_logits = self.ner_decoder(ner_features)

        gold_tags = self.scheme.spans_to_tags(entities, length) if entities is not None else None
        if self.training and gold_tags is not None:
            tags_for_re = gold_tags
            predicted_tags = None
        else:
            predicted_tags = self.ner_decoder.decode(tag_logits, mask)
            tags_for_re = predicted_tags

        z = torch.cat([self.dropout(self.re_encoder(shared, mask)), self.label_embedding(tags_for_re)], dim=-1)
        head, tail = self.head_projection(z), self.tail_projection(z)  # W z_i + b, U z_j: (B, T, H)

        output: Dict[str, Any] = {"mask": mask, "tag_logits": tag_logits, "head": head, "tail": tail,
                                  "predicted_tags": predicted_tags, "metadata": metadata}
        if gold_tags is not None and relations is not None:
            ner_loss = self.ner_decoder.loss(tag_logits.float(), gold_tags, mask) / batch  # fp32 under AMP
            re_loss = self._relation_loss(head, tail, self._relation_cells(entities, relations), mask) / batch
            output["ner_loss"], output["re_loss"] = ner_loss, re_loss
            output["loss"] = ner_loss + self.re_loss_weight * re_loss
            self.score_predictions(output)
        return output

    def _score_pairs(self, head: torch.Tensor, tail: torch.Tensor) -> torch.Tensor:
        """s(i, j, r) = V_r . f(W z_i + U z_j + b) for every i of ``head`` and j of ``tail``: (B, I, J, R)."""
        return self.relation_scorer(self.activation(head.unsqueeze(2) + tail.unsqueeze(1)))

    @staticmethod
    def _relation_cells(entities: torch.Tensor, relations: torch.Tensor) -> torch.Tensor:
        """The gold cells (sentence, last token of head, last token of tail, relation): (N, 4)."""
        valid = relations[..., 2] >= 0
        last_token = entities[..., 1] - 1  # (B, E)
        head = last_token.gather(1, relations[..., 0].clamp(min=0))
        tail = last_token.gather(1, relations[..., 1].clamp(min=0))
        rows = torch.arange(entities.size(0), device=entities.device).unsqueeze(1).expand_as(head)
        return torch.stack([rows[valid], head[valid], tail[valid], relations[..., 2][valid]], dim=1)

    def _relation_loss(self, head: torch.Tensor, tail: torch.Tensor, gold: torch.Tensor,
                       mask: torch.Tensor) -> torch.Tensor:
        """Binary cross-entropy summed over the (B, T, T, R) table (row i the head token, column j the tail,
        targets 1 at the ``gold`` cells); at inference a block of rows at a time, so memory stays bounded."""
        batch, length, hidden = head.shape
        total = head.new_zeros((), dtype=torch.float32)
        for rows in row_blocks(batch, length, length, hidden, self.training):
            logits = self._score_pairs(head[:, rows], tail).float()  # fp32 under AMP
            target = torch.zeros_like(logits)
            first, last = rows.start, rows.start + logits.size(1)
            inside = gold[(gold[:, 1] >= first) & (gold[:, 1] < last)]
            target[inside[:, 0], inside[:, 1] - first, inside[:, 2], inside[:, 3]] = 1.0
            pairs = (mask[:, rows].unsqueeze(2) & mask.unsqueeze(1)).unsqueeze(-1).float()
            total = total + torch.nn.functional.binary_cross_entropy_with_logits(logits, target, weight=pairs,
                                                                                 reduction="sum")
        return total

    def make_output_human_readable(self, output_dict: Dict[str, Any]) -> List[Document]:
        mask = output_dict["mask"]
        tags = output_dict["predicted_tags"]
        if tags is None:
            tags = self.ner_decoder.decode(output_dict["tag_logits"], mask)
        lengths = mask.sum(1).tolist()
        tag_probs = torch.softmax(output_dict["tag_logits"].float(), dim=-1)
        chosen = tag_probs.gather(2, tags.unsqueeze(2)).squeeze(2).cpu()
        tags = tags.cpu().tolist()
        spans = [self.scheme.tags_to_spans(row[:length]) for row, length in zip(tags, lengths)]
        entity_labels = self.vocab.get_index_to_token_vocabulary(ENTITY_LABELS)
        relation_labels = self.vocab.get_index_to_token_vocabulary(RELATION_LABELS)
        metadata = output_dict.get("metadata") or [None] * len(tags)
        documents = []
        for row, (length, source) in enumerate(zip(lengths, metadata)):
            entity_list = [Entity(entity_labels[label], start, end, chosen[row, start:end].mean().item())
                           for start, end, label in spans[row]]
            found = self._entity_relations(output_dict["head"][row], output_dict["tail"][row], spans[row])
            relation_list = [Relation(relation_labels[label], head, tail, probability)
                             for head, tail, label, probability in found]
            documents.append(self.predicted_document(source, length, entity_list, relation_list))
        return documents

    def _entity_relations(self, head: torch.Tensor, tail: torch.Tensor, spans: List[tuple]) -> List[tuple]:
        """(head entity, tail entity, relation, probability) for every pair of one sentence's predicted entities
        (through their last tokens) above the threshold. Only these E x E pairs are scored, not all T x T tokens,
        and a block of head entities at a time, so a long sentence with many entities stays bounded."""
        if not spans or not self.num_relations:
            return []
        last = torch.tensor([end - 1 for _, end, _ in spans], device=head.device)
        heads, tails = head[last].unsqueeze(0), tail[last].unsqueeze(0)  # (1, E, H)
        found = []
        for rows in row_blocks(1, len(spans), len(spans), head.size(-1), training=False):
            probs = torch.sigmoid(self._score_pairs(heads[:, rows], tails)[0].float())  # (rows, E, R)
            above = (probs > self.relation_threshold).nonzero()
            values = probs[above[:, 0], above[:, 1], above[:, 2]].tolist()
            for (row, column, label), probability in zip(above.tolist(), values):
                if rows.start + row != column:
                    found.append((rows.start + row, column, label, probability))
        return found
