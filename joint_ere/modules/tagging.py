"""
Entity spans <-> BIO/BIOUL tags, and the NER tag decoders (CRF or softmax) that models share.

The tag vocabulary is derived from the ``entity_labels`` namespace: ``O`` then, per entity type, ``B-``/``I-``
(BIO) or ``B-``/``I-``/``L-``/``U-`` (BIOUL). Overlapping gold entities cannot all be tagged: the earliest
starting (longest on ties) wins and the others are left out of the tag targets (they still count in metrics).
"""
from typing import Dict, List, Optional, Tuple

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


class TagDecoder(torch.nn.Module, Registrable):
    """
    Scores NER tags from token features: an optional hidden layer, then a linear layer per tag.

    # Parameters

    label_encoding : `str`, optional (default = `"BIO"`)
        ``BIO`` or ``BIOUL``.
    hidden_dim : `int`, optional (default = `0`)
        Size of a ReLU layer before the tag scores; 0 for none.
    """

    default_implementation = "crf"

    def __init__(self, input_dim: int, vocab: Vocabulary, label_encoding: str = "BIO", hidden_dim: int = 0,
                 label_namespace: str = ENTITY_LABELS) -> None:
        super().__init__()
        labels = [vocab.get_token_from_index(i, label_namespace) for i in range(vocab.get_vocab_size(label_namespace))]
        self.scheme = TagScheme(labels, label_encoding)
        layers: List[torch.nn.Module] = []
        if hidden_dim:
            layers += [torch.nn.Linear(input_dim, hidden_dim), torch.nn.ReLU()]
        layers.append(torch.nn.Linear(hidden_dim or input_dim, len(self.scheme)))
        self.projection = torch.nn.Sequential(*layers)

    @property
    def num_tags(self) -> int:
        return len(self.scheme)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.projection(features)

    def loss(self, logits: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Summed over the batch."""
        raise NotImplementedError

    def decode(self, logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Best tags, (B, T); padded positions hold 0 (``O``)."""
        raise NotImplementedError


@TagDecoder.register("softmax")
class SoftmaxTagDecoder(TagDecoder):
    def loss(self, logits: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        losses = torch.nn.functional.cross_entropy(logits.transpose(1, 2), tags, reduction="none")
        return (losses * mask).sum()

    def decode(self, logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return logits.argmax(-1) * mask


@TagDecoder.register("crf")
class CrfTagDecoder(TagDecoder):
    """A linear-chain CRF (allennlp-light's parameters, this library's batched algorithms in `crf.py`) with the
    transitions the encoding forbids switched off in decoding."""

    def __init__(self, input_dim: int, vocab: Vocabulary, label_encoding: str = "BIO", hidden_dim: int = 0,
                 label_namespace: str = ENTITY_LABELS) -> None:
        super().__init__(input_dim, vocab, label_encoding, hidden_dim, label_namespace)
        constraints = allowed_transitions(label_encoding, dict(enumerate(self.scheme.tags)))
        self.crf = ConditionalRandomField(len(self.scheme), constraints, include_start_end_transitions=True)

    def loss(self, logits: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        crf = self.crf
        return -crf_log_likelihood(logits, tags, mask, crf.transitions, crf.start_transitions,
                                   crf.end_transitions).sum()

    def decode(self, logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # Viterbi over the whole batch at once (allennlp-light decodes sentence by sentence, which
        # dominates prediction time on CPU).
        crf = self.crf
        num_tags = logits.size(-1)
        allowed = crf._constraint_mask
        transitions = crf.transitions.masked_fill(allowed[:num_tags, :num_tags] == 0, -1e4)
        start = crf.start_transitions.masked_fill(allowed[num_tags, :num_tags] == 0, -1e4)
        end = crf.end_transitions.masked_fill(allowed[:num_tags, num_tags + 1] == 0, -1e4)
        return batched_viterbi(logits.float(), mask, transitions.float(), start.float(), end.float())
