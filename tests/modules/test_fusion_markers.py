"""Early fusion's text markers: where they go, and the way back to the sentence's own words."""
import random

import pytest
import torch

from joint_ere.modules.fusion.markers import batch_marked, mark, marker_positions, unmark
from joint_ere.modules.transformer_embedder import PretrainedTransformerMismatchedEmbedder
from tests.modules.test_transformer_embedder import index

# Marker ids are negative here so they cannot be mistaken for wordpieces; names make failures readable.
NAMES = {-1: "[P:S]", -2: "[P:E]", -3: "[L:S]", -4: "[L:E]", -5: "[S:S]", -6: "[S:E]"}
PERSON, LOCATION, SUBJECT = (-1, -2), (-3, -4), (-5, -6)


def marked_words(words, spans):
    """The marked sentence as words, for one wordpiece per word."""
    sentence = mark(list(range(len(words))), [(i, i + 1) for i in range(len(words))], spans)
    return [NAMES.get(piece, words[piece] if piece >= 0 else "?") for piece in sentence.wordpieces]


def test_markers_nest_around_nested_identical_and_adjacent_spans():
    words = ["a", "b", "c", "d"]
    # the subject (0, 2) given first is the outer marking of the entity on the same span;
    # (1, 2) nests in (0, 2); (2, 4) starts where they end
    spans = [(0, 2, *SUBJECT), (0, 2, *PERSON), (1, 2, *LOCATION), (2, 4, *PERSON)]
    assert marked_words(words, spans) == ["[S:S]", "[P:S]", "a", "[L:S]", "b", "[L:E]", "[P:E]", "[S:E]",
                                          "[P:S]", "c", "d", "[P:E]"]
    # the order in which spans are given matters only between markings of the same span
    assert marked_words(words, [spans[3], spans[2], spans[0], spans[1]]) == marked_words(words, spans)
    assert marked_words(words, [(0, 2, *PERSON), (0, 2, *SUBJECT)])[:2] == ["[P:S]", "[S:S]"]


def test_a_one_word_sentence_marked_at_both_ends_and_no_markers_at_all():
    assert marked_words(["a"], [(0, 1, *SUBJECT)]) == ["[S:S]", "a", "[S:E]"]
    sentence = mark([7, 8, 9], [(0, 2), (2, 3)], [])
    assert (sentence.wordpieces, sentence.offsets, sentence.positions) == ([7, 8, 9], [(0, 2), (2, 3)], [0, 1])


def test_a_span_beyond_the_sentence_is_refused():
    with pytest.raises(ValueError, match="beyond the sentence's 2 words"):
        mark([1, 2], [(0, 1), (1, 2)], [(1, 3, *PERSON)])


@pytest.mark.parametrize("seed", range(20))
def test_marking_and_unmarking_round_trips_the_words_and_their_offsets(seed):
    rng = random.Random(seed)
    lengths = [rng.randint(1, 3) for _ in range(rng.randint(1, 12))]  # wordpieces per word
    offsets, pieces = [], []
    for word, length in enumerate(lengths):
        offsets.append((len(pieces), len(pieces) + length))
        pieces.extend(100 * word + k for k in range(length))
    spans = []
    for _ in range(rng.randint(0, 5)):
        start = rng.randrange(len(lengths))
        spans.append((start, rng.randint(start + 1, len(lengths)), *rng.choice([PERSON, LOCATION, SUBJECT])))
    sentence = mark(pieces, offsets, spans)

    # each original word keeps its wordpieces, in order; the rest are the markers, one wordpiece each
    kept = [sentence.wordpieces[slice(*sentence.offsets[p])] for p in sentence.positions]
    assert kept == [pieces[slice(*o)] for o in offsets]
    assert sorted(sentence.positions) == sentence.positions
    markers = [sentence.wordpieces[slice(*o)] for i, o in enumerate(sentence.offsets) if i not in sentence.positions]
    assert [m for (m,) in markers] == [marker for _, marker in marker_positions(spans)]
    assert len(sentence.wordpieces) == len(pieces) + 2 * len(spans)
    # offsets stay contiguous, so the embedder pools every word over its own pieces
    assert [o[0] for o in sentence.offsets[1:]] == [o[1] for o in sentence.offsets[:-1]]
    # and each span's markers sit right around its words
    for start, end, opening, closing in spans:
        before = sentence.wordpieces[: sentence.offsets[sentence.positions[start]][0]]
        after = sentence.wordpieces[sentence.offsets[sentence.positions[end - 1]][1]:]
        assert opening in before and closing in after


def test_unmark_gathers_the_original_words_from_a_padded_batch():
    sentences = [mark([10, 11, 12], [(0, 1), (1, 3)], [(1, 2, *PERSON)]), mark([20], [(0, 1)], [(0, 1, *SUBJECT)])]
    batch = batch_marked(sentences, pad_id=0, device=torch.device("cpu"), length=3)
    assert batch["token_ids"].tolist() == [[10, -1, 11, 12, -2], [-5, 20, -6, 0, 0]]
    assert batch["offsets"].tolist() == [[[0, 1], [1, 2], [2, 4], [4, 5]], [[0, 1], [1, 2], [2, 3], [0, 0]]]
    assert batch["mask"].tolist() == [[True] * 4, [True, True, True, False]]
    assert batch["positions"].tolist() == [[0, 2, 0], [1, 0, 0]]  # padded to length 3 with 0
    states = torch.arange(2 * 4, dtype=torch.float).view(2, 4, 1)  # a state that says which marked word it is
    assert unmark(states, batch["positions"]).squeeze(-1).tolist() == [[0, 2, 0], [5, 4, 4]]


def test_markers_are_new_tokens_of_a_private_tokenizer_with_their_own_rows(tiny_bert):
    embedder = PretrainedTransformerMismatchedEmbedder(tiny_bert)
    rows = embedder.transformer.get_input_embeddings().num_embeddings
    ids = embedder.add_special_tokens(["[Peop:S]", "[Peop:E]", "[S:S]", "[S:E]"])
    assert ids == list(range(rows, rows + 4))
    assert embedder.transformer.get_input_embeddings().num_embeddings == rows + 4
    assert embedder.tokenizer.convert_ids_to_tokens(ids) == ["[Peop:S]", "[Peop:E]", "[S:S]", "[S:E]"]
    assert embedder.add_special_tokens(["[S:S]", "[Peop:S]"]) == [ids[2], ids[0]]  # adding again changes nothing
    assert embedder.transformer.get_input_embeddings().num_embeddings == rows + 4
    # the indexer's tokenizer is untouched: a text containing "[S:S]" is split as before
    instances, _ = index(tiny_bert, [["[S:S]"]])
    assert len(instances[0].indexed["bert"]["wordpieces"]) > 1
    # a marker's row trains with the transformer
    embedder.add_special_tokens(["[Loc:S]"])
    batch = batch_marked([mark([5, 6], [(0, 1), (1, 2)], [(0, 1, ids[2], ids[3])])], embedder.pad_id,
                         torch.device("cpu"))
    batch.pop("positions")
    # not a plain sum: the layer norm ending BERT makes the sum over features a constant, whose gradient is
    # rounding noise (sometimes exactly zero)
    outputs = embedder(**batch)
    direction = torch.randn(outputs.shape[-1], generator=torch.Generator().manual_seed(0))
    (outputs @ direction).sum().backward()
    gradient = embedder.transformer.get_input_embeddings().weight.grad
    assert gradient[ids[2]].abs().sum() > 0 and gradient[ids[0]].abs().sum() == 0
