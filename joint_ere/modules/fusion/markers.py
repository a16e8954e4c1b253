"""
Text markers for early fusion (Cascade-SRN §3.4.1, after PURE): marker words inserted around spans of a sentence
that is already split into wordpieces, and the way back to the sentence's own words.

A marker is one word of one wordpiece (a special token of the transformer's tokenizer). Markers are placed so that
nested spans nest properly (crossing spans, which no bracketing can nest, interleave): at one position, closing
markers come before opening ones, an inner span closes before an outer one, and an outer span opens before an inner
one. Of two markings of the same span (two entity types, or the subject and its entity type), the one given first in
``spans`` is the outer.
"""
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import torch

MarkedSpan = Tuple[int, int, int, int]  # start, end (exclusive), opening marker id, closing marker id


def marker_positions(spans: Sequence[MarkedSpan]) -> List[Tuple[int, int]]:
    """``(word position the marker goes before, marker id)`` for every opening and closing marker, in order."""
    placed = []
    for rank, (start, end, opening, closing) in enumerate(spans):
        placed.append(((start, 1, -end, rank), start, opening))  # outer (longer, then earlier given) opens first
        placed.append(((end, 0, -start, -rank), end, closing))  # inner (later start, then later given) closes first
    return [(position, marker) for _, position, marker in sorted(placed)]


@dataclass
class MarkedSentence:
    """A sentence with markers: its wordpieces, each word's ``[start, end)`` over them, and for each word of the
    original sentence its index among the marked words (what ``unmark`` gathers)."""

    wordpieces: List[int]
    offsets: List[Tuple[int, int]]
    positions: List[int]


def mark(wordpieces: Sequence[int], offsets: Sequence[Sequence[int]], spans: Sequence[MarkedSpan]) -> MarkedSentence:
    """Inserts the markers of ``spans`` (word offsets of the original sentence) as words of their own."""
    markers = marker_positions(spans)
    pieces: List[int] = []
    new_offsets: List[Tuple[int, int]] = []
    positions: List[int] = []
    next_marker = 0
    for word in range(len(offsets) + 1):
        while next_marker < len(markers) and markers[next_marker][0] == word:
            new_offsets.append((len(pieces), len(pieces) + 1))
            pieces.append(markers[next_marker][1])
            next_marker += 1
        if word < len(offsets):
            start, end = offsets[word]
            positions.append(len(new_offsets))
            new_offsets.append((len(pieces), len(pieces) + end - start))
            pieces.extend(wordpieces[start:end])
    if next_marker != len(markers):
        raise ValueError(f"a marker lies beyond the sentence's {len(offsets)} words: {markers[next_marker]}")
    return MarkedSentence(pieces, new_offsets, positions)


def batch_marked(sentences: List[MarkedSentence], pad_id: int, device: torch.device,
                 length: int = 0) -> Dict[str, torch.Tensor]:
    """Padded tensors in the ``pretrained_transformer_mismatched`` indexer's format, plus ``positions`` (N, T):
    the original words' places among the marked ones (0 beyond a sentence's end; T at least ``length``)."""
    count = len(sentences)
    pieces = max([1] + [len(s.wordpieces) for s in sentences])
    words = max([1] + [len(s.offsets) for s in sentences])
    original = max([1, length] + [len(s.positions) for s in sentences])
    ids = torch.full((count, pieces), pad_id, dtype=torch.long)
    piece_mask = torch.zeros(count, pieces, dtype=torch.bool)
    offsets = torch.zeros(count, words, 2, dtype=torch.long)
    mask = torch.zeros(count, words, dtype=torch.bool)
    positions = torch.zeros(count, original, dtype=torch.long)
    for row, sentence in enumerate(sentences):
        ids[row, : len(sentence.wordpieces)] = torch.tensor(sentence.wordpieces, dtype=torch.long)
        piece_mask[row, : len(sentence.wordpieces)] = True
        if sentence.offsets:
            offsets[row, : len(sentence.offsets)] = torch.tensor(sentence.offsets, dtype=torch.long)
        mask[row, : len(sentence.offsets)] = True
        positions[row, : len(sentence.positions)] = torch.tensor(sentence.positions, dtype=torch.long)
    tensors = {"token_ids": ids, "wordpiece_mask": piece_mask, "offsets": offsets, "mask": mask,
               "positions": positions}
    return {name: tensor.to(device) for name, tensor in tensors.items()}


def unmark(states: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """(N, T', d) states of marked sentences -> (N, T, d) states of their original words."""
    return states.gather(1, positions.unsqueeze(-1).expand(-1, -1, states.size(-1)))
