r"""
Early fusion (Cascade-SRN §3.4.1, after PURE): what the turns before found is written into the text as markers,
and the marked text is encoded again, by the transformer and the multi-task encoder both:

    SE   reads ĥ_s = [h_s, h_es, h_so, h_eso] of  text*  = text with [e_k:S] ... [e_k:E] around every entity of type e_k
    SOE  reads ĥ_o = [h_o, h_eo, h_so, h_eso] of  text** = text* with [S:S] ... [S:E] around one subject

The markers are special tokens added to the transformer's tokenizer, with word embeddings of their own that train
with the transformer (their rows are in the model's weights, so an archive predicts without the original model
folder). The representations of the marker words are dropped after encoding: the heads score the sentence's own
words. Every marked sequence of a batch (one per sentence for SE, one per sentence and subject for SOE) is encoded
in one batched pass; at inference, in passes of ``inference_batch_size`` sequences.

Under ``markers: subject`` (Table 2's "Subject" row) SE reads the plain text's encoding and SOE's text carries
only the subject markers.
"""
from typing import List, Sequence

import torch

from joint_ere.common.errors import ConfigurationError
from joint_ere.data.instance import ENTITY_LABELS
from joint_ere.data.vocabulary import Vocabulary
from joint_ere.modules.fusion.fusion import (OBJECT_TASKS, SUBJECT_TASKS, EncodedText, Fusion, Span, TypedSpan,
                                             join)
from joint_ere.modules.fusion.markers import MarkedSpan, batch_marked, mark, unmark
from joint_ere.modules.token_embedders import TextFieldEmbedder
from joint_ere.modules.transformer_embedder import PretrainedTransformerMismatchedEmbedder

MARKERS = ("entity_and_subject", "subject")
SUBJECT_MARKERS = ("[S:S]", "[S:E]")


@Fusion.register("early")
class EarlyFusion(Fusion):
    """
    # Parameters

    markers : `str`, optional (default = `"entity_and_subject"`)
        ``entity_and_subject`` (the paper's default) or ``subject`` (no entity markers: Table 2's ablation).
    inference_batch_size : `int`, optional (default = `64`)
        Marked sequences per encoding pass at inference (training encodes a batch's sequences in one pass, which
        its backward needs in memory anyway).
    vocab, size, text_field_embedder
        Given by the model. The text field embedder must be one ``pretrained_transformer_mismatched`` embedder:
        the markers are its wordpieces.
    """

    def __init__(self, vocab: Vocabulary, size: int, text_field_embedder: TextFieldEmbedder,
                 markers: str = "entity_and_subject", inference_batch_size: int = 64) -> None:
        super().__init__()
        if markers not in MARKERS:
            raise ConfigurationError(f"model.fusion.markers: {markers!r} is not one of {', '.join(MARKERS)}")
        if inference_batch_size < 1:
            raise ConfigurationError("model.fusion.inference_batch_size must be at least 1")
        embedders = dict(getattr(text_field_embedder, "token_embedders", {}))
        if len(embedders) != 1 or not isinstance(next(iter(embedders.values())),
                                                 PretrainedTransformerMismatchedEmbedder):
            kinds = ", ".join(f"{name}: {type(e).__name__}" for name, e in embedders.items()) or "none"
            raise ConfigurationError(f"model.fusion: early fusion writes its markers as wordpieces, so "
                                     f"model.text_field_embedder must hold exactly one "
                                     f"pretrained_transformer_mismatched embedder (it holds {kinds})")
        (self.indexer_name, embedder), = embedders.items()
        labels = vocab.get_index_to_token_vocabulary(ENTITY_LABELS)
        types = [labels[k] for k in range(vocab.get_vocab_size(ENTITY_LABELS))]
        if "S" in types:
            raise ConfigurationError("model.fusion: an entity type is named 'S', whose markers [S:S] and [S:E] "
                                     "would be the subject's; rename the type in the data")
        names = [f"[{name}:{end}]" for name in types for end in ("S", "E")] + list(SUBJECT_MARKERS)
        ids = embedder.add_special_tokens(names)
        if not embedder.transformer.get_input_embeddings().weight.requires_grad:
            raise ConfigurationError(f"model.fusion: early fusion trains its markers' word embeddings, but "
                                     f"model.text_field_embedder.token_embedders.{self.indexer_name}.train_parameters "
                                     f"is false (the markers would stay random vectors)")
        # Saved with the weights: an archive whose tokenizer gives the markers other ids is refused on loading.
        self.register_buffer("marker_ids", torch.tensor(ids, dtype=torch.long))
        self.entity_markers = [(ids[2 * k], ids[2 * k + 1]) for k in range(len(types))]
        self.subject_marker = (ids[-2], ids[-1])
        self.pad_id = embedder.pad_id
        self.markers = markers
        self.inference_batch_size = inference_batch_size
        self.size = size

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:  # type: ignore[override]
        saved = state_dict.setdefault(prefix + "marker_ids", self.marker_ids)  # weights saved before the check
        if not torch.equal(saved.cpu(), self.marker_ids.cpu()):
            raise ConfigurationError(f"the archive's text markers had wordpiece ids {saved.tolist()}, but the "
                                     f"tokenizer now gives {self.marker_ids.tolist()}: the transformer folder or "
                                     f"its vocabulary changed since training")
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def get_subject_dim(self) -> int:
        return 4 * self.size

    def get_object_dim(self) -> int:
        return 4 * self.size

    def subject_states(self, text: EncodedText, entities: List[List[TypedSpan]]) -> torch.Tensor:
        if self.markers == "subject":
            return join(text.states, SUBJECT_TASKS)
        rows = list(range(len(entities)))
        return self._encode_marked(text, rows, [self._entity_spans(row) for row in entities], SUBJECT_TASKS)

    def object_states(self, text: EncodedText, entities: List[List[TypedSpan]], rows: List[int],
                      subjects: List[Span]) -> torch.Tensor:
        opening, closing = self.subject_marker
        marked = [[(start, end, opening, closing)]  # given first: the outer marking where a subject is an entity
                  + (self._entity_spans(entities[row]) if self.markers == "entity_and_subject" else [])
                  for row, (start, end) in zip(rows, subjects)]
        return self._encode_marked(text, rows, marked, OBJECT_TASKS)

    def _entity_spans(self, entities: List[TypedSpan]) -> List[MarkedSpan]:
        return [(start, end, *self.entity_markers[label]) for start, end, label in entities]

    def _encode_marked(self, text: EncodedText, rows: List[int], spans: List[List[MarkedSpan]],
                       names: Sequence[str]) -> torch.Tensor:
        """Marks sentence ``rows[i]`` with ``spans[i]``, encodes every marked sequence, and returns the ``names``
        representations of the original words, joined: (len(rows), T, 4 d)."""
        tensors = text.tokens[self.indexer_name]
        pieces, offsets, words = text.once("wordpieces", tensors, lambda: (  # one host copy per batch
            tensors["token_ids"].tolist(), tensors["offsets"].tolist(), tensors["mask"].sum(1).tolist()))
        sentences = [mark(pieces[row], offsets[row][: words[row]], row_spans) for row, row_spans in zip(rows, spans)]
        length = text.mask.size(1)
        step = len(sentences) if self.training else self.inference_batch_size
        parts = []
        for first in range(0, len(sentences), max(1, step)):
            batch = batch_marked(sentences[first: first + step], self.pad_id, text.mask.device, length)
            positions = batch.pop("positions")
            states = text.encode({self.indexer_name: batch})
            parts.append(join({name: unmark(states[name], positions) for name in names}, names))
        return torch.cat(parts, dim=0)
