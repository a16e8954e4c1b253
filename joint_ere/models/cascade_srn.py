r"""
Cascade-SRN (Wang et al., "Towards Effective Multi-Task Interaction for Entity-Relation Extraction") with late
fusion (§3.4.2): one encoding of the sentence by a three-task encoder (the SRN: e, s, o and the shared e, s, o
subsets), read by three span-extraction turns in a cascade:

    EE   entities, typed by entity type            over  h_e = [h_e, h_es, h_eo, h_eso]                    (eq. 11)
    SE   subjects (one label)                      over  h_s = [T^e(entity tag), h_s, h_es, h_so, h_eso]
    SOE  objects of one subject, typed by relation over  h_o = [T^e(entity tag), h_o, h_eo, h_so, h_eso, T^s(subject tag)]

T^e ((|E| + 1) x d_t) embeds each token's entity tag (its entity's type, or none) and T^s (2 x d_t) whether the
token is inside the subject. In training the tags come from the gold entities (appendix B) and every gold entity
is a candidate subject for SOE (``training_subjects``); at inference they come from EE's and SE's predictions.
Every turn is a ``SpanExtractionHead`` (appendix A, eqs. 12-15); the loss is L_e + L_s + L_o (eq. 15).

Beyond the paper's text: eq. 12 scores every token by itself, and under late fusion only the subject's own tokens
carry the subject tag, so a token's object score could not depend on where the subject is. Optional fusion
encoders (any Seq2SeqEncoder, e.g. a one-layer BiLSTM) run over h_s and h_o before their heads, so every token sees
the tags; they cost one small recurrent pass per candidate subject, not a new encoding of the sentence.

A predicted relation is (subject span, object span, relation type); it is kept when both spans are entities that
EE predicted (their types are EE's), so NER is EE's output and the document schema is unchanged.
"""
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from allennlp_light.modules import Seq2SeqEncoder
from allennlp_light.nn import util
from tango.common import Lazy

from joint_ere.common.errors import ConfigurationError
from joint_ere.data.document import Document, Entity, Relation
from joint_ere.data.instance import ENTITY_LABELS, RELATION_LABELS
from joint_ere.data.vocabulary import Vocabulary
from joint_ere.models.model import Model, check_dimensions
from joint_ere.modules.encoders import MultiTaskEncoder
from joint_ere.modules.heads import SpanExtractionHead
from joint_ere.modules.token_embedders import TextFieldEmbedder

ENTITY_TASKS = ("e", "es", "eo", "eso")  # eq. 11: what each turn reads of the encoder
SUBJECT_TASKS = ("s", "es", "so", "eso")
OBJECT_TASKS = ("o", "eo", "so", "eso")
TRAINING_SUBJECTS = ("gold_entities", "gold_subjects")

Span = Tuple[int, int]  # start, end (exclusive)


@Model.register("cascade_srn")
class CascadeSrn(Model):
    """
    # Parameters

    text_field_embedder : `TextFieldEmbedder`
    encoder : `MultiTaskEncoder`
        Three tasks named ``e, s, o``: ``srn`` with ``num_tasks: 3`` (optionally bidirectional), or ``shared``
        with ``num_tasks: 3`` (one BiLSTM for every task: the encoder ablation of Table 2).
    type_embedding_dim : `int`, optional (default = `32`)
        d_t, the size of the entity-tag and subject-tag embeddings.
    entity_head, subject_head, object_head : `SpanExtractionHead`, optional
        Loss weights (alpha, beta, gamma of eq. 15) and thresholds of each turn; sizes are set by the model.
    subject_fusion_encoder, object_fusion_encoder : `Seq2SeqEncoder`, optional
        Run over h_s and h_o (inputs d_t + 4 d and 2 d_t + 4 d, d the encoder's output size); their outputs feed
        the subject and object heads. Without them (the paper's equations taken literally) SOE cannot tell
        subjects apart.
    training_subjects : `str`, optional (default = `"gold_entities"`)
        The candidate subjects SOE is trained on: every gold entity (the paper's answer to exposure bias) or only
        the gold subjects.
    dropout : `float`, optional (default = `0.1`)
        On the embeddings and the encoder's representations.
    """

    def __init__(self, vocab: Vocabulary, text_field_embedder: TextFieldEmbedder, encoder: MultiTaskEncoder,
                 type_embedding_dim: int = 32, entity_head: Lazy[SpanExtractionHead] = Lazy(SpanExtractionHead),
                 subject_head: Lazy[SpanExtractionHead] = Lazy(SpanExtractionHead),
                 object_head: Lazy[SpanExtractionHead] = Lazy(SpanExtractionHead),
                 subject_fusion_encoder: Optional[Seq2SeqEncoder] = None,
                 object_fusion_encoder: Optional[Seq2SeqEncoder] = None,
                 training_subjects: str = "gold_entities", dropout: float = 0.1) -> None:
        super().__init__(vocab)
        check_dimensions("model.encoder", encoder.get_input_dim(), "the text_field_embedder's output",
                         text_field_embedder.get_output_dim())
        encoder.check_provides("model.encoder", "cascade_srn", 3, sorted(set(ENTITY_TASKS + SUBJECT_TASKS
                                                                              + OBJECT_TASKS)))
        if training_subjects not in TRAINING_SUBJECTS:
            raise ConfigurationError(f"model.training_subjects: {training_subjects!r} is not one of "
                                     f"{', '.join(TRAINING_SUBJECTS)}")
        self.text_field_embedder = text_field_embedder
        self.encoder = encoder
        self.training_subjects = training_subjects
        self.num_entity_types = vocab.get_vocab_size(ENTITY_LABELS)
        self.num_relations = vocab.get_vocab_size(RELATION_LABELS)
        size = encoder.get_output_dim()
        self.entity_tag_embedding = torch.nn.Embedding(self.num_entity_types + 1, type_embedding_dim)  # T^e
        self.subject_tag_embedding = torch.nn.Embedding(2, type_embedding_dim)  # T^s
        self.subject_fusion = _fusion(subject_fusion_encoder, "model.subject_fusion_encoder",
                                      type_embedding_dim + 4 * size)
        self.object_fusion = _fusion(object_fusion_encoder, "model.object_fusion_encoder",
                                     2 * type_embedding_dim + 4 * size)
        self.entity_head = entity_head.construct(input_dim=4 * size, num_labels=self.num_entity_types)
        self.subject_head = subject_head.construct(input_dim=self.subject_fusion.get_output_dim(), num_labels=1)
        self.object_head = object_head.construct(input_dim=self.object_fusion.get_output_dim(),
                                                 num_labels=self.num_relations)
        self.dropout = torch.nn.Dropout(dropout)

    def forward(self, tokens: Dict[str, Dict[str, torch.Tensor]], entities: Optional[torch.Tensor] = None,
                relations: Optional[torch.Tensor] = None, metadata: Optional[List[Document]] = None,
                **_: Any) -> Dict[str, Any]:
        mask = util.get_text_field_mask(tokens)
        states = self.encoder(self.dropout(self.text_field_embedder(tokens)), mask)
        states = {name: self.dropout(value) for name, value in states.items()}
        output: Dict[str, Any] = {"mask": mask, "metadata": metadata}
        # EE's scores serve both its loss (with gold) and the cascade at inference: computed once.
        entity_output = self.entity_head(_join(states, ENTITY_TASKS), mask, entities)
        if entities is not None and relations is not None:
            output.update(self._losses(states, entity_output["loss"], mask, entities, relations))
        if not self.training:
            output["predictions"] = self._cascade(states, entity_output, mask)
            if entities is not None:
                self.score_predictions(output)
        return output

    # -- training: every turn fed the gold prior information (appendix B) ----------------------------------------
    def _losses(self, states: Dict[str, torch.Tensor], entity_loss: torch.Tensor, mask: torch.Tensor,
                entities: torch.Tensor, relations: torch.Tensor) -> Dict[str, torch.Tensor]:
        batch, length = mask.shape
        all_entities = entities.tolist()  # the one host copy of the gold of this batch
        gold_entities = [[(s, e, label) for s, e, label in row if label >= 0] for row in all_entities]
        gold_relations = [[(tuple(row_entities[h][:2]), tuple(row_entities[t][:2]), label)
                           for h, t, label in row_relations if label >= 0]
                          for row_entities, row_relations in zip(all_entities, relations.tolist())]

        tags = self._entity_tags(gold_entities, length, mask.device)
        subjects = [sorted({head for head, _, _ in row}) for row in gold_relations]
        subject_gold = _span_tensor([[(s, e, 0) for s, e in row] for row in subjects], mask.device)
        subject_loss = self.subject_head(self._subject_states(states, tags, mask), mask, subject_gold)["loss"]

        if self.training_subjects == "gold_entities":
            candidates = [sorted({(s, e) for s, e, _ in row}) for row in gold_entities]
        else:
            candidates = subjects
        rows, spans = _pairs(candidates)
        object_loss = entity_loss.new_zeros(())
        if rows:
            objects = [[(t[0], t[1], label) for h, t, label in gold_relations[row] if h == span]
                       for row, span in zip(rows, spans)]
            object_states = self._object_states(states, tags, mask, rows, spans)
            object_loss = self.object_head(object_states, mask[rows], _span_tensor(objects, mask.device))["loss"]
        return {"ner_loss": entity_loss / batch, "re_loss": (subject_loss + object_loss) / batch,
                "loss": (entity_loss + subject_loss + object_loss) / batch}

    # -- inference: EE -> SE -> SOE on the predictions of the turns before -------------------------------------
    def _cascade(self, states: Dict[str, torch.Tensor], entity_output: Dict[str, torch.Tensor],
                 mask: torch.Tensor) -> List[Dict[str, list]]:
        entities = self.entity_head.decode(entity_output, mask)
        tags = self._entity_tags([[(s, e, label) for s, e, label, _ in row] for row in entities], mask.size(1),
                                 mask.device)
        subject_states = self._subject_states(states, tags, mask)
        subjects = self.subject_head.decode(self.subject_head(subject_states, mask), mask)
        rows, spans = _pairs([[(s, e) for s, e, _, _ in row] for row in subjects])
        relations: List[list] = [[] for _ in entities]
        if rows:
            object_states = self._object_states(states, tags, mask, rows, spans)
            objects = self.object_head.decode(self.object_head(object_states, mask[rows]), mask[rows])
            for row, subject, found in zip(rows, spans, objects):
                relations[row].extend((subject, (s, e), label, score) for s, e, label, score in found)
        return [{"entities": row_entities, "relations": row_relations}
                for row_entities, row_relations in zip(entities, relations)]

    # -- eq. 11 and the tags of §3.4.2 -----------------------------------------------------------------------------
    def _entity_tags(self, spans: List[List[Tuple[int, int, int]]], length: int, device: torch.device) -> torch.Tensor:
        """(B, T): 1 + the type of the entity a token is in, 0 outside entities. Where entities overlap, the
        earliest-starting (longest on ties) keeps its tokens."""
        tags = torch.zeros(len(spans), length, dtype=torch.long)
        for row, row_spans in enumerate(spans):
            for start, end, label in sorted(row_spans, key=lambda span: (span[0], -span[1])):
                free = tags[row, start:end] == 0
                tags[row, start:end][free] = label + 1
        return tags.to(device)

    def _subject_states(self, states: Dict[str, torch.Tensor], tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        fused = torch.cat([self.entity_tag_embedding(tags), _join(states, SUBJECT_TASKS)], dim=-1)
        return self.subject_fusion(fused, mask)

    def _object_states(self, states: Dict[str, torch.Tensor], tags: torch.Tensor, mask: torch.Tensor,
                       rows: List[int], spans: List[Span]) -> torch.Tensor:
        """h_o for every (sentence, candidate subject) pair, all pairs of the batch in one tensor (P, T, d)."""
        length = tags.size(1)
        positions = torch.arange(length, device=tags.device)
        starts = torch.tensor([s for s, _ in spans], device=tags.device).unsqueeze(1)
        ends = torch.tensor([e for _, e in spans], device=tags.device).unsqueeze(1)
        inside = ((positions >= starts) & (positions < ends)).long()  # the subject tag of each token
        index = torch.tensor(rows, device=tags.device)
        shared = _join({name: states[name].index_select(0, index) for name in OBJECT_TASKS}, OBJECT_TASKS)
        fused = torch.cat([self.entity_tag_embedding(tags.index_select(0, index)), shared,
                           self.subject_tag_embedding(inside)], dim=-1)
        return self.object_fusion(fused, mask.index_select(0, index))

    # -- documents ----------------------------------------------------------------------------------------------
    def make_output_human_readable(self, output_dict: Dict[str, Any]) -> List[Document]:
        entity_labels = self.vocab.get_index_to_token_vocabulary(ENTITY_LABELS)
        relation_labels = self.vocab.get_index_to_token_vocabulary(RELATION_LABELS)
        lengths = output_dict["mask"].sum(1).tolist()
        metadata = output_dict.get("metadata") or [None] * len(lengths)
        documents = []
        for predicted, length, source in zip(output_dict["predictions"], lengths, metadata):
            best: Dict[Span, Tuple[int, float]] = {}  # a span EE gave several types keeps its most probable one
            for start, end, label, score in predicted["entities"]:
                if (start, end) not in best or score > best[(start, end)][1]:
                    best[(start, end)] = (label, score)
            spans = sorted(best)
            entities = [Entity(entity_labels[best[span][0]], *span, best[span][1]) for span in spans]
            index = {span: i for i, span in enumerate(spans)}
            relations = [Relation(relation_labels[label], index[subject], index[obj], score)
                         for subject, obj, label, score in predicted["relations"]
                         if subject in index and obj in index and subject != obj]
            documents.append(self.predicted_document(source, length, entities, relations))
        return documents


def _fusion(encoder: Optional[Seq2SeqEncoder], key: str, input_dim: int) -> Seq2SeqEncoder:
    if encoder is None:
        from allennlp_light.modules.seq2seq_encoders import PassThroughEncoder

        return PassThroughEncoder(input_dim)
    check_dimensions(key, encoder.get_input_dim(), "the fused states (eq. 11)", input_dim)
    return encoder


def _join(states: Dict[str, torch.Tensor], names: Sequence[str]) -> torch.Tensor:
    return torch.cat([states[name] for name in names], dim=-1)


def _pairs(candidates: List[List[Span]]) -> Tuple[List[int], List[Span]]:
    """The (sentence, candidate subject) pairs of a batch, flattened: their sentence rows and spans."""
    rows = [row for row, row_spans in enumerate(candidates) for _ in row_spans]
    return rows, [span for row_spans in candidates for span in row_spans]


def _span_tensor(spans: List[List[Tuple[int, int, int]]], device: torch.device) -> torch.Tensor:
    """Per row lists of (start, end, label) as a (rows, N, 3) tensor padded with -1, as batches carry them."""
    width = max([len(row) for row in spans] + [1])
    tensor = torch.full((len(spans), width, 3), -1, dtype=torch.long)
    for row, row_spans in enumerate(spans):
        if row_spans:
            tensor[row, : len(row_spans)] = torch.tensor(row_spans)
    return tensor.to(device)
