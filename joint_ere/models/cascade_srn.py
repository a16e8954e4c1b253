r"""
Cascade-SRN (Wang et al., "Towards Effective Multi-Task Interaction for Entity-Relation Extraction"): a three-task
encoder (the SRN: e, s, o and the shared subsets es, eo, so, eso) read by three span-extraction turns in a cascade:

    EE   entities, typed by entity type            over  ĥ_e = [h_e, h_es, h_eo, h_eso]            (eq. 11)
    SE   subjects (one label)                      over  ĥ_s, the entities fused in
    SOE  objects of one subject, typed by relation over  ĥ_o, the entities and that subject fused in

How the entities and the subject are fused in is the ``fusion`` (joint_ere/modules/fusion): ``late`` (§3.4.2,
tag embeddings beside one shared encoding) or ``early`` (§3.4.1, text markers and a new encoding). In training the
prior information is the gold entities (appendix B) and every gold entity is a candidate subject for SOE
(``training_subjects``); at inference it is EE's and SE's predictions. Every turn is a ``SpanExtractionHead``
(appendix A, eqs. 12-15); the loss is L_e + L_s + L_o (eq. 15).

A predicted relation is (subject span, object span, relation type); it is kept when both spans are entities that
EE predicted (their types are EE's), so NER is EE's output and the document schema is unchanged.
"""
from typing import Any, Dict, List, Optional, Tuple

import torch
from allennlp_light.nn import util
from tango.common import Lazy

from joint_ere.common.errors import ConfigurationError, check_dimensions
from joint_ere.data.document import Document, Entity, Relation
from joint_ere.data.instance import ENTITY_LABELS, RELATION_LABELS
from joint_ere.data.vocabulary import Vocabulary
from joint_ere.models.model import Model
from joint_ere.modules.encoders import MultiTaskEncoder
from joint_ere.modules.fusion import ENTITY_TASKS, OBJECT_TASKS, SUBJECT_TASKS, EncodedText, Fusion, LateFusion, join
from joint_ere.modules.heads import SpanExtractionHead
from joint_ere.modules.token_embedders import TextFieldEmbedder

TRAINING_SUBJECTS = ("gold_entities", "gold_subjects")
MISSING_ARGUMENTS = ("drop", "type_by_ee")

Span = Tuple[int, int]  # start, end (exclusive)


@Model.register("cascade_srn")
class CascadeSrn(Model):
    """
    # Parameters

    text_field_embedder : `TextFieldEmbedder`
    encoder : `MultiTaskEncoder`
        Three tasks named ``e, s, o``: ``srn`` with ``num_tasks: 3`` (optionally bidirectional), or ``shared``
        with ``num_tasks: 3`` (one BiLSTM for every task: the encoder ablation of Table 2).
    fusion : `Fusion`, optional (default = `{"type": "late"}`)
        ``late`` (its tag size and optional fusion encoders) or ``early`` (its markers); see their docstrings.
    entity_head, subject_head, object_head : `SpanExtractionHead`, optional
        Loss weights (alpha, beta, gamma of eq. 15) and thresholds of each turn; sizes are set by the model.
    training_subjects : `str`, optional (default = `"gold_entities"`)
        The candidate subjects SOE is trained on: every gold entity (the paper's answer to exposure bias) or only
        the gold subjects.
    missing_arguments : `str`, optional (default = `"drop"`)
        A predicted relation whose subject or object is not among EE's entities: ``drop`` the relation, or
        ``type_by_ee`` (add the span as an entity of the type EE scores most probable for it, that probability its
        score). Inference only; ``-o`` switches it on an archive.
    dropout : `float`, optional (default = `0.1`)
        On the embeddings and the encoder's representations.
    """

    def __init__(self, vocab: Vocabulary, text_field_embedder: TextFieldEmbedder, encoder: MultiTaskEncoder,
                 fusion: Lazy[Fusion] = Lazy(LateFusion),
                 entity_head: Lazy[SpanExtractionHead] = Lazy(SpanExtractionHead),
                 subject_head: Lazy[SpanExtractionHead] = Lazy(SpanExtractionHead),
                 object_head: Lazy[SpanExtractionHead] = Lazy(SpanExtractionHead),
                 training_subjects: str = "gold_entities", missing_arguments: str = "drop",
                 dropout: float = 0.1) -> None:
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
        if missing_arguments not in MISSING_ARGUMENTS:
            raise ConfigurationError(f"model.missing_arguments: {missing_arguments!r} is not one of "
                                     f"{', '.join(MISSING_ARGUMENTS)}")
        self.training_subjects = training_subjects
        self.missing_arguments = missing_arguments
        self.num_entity_types = vocab.get_vocab_size(ENTITY_LABELS)
        self.num_relations = vocab.get_vocab_size(RELATION_LABELS)
        size = encoder.get_output_dim()
        self.fusion = fusion.construct(vocab=vocab, size=size, text_field_embedder=text_field_embedder)
        self.entity_head = entity_head.construct(input_dim=4 * size, num_labels=self.num_entity_types)
        self.subject_head = subject_head.construct(input_dim=self.fusion.get_subject_dim(), num_labels=1)
        self.object_head = object_head.construct(input_dim=self.fusion.get_object_dim(),
                                                 num_labels=self.num_relations)
        self.dropout = torch.nn.Dropout(dropout)

    def forward(self, tokens: Dict[str, Dict[str, torch.Tensor]], entities: Optional[torch.Tensor] = None,
                relations: Optional[torch.Tensor] = None, metadata: Optional[List[Document]] = None,
                **_: Any) -> Dict[str, Any]:
        mask = util.get_text_field_mask(tokens)
        text = EncodedText(tokens, mask, self._encode(tokens), self._encode)
        output: Dict[str, Any] = {"mask": mask, "metadata": metadata}
        # EE's scores serve both its loss (with gold) and the cascade at inference: computed once.
        entity_output = self.entity_head(join(text.states, ENTITY_TASKS), mask, entities)
        if entities is not None and relations is not None:
            output.update(self._losses(text, entity_output["loss"], entities, relations))
        if not self.training:
            output["predictions"] = self._cascade(text, entity_output)
        return output

    def _encode(self, tokens: Dict[str, Dict[str, torch.Tensor]]) -> Dict[str, torch.Tensor]:
        """Embedder and encoder, with dropout on both: the plain text here, marked text in early fusion."""
        states = self.encoder(self.dropout(self.text_field_embedder(tokens)), util.get_text_field_mask(tokens))
        return {name: self.dropout(value) for name, value in states.items()}

    # -- training: every turn fed the gold prior information (appendix B) ----------------------------------------
    def _losses(self, text: EncodedText, entity_loss: torch.Tensor, entities: torch.Tensor,
                relations: torch.Tensor) -> Dict[str, torch.Tensor]:
        mask = text.mask
        batch = mask.size(0)
        all_entities = entities.tolist()  # the one host copy of the gold of this batch
        gold_entities = [[(s, e, label) for s, e, label in row if label >= 0] for row in all_entities]
        gold_relations = [[(tuple(row_entities[h][:2]), tuple(row_entities[t][:2]), label)
                           for h, t, label in row_relations if label >= 0]
                          for row_entities, row_relations in zip(all_entities, relations.tolist())]

        subjects = [sorted({head for head, _, _ in row}) for row in gold_relations]
        subject_gold = _span_tensor([[(s, e, 0) for s, e in row] for row in subjects], mask.device)
        subject_loss = self.subject_head(self.fusion.subject_states(text, gold_entities), mask, subject_gold)["loss"]

        if self.training_subjects == "gold_entities":
            candidates = [sorted({(s, e) for s, e, _ in row}) for row in gold_entities]
        else:
            candidates = subjects
        rows, spans = _pairs(candidates)
        object_loss = entity_loss.new_zeros(())
        if rows:
            objects = [[(t[0], t[1], label) for h, t, label in gold_relations[row] if h == span]
                       for row, span in zip(rows, spans)]
            object_states = self.fusion.object_states(text, gold_entities, rows, spans)
            object_loss = self.object_head(object_states, mask[rows], _span_tensor(objects, mask.device))["loss"]
        return {"ner_loss": entity_loss / batch, "re_loss": (subject_loss + object_loss) / batch,
                "loss": (entity_loss + subject_loss + object_loss) / batch}

    # -- inference: EE -> SE -> SOE on the predictions of the turns before -------------------------------------
    def _cascade(self, text: EncodedText, entity_output: Dict[str, torch.Tensor]) -> List[Dict[str, list]]:
        mask = text.mask
        entities = self.entity_head.decode(entity_output, mask)
        typed = [[(s, e, label) for s, e, label, _ in row] for row in entities]
        subject_states = self.fusion.subject_states(text, typed)
        subjects = self.subject_head.decode(self.subject_head(subject_states, mask), mask)
        rows, spans = _pairs([[(s, e) for s, e, _, _ in row] for row in subjects])
        relations: List[list] = [[] for _ in entities]
        if rows:
            object_states = self.fusion.object_states(text, typed, rows, spans)
            objects = self.object_head.decode(self.object_head(object_states, mask[rows]), mask[rows])
            for row, subject, found in zip(rows, spans, objects):
                relations[row].extend((subject, (s, e), label, score) for s, e, label, score in found)
        if self.missing_arguments == "type_by_ee":
            self._type_missing_arguments(entities, relations, entity_output["match"])
        return [{"entities": row_entities, "relations": row_relations}
                for row_entities, row_relations in zip(entities, relations)]

    @staticmethod
    def _type_missing_arguments(entities: List[list], relations: List[list], match: torch.Tensor) -> None:
        """Adds each relation argument EE did not predict to ``entities``, typed by EE's most probable match
        (eq. 13) for that span. One lookup for the batch."""
        missing = sorted({(row, *span) for row, row_relations in enumerate(relations)
                          for subject, obj, _, _ in row_relations for span in (subject, obj)}
                         - {(row, s, e) for row, row_entities in enumerate(entities) for s, e, _, _ in row_entities})
        if not missing:
            return
        rows, starts, ends = (torch.tensor(column, device=match.device) for column in zip(*missing))
        best, labels = torch.sigmoid(match[rows, starts, ends - 1].float()).max(-1)
        for (row, start, end), label, score in zip(missing, labels.tolist(), best.tolist()):
            entities[row].append((start, end, label, score))

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
