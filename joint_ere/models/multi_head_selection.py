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

from joint_ere.common.errors import check_dimensions
from joint_ere.data.document import Document, Relation
from joint_ere.data.instance import ENTITY_LABELS, RELATION_LABELS
from joint_ere.data.vocabulary import Vocabulary
from joint_ere.models.model import Model
from joint_ere.modules.heads import SelectionHead
from joint_ere.modules.tagging import CrfTagDecoder, TagDecoder
from joint_ere.modules.token_embedders import TextFieldEmbedder


@Model.register("multi_head_selection")
class MultiHeadSelection(Model):
    """
    # Parameters

    text_field_embedder : `TextFieldEmbedder`
    shared_encoder, ner_encoder, re_encoder : `Seq2SeqEncoder`
        Any registered encoder; ``{"type": "pass_through", "input_dim": d}`` for zero layers.
    ner_decoder : `TagDecoder`, optional (default = `{"type": "crf", "label_encoding": "BIO"}`)
        ``"per_type": true`` tags one sequence per entity type, so entities of different types may overlap.
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

    # Its BiLSTMs' small matrix products keep one core busy far better than they split over two: on the 2-core
    # development VM, CoNLL04 dev predicts at 1,677 sentences/s in two streams against 1,259 in one
    # (RESULTS.md, "Prediction in streams").
    prediction_streams = 0

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
        self.text_field_embedder = text_field_embedder
        self.shared_encoder = shared_encoder
        self.ner_encoder = ner_encoder
        self.re_encoder = re_encoder
        self.ner_decoder = ner_decoder.construct(input_dim=ner_encoder.get_output_dim(), vocab=vocab)
        self.scheme = self.ner_decoder.scheme
        self.num_relations = vocab.get_vocab_size(RELATION_LABELS)
        self.label_embedding = torch.nn.Embedding(self.ner_decoder.num_tags, label_embedding_dim)
        self.relation_head = SelectionHead(re_encoder.get_output_dim() + label_embedding_dim, self.num_relations,
                                           relation_hidden_dim, activation)
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

        labels = self.scheme.embed(self.label_embedding, tags_for_re)
        z = torch.cat([self.dropout(self.re_encoder(shared, mask)), labels], dim=-1)
        head, tail = self.relation_head.project(z)  # W z_i + b, U z_j: (B, T, H)

        output: Dict[str, Any] = {"mask": mask, "tag_logits": tag_logits, "head": head, "tail": tail,
                                  "predicted_tags": predicted_tags, "metadata": metadata}
        if gold_tags is not None and relations is not None:
            ner_loss = self.ner_decoder.loss(tag_logits.float(), gold_tags, mask) / batch  # fp32 under AMP
            gold_cells = self.relation_head.gold_cells(entities, relations)
            re_loss = self.relation_head.loss(head, tail, gold_cells, mask) / batch
            output["ner_loss"], output["re_loss"] = ner_loss, re_loss
            output["loss"] = ner_loss + self.re_loss_weight * re_loss
        return output

    def make_output_human_readable(self, output_dict: Dict[str, Any]) -> List[Document]:
        mask = output_dict["mask"]
        tags = output_dict["predicted_tags"]
        if tags is None:
            tags = self.ner_decoder.decode(output_dict["tag_logits"], mask)
        lengths = mask.sum(1).tolist()
        entity_labels = self.vocab.get_index_to_token_vocabulary(ENTITY_LABELS)
        relation_labels = self.vocab.get_index_to_token_vocabulary(RELATION_LABELS)
        spans, entities = self.scheme.decode_entities(tags, torch.softmax(output_dict["tag_logits"].float(), -1),
                                                      lengths, entity_labels)
        found = self.relation_head.entity_relations(output_dict["head"], output_dict["tail"], spans,
                                                    self.relation_threshold)
        metadata = output_dict.get("metadata") or [None] * len(lengths)
        documents = []
        for length, source, entity_list, row_found in zip(lengths, metadata, entities, found):
            relation_list = [Relation(relation_labels[label], head, tail, probability)
                             for head, tail, label, probability in row_found]
            documents.append(self.predicted_document(source, length, entity_list, relation_list))
        return documents
