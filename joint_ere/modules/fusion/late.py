r"""
Late fusion (Cascade-SRN §3.4.2): the sentence is encoded once and every turn reuses that encoding. Entity tags
and a subject tag are embedded and concatenated with the encoder's representations (eq. 11):

    ĥ_s = [T^e(entity tag), h_s, h_es, h_so, h_eso]
    ĥ_o = [T^e(entity tag), h_o, h_eo, h_so, h_eso, T^s(subject tag)]

T^e ((|E| + 1) x d_t) embeds each token's entity tag (the type of the entity it is in, or none) and T^s (2 x d_t)
whether the token is inside the subject.

Beyond the paper's text: eq. 12 scores every token by itself, and only the subject's own tokens carry the subject
tag, so a token's object score could not depend on where the subject is. Optional fusion encoders (any
Seq2SeqEncoder, e.g. a one-layer BiLSTM) run over ĥ_s and ĥ_o, so every token sees the tags; they cost one small
recurrent pass per candidate subject, not a new encoding of the sentence.
"""
from typing import List, Optional

import torch
from allennlp_light.modules import Seq2SeqEncoder
from allennlp_light.modules.seq2seq_encoders import PassThroughEncoder

from joint_ere.common.errors import check_dimensions
from joint_ere.data.instance import ENTITY_LABELS
from joint_ere.data.vocabulary import Vocabulary
from joint_ere.modules.fusion.fusion import (OBJECT_TASKS, SUBJECT_TASKS, EncodedText, Fusion, Span, TypedSpan,
                                             join)


@Fusion.register("late")
class LateFusion(Fusion):
    """
    # Parameters

    type_embedding_dim : `int`, optional (default = `32`)
        d_t, the size of the entity-tag and subject-tag embeddings.
    subject_encoder, object_encoder : `Seq2SeqEncoder`, optional
        Run over ĥ_s and ĥ_o (inputs d_t + 4 d and 2 d_t + 4 d, d the encoder's output size); their outputs feed
        the subject and object heads. Without them (the paper's equations taken literally) SOE cannot tell
        subjects apart.
    vocab, size
        Given by the model: the entity types, and d.
    """

    def __init__(self, vocab: Vocabulary, size: int, type_embedding_dim: int = 32,
                 subject_encoder: Optional[Seq2SeqEncoder] = None,
                 object_encoder: Optional[Seq2SeqEncoder] = None) -> None:
        super().__init__()
        self.entity_tag_embedding = torch.nn.Embedding(vocab.get_vocab_size(ENTITY_LABELS) + 1,
                                                       type_embedding_dim)  # T^e
        self.subject_tag_embedding = torch.nn.Embedding(2, type_embedding_dim)  # T^s
        self.subject_encoder = _encoder(subject_encoder, "model.fusion.subject_encoder", type_embedding_dim + 4 * size)
        self.object_encoder = _encoder(object_encoder, "model.fusion.object_encoder", 2 * type_embedding_dim + 4 * size)

    def get_subject_dim(self) -> int:
        return self.subject_encoder.get_output_dim()

    def get_object_dim(self) -> int:
        return self.object_encoder.get_output_dim()

    def subject_states(self, text: EncodedText, entities: List[List[TypedSpan]]) -> torch.Tensor:
        tags = self._tags(text, entities)
        fused = torch.cat([self.entity_tag_embedding(tags), join(text.states, SUBJECT_TASKS)], dim=-1)
        return self.subject_encoder(fused, text.mask)

    def object_states(self, text: EncodedText, entities: List[List[TypedSpan]], rows: List[int],
                      subjects: List[Span]) -> torch.Tensor:
        device = text.mask.device
        index = torch.tensor(rows, device=device)
        tags = self._tags(text, entities).index_select(0, index)
        positions = torch.arange(text.mask.size(1), device=device)
        starts = torch.tensor([s for s, _ in subjects], device=device).unsqueeze(1)
        ends = torch.tensor([e for _, e in subjects], device=device).unsqueeze(1)
        inside = ((positions >= starts) & (positions < ends)).long()  # the subject tag of each token
        shared = join({name: text.states[name].index_select(0, index) for name in OBJECT_TASKS}, OBJECT_TASKS)
        fused = torch.cat([self.entity_tag_embedding(tags), shared, self.subject_tag_embedding(inside)], dim=-1)
        return self.object_encoder(fused, text.mask.index_select(0, index))

    @staticmethod
    def _tags(text: EncodedText, entities: List[List[TypedSpan]]) -> torch.Tensor:
        return text.once("entity_tags", entities, lambda: entity_tags(entities, text.mask.size(1), text.mask.device))


def entity_tags(spans: List[List[TypedSpan]], length: int, device: torch.device) -> torch.Tensor:
    """(rows, T): 1 + the type of the entity a token is in, 0 outside entities. Where entities overlap, the
    earliest-starting (longest on ties) keeps its tokens."""
    tags = torch.zeros(len(spans), length, dtype=torch.long)
    for row, row_spans in enumerate(spans):
        for start, end, label in sorted(row_spans, key=lambda span: (span[0], -span[1])):
            free = tags[row, start:end] == 0
            tags[row, start:end][free] = label + 1
    return tags.to(device)


def _encoder(encoder: Optional[Seq2SeqEncoder], key: str, input_dim: int) -> Seq2SeqEncoder:
    if encoder is None:
        return PassThroughEncoder(input_dim)
    check_dimensions(key, encoder.get_input_dim(), "the fused states (eq. 11)", input_dim)
    return encoder
