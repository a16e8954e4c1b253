import pytest
import torch

from allennlp_light.modules.seq2vec_encoders import CnnEncoder

from joint_ere.data import Vocabulary
from joint_ere.modules.token_embedders import Embedding, TokenCharactersEncoder, unique_rows


@pytest.mark.parametrize("count, width, high", [(1, 1, 1), (7, 3, 2), (500, 20, 90), (300, 9, 3000), (64, 30, 2)])
def test_unique_rows_matches_torch_unique(count, width, high):
    generator = torch.Generator().manual_seed(count + width)
    # few distinct values so rows repeat, and rows that share long prefixes
    rows = torch.randint(0, high, (count, width), generator=generator)
    rows[count // 2:] = rows[: count - count // 2].flip(0)
    rows[::3, width // 2:] = 0
    expected, expected_inverse = torch.unique(rows, dim=0, return_inverse=True)
    words, inverse = unique_rows(rows)
    assert torch.equal(words, expected)
    assert torch.equal(inverse, expected_inverse)
    assert torch.equal(words[inverse], rows)


def test_unique_rows_on_words_wider_than_one_key():
    # 7-bit values pack 9 to an int64 key; rows equal in their first 18 columns differ only in the last key
    rows = torch.full((4, 25), 100)
    rows[1, 24] = 3
    rows[3, 24] = 3
    rows[2, 0] = 99
    words, inverse = unique_rows(rows)
    assert words.tolist() == [[99] + [100] * 24, [100] * 24 + [3], [100] * 25]
    assert inverse.tolist() == [2, 1, 0, 1]


def test_unique_rows_of_nothing():
    words, inverse = unique_rows(torch.zeros(0, 5, dtype=torch.long))
    assert words.shape == (0, 5) and inverse.shape == (0,)


def character_cnn(ngram: int) -> TokenCharactersEncoder:
    """A character CNN (3 filters of width ``ngram``) over the characters "a" to "j"."""
    torch.manual_seed(0)
    vocab = Vocabulary()
    for character in "abcdefghij":
        vocab.add_token_to_namespace(character, "token_characters")
    return TokenCharactersEncoder(Embedding(vocab, embedding_dim=4, vocab_namespace="token_characters"),
                                  CnnEncoder(embedding_dim=4, num_filters=3, ngram_filter_sizes=(ngram,)))


def test_character_encoder_encodes_each_distinct_word_once_with_the_same_result():
    encoder = character_cnn(ngram=2)
    characters = torch.tensor([[[1, 2, 3, 0], [4, 5, 0, 0], [1, 2, 3, 0]], [[4, 5, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]])
    calls = []
    encoder._encoder.register_forward_hook(lambda module, inputs, output: calls.append(inputs[0].shape[0]))
    encoded = encoder(characters)
    flat = characters.reshape(-1, 4)
    one_by_one = torch.stack([encoder._encoder(encoder._embedding(row[None]), row[None] != 0)[0] for row in flat])
    assert calls[0] == 3  # "abc", "de" and the padding word
    torch.testing.assert_close(encoded.reshape(-1, 3), one_by_one)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_character_cnn_under_autocast_gives_its_float32_result(dtype):
    """Under `trainer.use_amp` (bfloat16 on a CPU here) AllenNLP's CnnEncoder left words shorter than its filter
    at -3.4e38 instead of zeros, which made RIN's loss NaN; the character encoder now runs outside autocast."""
    encoder = character_cnn(ngram=3)
    characters = torch.tensor([[[1, 2, 3, 4], [5, 0, 0, 0], [0, 0, 0, 0]]])  # "abcd", "e" (shorter than 3), padding
    exact = encoder(characters)
    with torch.autocast("cpu", dtype=dtype):
        under_autocast = encoder(characters)
    assert torch.equal(exact[0, 1:], torch.zeros(2, 3))
    torch.testing.assert_close(under_autocast, exact)
