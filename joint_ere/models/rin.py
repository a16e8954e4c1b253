r"""
RIN, the Recurrent Interaction Network (Sun et al., EMNLP 2020; slides in ``../shared/papers``): NER and RE share
an encoder, and K rounds of an interaction module feed each word's relation scores and tag distribution back
into the relation features.

    H = [h_1 ... h_n] = Encoder(words)
    H̃ = ReLU(W_r H + b_r)          relation features (f_r)        H̄ = ReLU(W_e H + b_e)   entity features (f_g)
    NER   ȳ_i = softmax(W_g h̄_i + b_g)                           over BIOES tags
    RE    p(<w_i, t, w_j>) = σ(W_p φ(W_m h̃_i + W_r' h̃_j + b) + b_t)     for every pair and relation (SelectionHead)
    INT   ŷ_i = [max_j p(<w_i, t_1, w_j>), ..., max_j p(<w_i, t_l, w_j>)]
          x_i = φ(W_a [ŷ_i ; ȳ_i ; h_i] + b_a)
    GRU   z = σ(W_z [h̃ ; x])    u = σ(W_u [h̃ ; x])    ȟ = tanh(W_o [u * h̃ ; x])    h̃ <- (1 - z) * h̃ + z * ȟ

Beyond the paper: ``task_encoder`` (a two-task encoder of the library: ``pfn``, ``srn``, ``shared``) in place of
``encoder`` gives the projections partitioned states: f_g reads [h_e ; h_er], f_r reads [h_r ; h_er], and INT's
h is [h_e ; h_r ; h_er].

INT and GRU run ``rounds`` (K) times; NER and RE are scored on the last features, and the loss is NER cross-entropy
plus RE binary cross-entropy over every (w, t, w') (both summed, divided by the batch size). K = 0 is the paper's
BiLSTM_s baseline. φ is ReLU. The official code differs from the slides (no W_a: two GRU cells, one fed ŷ and
one ȳ, whose outputs are added to H, updating H̄ too); this follows the slides.

Decoding: the entities are the BIOES spans of the NER tags; every (i, t, j) cell above ``relation_threshold`` is
a triple, as RIN's evaluation counts them (i = j included: in partial-match data a subject and its object may be
one word, e.g. "University of Texas" locatedIn "Texas"), and its arguments are the predicted entities ending at
tokens i and j, or a one-token entity there when NER predicted none (typed by the token's most probable tag).
"""
import math
from typing import Any, Dict, List, Optional, Tuple

import torch
from allennlp_light.modules import Seq2SeqEncoder
from allennlp_light.nn import util

from joint_ere.common.blocks import row_blocks
from joint_ere.common.errors import ConfigurationError, check_dimensions
from joint_ere.data.document import Document, Entity, Relation
from joint_ere.data.instance import ENTITY_LABELS, RELATION_LABELS
from joint_ere.data.vocabulary import Vocabulary
from joint_ere.models.model import Model
from joint_ere.modules.encoders import MultiTaskEncoder
from joint_ere.modules.heads import SelectionHead
from joint_ere.modules.tagging import SoftmaxTagDecoder
from joint_ere.modules.token_embedders import TextFieldEmbedder

TASKS = ("e", "r", "er")  # what a two-task encoder gives RIN


class InteractionUpdate(torch.nn.Module):
    """INT and GRU of one round: the interaction feature x from ŷ, ȳ and h, then the gated update of h̃."""

    def __init__(self, num_relations: int, num_tags: int, encoder_dim: int, feature_dim: int,
                 interaction_dim: int) -> None:
        super().__init__()
        self.interaction = torch.nn.Linear(num_relations + num_tags + encoder_dim, interaction_dim)  # W_a, b_a
        self.update_gate = torch.nn.Linear(feature_dim + interaction_dim, feature_dim)  # W_z
        self.reset_gate = torch.nn.Linear(feature_dim + interaction_dim, feature_dim)  # W_u
        self.candidate = torch.nn.Linear(feature_dim + interaction_dim, feature_dim)  # W_o

    def forward(self, features: torch.Tensor, relation_max: torch.Tensor, tag_distribution: torch.Tensor,
                encoded: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.interaction(torch.cat([relation_max, tag_distribution, encoded], dim=-1)))
        joined = torch.cat([features, x], dim=-1)
        z = torch.sigmoid(self.update_gate(joined))
        u = torch.sigmoid(self.reset_gate(joined))
        candidate = torch.tanh(self.candidate(torch.cat([u * features, x], dim=-1)))
        return (1 - z) * features + z * candidate


@Model.register("rin")
class RecurrentInteractionNetwork(Model):
    """
    # Parameters

    text_field_embedder : `TextFieldEmbedder`
        Words and characters (GloVe + a character CNN), or a transformer.
    encoder : `Seq2SeqEncoder`, optional
        The shared encoder (the paper: one BiLSTM).
    task_encoder : `MultiTaskEncoder`, optional
        Instead of ``encoder``: two tasks ``e`` and ``r`` (e.g. ``pfn``, or ``srn`` with ``num_tasks: 2``).
    feature_dim : `int`, optional (default = `100`)
        Size of H̃ and H̄.
    relation_hidden_dim : `int`, optional (default = `100`)
        Size of ``W_m h̃_i + W_r' h̃_j``.
    interaction_dim : `int`, optional (default = `100`)
        Size of x.
    rounds : `int`, optional (default = `3`)
        K; 0 for the BiLSTM_s baseline.
    dropout : `float`, optional (default = `0.1`)
        On the embeddings and the encoder's output.
    relation_threshold : `float`, optional (default = `0.5`)
    """

    def __init__(self, vocab: Vocabulary, text_field_embedder: TextFieldEmbedder,
                 encoder: Optional[Seq2SeqEncoder] = None, task_encoder: Optional[MultiTaskEncoder] = None,
                 feature_dim: int = 100, relation_hidden_dim: int = 100, interaction_dim: int = 100,
                 rounds: int = 3, dropout: float = 0.1, relation_threshold: float = 0.5) -> None:
        super().__init__(vocab)
        if (encoder is None) == (task_encoder is None):
            raise ConfigurationError("model: give exactly one of encoder and task_encoder")
        key = "model.encoder" if encoder is not None else "model.task_encoder"
        shared = encoder if encoder is not None else task_encoder
        check_dimensions(key, shared.get_input_dim(), "the text_field_embedder's output",
                         text_field_embedder.get_output_dim())
        if task_encoder is not None:
            task_encoder.check_provides(key, "rin", 2, TASKS)
        if rounds < 0:
            raise ConfigurationError(f"model.rounds must be 0 or more, not {rounds}")
        self.text_field_embedder = text_field_embedder
        self.encoder = encoder
        self.task_encoder = task_encoder
        size = shared.get_output_dim()
        task_size, size = (size, size) if task_encoder is None else (2 * size, 3 * size)
        self.relation_features = torch.nn.Linear(task_size, feature_dim)  # f_r: W_r, b_r
        self.entity_features = torch.nn.Linear(task_size, feature_dim)  # f_g: W_e, b_e
        self.ner_decoder = SoftmaxTagDecoder(feature_dim, vocab, label_encoding="BIOUL")  # W_g, b_g; BIOES
        self.scheme = self.ner_decoder.scheme
        self.num_relations = vocab.get_vocab_size(RELATION_LABELS)
        self.relation_head = SelectionHead(feature_dim, self.num_relations, relation_hidden_dim, "relu")
        self.update = InteractionUpdate(max(1, self.num_relations), self.ner_decoder.num_tags, size, feature_dim,
                                        interaction_dim)
        self.rounds = rounds
        self.dropout = torch.nn.Dropout(dropout)
        self.relation_threshold = relation_threshold

    def forward(self, tokens: Dict[str, Dict[str, torch.Tensor]], entities: Optional[torch.Tensor] = None,
                relations: Optional[torch.Tensor] = None, metadata: Optional[List[Document]] = None,
                **_: Any) -> Dict[str, Any]:
        mask = util.get_text_field_mask(tokens)
        batch, length = mask.shape
        entity_input, relation_input, encoded = self._encode(self.dropout(self.text_field_embedder(tokens)), mask)
        features = torch.relu(self.relation_features(relation_input))  # H̃
        tag_logits = self.ner_decoder(torch.relu(self.entity_features(entity_input)))  # from H̄
        tag_distribution = torch.softmax(tag_logits, dim=-1)  # ȳ
        for _ in range(self.rounds):
            head, tail = self.relation_head.project(features)
            features = self.update(features, self.relation_max(head, tail, mask), tag_distribution, encoded)
        head, tail = self.relation_head.project(features)
        output: Dict[str, Any] = {"mask": mask, "tag_logits": tag_logits, "head": head, "tail": tail,
                                  "metadata": metadata}
        if entities is not None and relations is not None:
            gold_tags = self.scheme.spans_to_tags(entities, length)
            ner_loss = self.ner_decoder.loss(tag_logits.float(), gold_tags, mask) / batch
            gold_cells = self.relation_head.gold_cells(entities, relations)
            re_loss = self.relation_head.loss(head, tail, gold_cells, mask) / batch
            output.update(ner_loss=ner_loss, re_loss=re_loss, loss=ner_loss + re_loss)
        return output

    def _encode(self, embedded: torch.Tensor, mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """What f_g and f_r read, and INT's h: H three times, or the partitioned states."""
        if self.encoder is not None:
            encoded = self.dropout(self.encoder(embedded, mask))
            return encoded, encoded, encoded
        states = {name: self.dropout(value) for name, value in self.task_encoder(embedded, mask).items()}
        e, r, er = (states[name] for name in TASKS)
        return torch.cat([e, er], -1), torch.cat([r, er], -1), torch.cat([e, r, er], -1)

    def relation_max(self, head: torch.Tensor, tail: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """ŷ: for each word i and relation t, the largest p(<w_i, t, w_j>) over the real words j: (B, T, R).
        The sigmoid is monotone, so this is the sigmoid of the largest logit: the (B, T, T, R) table of logits is
        reduced before any sigmoid (a sentence with no real word gets 0). A block of rows at a time at inference."""
        batch, length, hidden = head.shape
        padding = ~mask[:, None, :, None]
        parts = []
        for rows in row_blocks(batch, length, length, hidden, self.training):
            logits = self.relation_head.score(head[:, rows], tail).masked_fill_(padding, float("-inf"))
            parts.append(torch.sigmoid(logits.amax(dim=2)))
        return torch.cat(parts, dim=1)

    # -- documents ----------------------------------------------------------------------------------------
    def make_output_human_readable(self, output_dict: Dict[str, Any]) -> List[Document]:
        mask = output_dict["mask"]
        tag_probabilities = torch.softmax(output_dict["tag_logits"].float(), dim=-1)
        tags = self.ner_decoder.decode(output_dict["tag_logits"], mask)
        best_entity_tag = (tag_probabilities[..., 1:].argmax(-1) + 1).cpu().tolist() if self.scheme.entity_labels \
            else None  # the most probable entity tag of each token, for arguments NER did not find
        lengths = mask.sum(1).tolist()
        entity_labels = self.vocab.get_index_to_token_vocabulary(ENTITY_LABELS)
        relation_labels = self.vocab.get_index_to_token_vocabulary(RELATION_LABELS)
        metadata = output_dict.get("metadata") or [None] * len(lengths)
        cells_of = self._cells(output_dict["head"], output_dict["tail"], mask)
        spans_of, entities_of = self.scheme.decode_entities(tags, tag_probabilities, lengths, entity_labels)
        documents = []
        for row, (length, source, spans, entities) in enumerate(zip(lengths, metadata, spans_of, entities_of)):
            ending_at = {end - 1: index for index, (_, end, _) in enumerate(spans)}
            relations = []
            for first, second, label, probability in cells_of[row] if best_entity_tag is not None else []:
                arguments = []
                for token in (first, second):
                    if token not in ending_at:  # a relation argument NER did not find: a one-token entity
                        ending_at[token] = len(entities)
                        entity_label = divmod(best_entity_tag[row][token] - 1, self.scheme.width)[0]
                        entities.append(Entity(entity_labels[entity_label], token, token + 1,
                                               tag_probabilities[row, token, best_entity_tag[row][token]].item()))
                    arguments.append(ending_at[token])
                relations.append(Relation(relation_labels[label], *arguments, probability))
            documents.append(self.predicted_document(source, length, entities, relations))
        return documents

    def _cells(self, head: torch.Tensor, tail: torch.Tensor, mask: torch.Tensor
               ) -> List[List[Tuple[int, int, int, float]]]:
        """For each sentence of the batch, (i, j, relation, probability) of its cells above the threshold. The
        whole batch is scored at once (a block of rows at a time) and compared in logit space, so the sigmoid
        runs only on the candidates and the host reads back only them."""
        found: List[List[Tuple[int, int, int, float]]] = [[] for _ in range(head.size(0))]
        if not self.num_relations:
            return found
        threshold = self.relation_threshold
        # p > t  <=>  logit > log(t / (1 - t)); a small margin keeps the exact test on probabilities
        margin = math.log(threshold) - math.log1p(-threshold) - 1e-3 if 0.0 < threshold < 1.0 else float("-inf")
        batch, length, hidden = head.shape
        pairs = (mask[:, :, None] & mask[:, None, :]).unsqueeze(-1)
        for rows in row_blocks(batch, length, length, hidden, training=False):
            logits = self.relation_head.score(head[:, rows], tail).float()
            candidates = ((logits > margin) & pairs[:, rows]).nonzero()
            probabilities = torch.sigmoid(logits[tuple(candidates.unbind(1))])
            keep = probabilities > threshold
            for (sentence, i, j, label), probability in zip(candidates[keep].tolist(), probabilities[keep].tolist()):
                found[sentence].append((rows.start + i, j, label, probability))
        return found
