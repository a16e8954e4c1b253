"""
Entity spans <-> BIO/BIOUL tags, and the NER tag decoders (CRF or softmax) that models share.

The tag vocabulary is derived from the ``entity_labels`` namespace: ``O`` then, per entity type, ``B-``/``I-``
(BIO) or ``B-``/``I-``/``L-``/``U-`` (BIOUL). Overlapping gold entities cannot all be tagged: the earliest
starting (longest on ties) wins and the others are left out of the tag targets (they still count in metrics).

With ``per_type: true`` a decoder tags one sequence per entity type instead (``PerTypeTagScheme``: ``O``,
``B``, ``I`` for "is this token in an entity of type k"), so entities of different types may overlap, as ADE's
drugs inside adverse effects do ("lithium" in "lithium intoxication"); only entities of one type still exclude
each other. All types' sequences go through the same decoder (one CRF), folded into the batch, and the NER loss is
their sum. A relation head that anchors entities at their last token (multi-head selection) cannot tell apart two
entities that end on the same token ("toxicity of digoxin" and "digoxin"): each gets the other's relations. In
ADE that is 5 of the 120 overlapping pairs.
"""
from typing import Dict, List, Optional, Tuple, Union

import torch
from allennlp_light.modules import ConditionalRandomField
from allennlp_light.modules.conditional_random_field.conditional_random_field import allowed_transitions
from tango.common import Registrable

from joint_ere.common.errors import ConfigurationError
from joint_ere.data.document import Entity
from joint_ere.data.instance import ENTITY_LABELS
from joint_ere.data.vocabulary import Vocabulary
from joint_ere.modules.crf import batched_viterbi, crf_log_likelihood

PREFIXES = {"BIO": ("B", "I"), "BIOUL": ("B", "I", "L", "U")}

Span = Tuple[int, int, int]  # start, end (exclusive), entity label id


class TagScheme:
    def __init__(self, entity_labels: List[str], encoding: str) -> None:
        if encoding not in PREFIXES:
            raise ConfigurationError(f"label_encoding must be one of {sorted(PREFIXES)}, not {encoding!r}")
        self.encoding = encoding
        self.entity_labels = entity_labels
        prefixes = PREFIXES[encoding]
        self.tags = ["O"] + [f"{p}-{label}" for label in entity_labels for p in prefixes]
        self.width = len(prefixes)

    def __len__(self) -> int:
        return len(self.tags)

    @property
    def sequence_tags(self) -> List[str]:
        """The tags of one tag sequence (the CRF's states)."""
        return self.tags

    def embed(self, embedding: torch.nn.Embedding, tags: torch.Tensor) -> torch.Tensor:
        """The label embedding of (B, T) tags: (B, T, D)."""
        return embedding(tags)

    def tag_id(self, prefix: str, label: int) -> int:
        return 1 + label * self.width + PREFIXES[self.encoding].index(prefix)

    def spans_to_tags(self, entities: torch.Tensor, length: int) -> torch.Tensor:
        """(B, E, 3) spans with -1 padding -> (B, length) tag ids."""
        tags = torch.zeros(entities.size(0), length, dtype=torch.long)
        for row, spans in enumerate(entities.tolist()):
            taken = [False] * length
            for start, end, label in sorted((s for s in spans if s[2] >= 0), key=lambda s: (s[0], -s[1])):
                if any(taken[start:end]):
                    continue
                taken[start:end] = [True] * (end - start)
                if self.encoding == "BIOUL" and end - start == 1:
                    tags[row, start] = self.tag_id("U", label)
                    continue
                tags[row, start] = self.tag_id("B", label)
                tags[row, start + 1: end] = self.tag_id("I", label)
                if self.encoding == "BIOUL":
                    tags[row, end - 1] = self.tag_id("L", label)
        return tags.to(entities.device)

    def tags_to_spans(self, tags: List[int]) -> List[Span]:
        """Lenient decoding: an ``I``/``L`` that does not continue an entity of its type starts one."""
        spans: List[Span] = []
        current: Optional[List[int]] = None  # [start, label]

        def close(end: int) -> None:
            nonlocal current
            if current is not None:
                spans.append((current[0], end, current[1]))
                current = None

        for position, tag in enumerate(tags):
            if tag == 0:
                close(position)
                continue
            label, prefix = divmod(tag - 1, self.width)
            prefix_name = PREFIXES[self.encoding][prefix]
            continues = current is not None and current[1] == label and prefix_name in ("I", "L")
            if not continues:
                close(position)
                current = [position, label]
            if prefix_name in ("L", "U"):
                close(position + 1)
        close(len(tags))
        return spans

    def decode_entities(self, tags: torch.Tensor, tag_probabilities: torch.Tensor, lengths: List[int],
                        label_names: Dict[int, str]) -> Tuple[List[List[Span]], List[List[Entity]]]:
        """Every row's spans (``tags_to_spans``) and its entities, each with the mean probability of its tokens'
        chosen tags; one copy of the batch to Python lists, the means from running sums."""
        chosen = tag_probabilities.gather(2, tags.unsqueeze(2)).squeeze(2).double()
        running = torch.nn.functional.pad(chosen.cumsum(1), (1, 0)).cpu().tolist()
        rows = tags.cpu().tolist()
        spans = [self.tags_to_spans(row[:length]) for row, length in zip(rows, lengths)]
        entities = [[Entity(label_names[label], start, end, (sums[end] - sums[start]) / (end - start))
                     for start, end, label in row_spans] for row_spans, sums in zip(spans, running)]
        return spans, entities


class PerTypeTagScheme:
    """One BIO / BIOUL sequence per entity type: tags (B, T, K) of ``TagScheme(["entity"])`` ids, so entities of
    different types may overlap. ``len()`` is K times the tags of one sequence (the decoder's scores and the label
    embedding's rows: one embedding per type and tag, summed over the types at each token)."""

    def __init__(self, entity_labels: List[str], encoding: str) -> None:
        self.single = TagScheme(["entity"], encoding)
        self.encoding = encoding
        self.entity_labels = entity_labels
        self.num_types = len(entity_labels)

    def __len__(self) -> int:
        return self.num_types * len(self.single)

    @property
    def sequence_tags(self) -> List[str]:
        return self.single.tags

    def embed(self, embedding: torch.nn.Embedding, tags: torch.Tensor) -> torch.Tensor:
        offsets = torch.arange(self.num_types, device=tags.device) * len(self.single)
        return embedding(tags + offsets).sum(2)

    def spans_to_tags(self, entities: torch.Tensor, length: int) -> torch.Tensor:
        """(B, E, 3) spans with -1 padding -> (B, length, K) tag ids, one sequence per type."""
        sequences = []
        for label in range(self.num_types):
            typed = entities.masked_fill((entities[..., 2:] != label).expand_as(entities), -1)
            typed[..., 2] = typed[..., 2].clamp(max=0)  # type `label` becomes the one type of the sequence
            sequences.append(self.single.spans_to_tags(typed, length))
        return torch.stack(sequences, dim=2) if sequences else entities.new_zeros(entities.size(0), length, 0)

    def decode_entities(self, tags: torch.Tensor, tag_probabilities: torch.Tensor, lengths: List[int],
                        label_names: Dict[int, str]) -> Tuple[List[List[Span]], List[List[Entity]]]:
        """``TagScheme.decode_entities`` per type on (B, T, K) tags and (B, T, K, tags) probabilities; every row's
        spans and entities of all types, ordered by start, end and type."""
        spans: List[List[Span]] = [[] for _ in lengths]
        entities: List[List[Entity]] = [[] for _ in lengths]
        for label in range(self.num_types):
            typed_spans, typed_entities = self.single.decode_entities(
                tags[:, :, label], tag_probabilities[:, :, label], lengths, {0: label_names[label]})
            for row, (row_spans, row_entities) in enumerate(zip(typed_spans, typed_entities)):
                spans[row] += [(start, end, label) for start, end, _ in row_spans]
                entities[row] += row_entities
        for row in range(len(lengths)):
            order = sorted(range(len(spans[row])), key=lambda i: spans[row][i])
            spans[row] = [spans[row][i] for i in order]
            entities[row] = [entities[row][i] for i in order]
        return spans, entities


class TagDecoder(torch.nn.Module, Registrable):
    """
    Scores NER tags from token features: an optional hidden layer, then a linear layer per tag.

    # Parameters

    label_encoding : `str`, optional (default = `"BIO"`)
        ``BIO`` or ``BIOUL``.
    hidden_dim : `int`, optional (default = `0`)
        Size of a ReLU layer before the tag scores; 0 for none.
    per_type : `bool`, optional (default = `False`)
        One tag sequence per entity type (``PerTypeTagScheme``): entities of different types may overlap. Logits
        are then (B, T, K, tags) and tags (B, T, K).
    """

    default_implementation = "crf"
    per_type = False

    def __init__(self, input_dim: int, vocab: Vocabulary, label_encoding: str = "BIO", hidden_dim: int = 0,
                 label_namespace: str = ENTITY_LABELS, per_type: bool = False) -> None:
        super().__init__()
        labels = [vocab.get_token_from_index(i, label_namespace) for i in range(vocab.get_vocab_size(label_namespace))]
        self.per_type = per_type
        self.scheme: Union[TagScheme, PerTypeTagScheme] = \
            PerTypeTagScheme(labels, label_encoding) if per_type else TagScheme(labels, label_encoding)
        layers: List[torch.nn.Module] = []
        if hidden_dim:
            layers += [torch.nn.Linear(input_dim, hidden_dim), torch.nn.ReLU()]
        layers.append(torch.nn.Linear(hidden_dim or input_dim, len(self.scheme)))
        self.projection = torch.nn.Sequential(*layers)

    @property
    def num_tags(self) -> int:
        return len(self.scheme)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        logits = self.projection(features)
        return logits.unflatten(-1, (self.scheme.num_types, len(self.scheme.single))) if self.per_type else logits

    def loss(self, logits: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Summed over the batch (and over the types' sequences with ``per_type``)."""
        if self.per_type:
            logits, tags, mask = _fold(logits), _fold(tags), _fold_mask(mask, logits.size(2))
        return self._sequence_loss(logits, tags, mask)

    def decode(self, logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Best tags, (B, T) or (B, T, K) with ``per_type``; padded positions hold 0 (``O``)."""
        if not self.per_type:
            return self._sequence_decode(logits, mask)
        batch, length, types = logits.shape[:3]
        tags = self._sequence_decode(_fold(logits), _fold_mask(mask, types))
        return tags.view(batch, types, length).transpose(1, 2)

    def _sequence_loss(self, logits: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(N, T, tags) logits, (N, T) tags: the summed loss of N sequences."""
        raise NotImplementedError

    def _sequence_decode(self, logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


def _fold(tensor: torch.Tensor) -> torch.Tensor:
    """(B, T, K, ...) -> (B * K, T, ...): each type's sequence a row of its own, sentence by sentence."""
    return tensor.transpose(1, 2).flatten(0, 1)


def _fold_mask(mask: torch.Tensor, types: int) -> torch.Tensor:
    return mask.repeat_interleave(types, dim=0)


@TagDecoder.register("softmax")
class SoftmaxTagDecoder(TagDecoder):
    def _sequence_loss(self, logits: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        losses = torch.nn.functional.cross_entropy(logits.transpose(1, 2), tags, reduction="none")
        return (losses * mask).sum()

    def _sequence_decode(self, logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return logits.argmax(-1) * mask


@TagDecoder.register("crf")
class CrfTagDecoder(TagDecoder):
    """A linear-chain CRF (allennlp-light's parameters, this library's batched algorithms in `crf.py`) with the
    transitions the encoding forbids switched off in decoding."""

    def __init__(self, input_dim: int, vocab: Vocabulary, label_encoding: str = "BIO", hidden_dim: int = 0,
                 label_namespace: str = ENTITY_LABELS, per_type: bool = False) -> None:
        super().__init__(input_dim, vocab, label_encoding, hidden_dim, label_namespace, per_type)
        tags = self.scheme.sequence_tags
        constraints = allowed_transitions(label_encoding, dict(enumerate(tags)))
        self.crf = ConditionalRandomField(len(tags), constraints, include_start_end_transitions=True)

    def _sequence_loss(self, logits: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        crf = self.crf
        return -crf_log_likelihood(logits, tags, mask, crf.transitions, crf.start_transitions,
                                   crf.end_transitions).sum()

    def _sequence_decode(self, logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # Viterbi over the whole batch at once (allennlp-light decodes sentence by sentence, which
        # dominates prediction time on CPU).
        crf = self.crf
        num_tags = logits.size(-1)
        allowed = crf._constraint_mask
        transitions = crf.transitions.masked_fill(allowed[:num_tags, :num_tags] == 0, -1e4)
        start = crf.start_transitions.masked_fill(allowed[num_tags, :num_tags] == 0, -1e4)
        end = crf.end_transitions.masked_fill(allowed[:num_tags, num_tags + 1] == 0, -1e4)
        return batched_viterbi(logits.float(), mask, transitions.float(), start.float(), end.float())
