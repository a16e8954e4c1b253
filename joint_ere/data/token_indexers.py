"""Token indexers: how a word becomes ids (per instance) and how a batch of them becomes padded tensors."""
from collections import Counter
from typing import Dict, List

import numpy
import torch
from tango.common import Registrable

from joint_ere.data.vocabulary import Vocabulary


class TokenIndexer(Registrable):
    default_implementation = "single_id"

    def count_vocab_items(self, tokens: List[str], counter: Dict[str, Counter]) -> None:
        raise NotImplementedError

    def tokens_to_indices(self, tokens: List[str], vocab: Vocabulary) -> list:
        raise NotImplementedError

    def as_padded_tensor(self, indexed: List[list], length: int) -> Dict[str, torch.Tensor]:
        """Pads a batch of ``tokens_to_indices`` outputs to ``length`` tokens."""
        raise NotImplementedError


@TokenIndexer.register("single_id")
class SingleIdTokenIndexer(TokenIndexer):
    """
    One id per word.

    # Parameters

    namespace : `str`, optional (default = `"tokens"`)
    lowercase_tokens : `bool`, optional (default = `False`)
        Lowercase words before looking them up (GloVe 6B is lowercase).
    """

    def __init__(self, namespace: str = "tokens", lowercase_tokens: bool = False) -> None:
        self.namespace = namespace
        self.lowercase_tokens = lowercase_tokens

    def _normalise(self, token: str) -> str:
        return token.lower() if self.lowercase_tokens else token

    def count_vocab_items(self, tokens: List[str], counter: Dict[str, Counter]) -> None:
        counter[self.namespace].update(self._normalise(t) for t in tokens)

    def tokens_to_indices(self, tokens: List[str], vocab: Vocabulary) -> List[int]:
        return [vocab.get_token_index(self._normalise(t), self.namespace) for t in tokens]

    def as_padded_tensor(self, indexed: List[List[int]], length: int) -> Dict[str, torch.Tensor]:
        out = numpy.zeros((len(indexed), length), dtype=numpy.int64)
        for row, ids in enumerate(indexed):
            out[row, : len(ids)] = ids
        return {"tokens": torch.from_numpy(out)}


@TokenIndexer.register("characters")
class TokenCharactersIndexer(TokenIndexer):
    """
    The characters of each word, for a character encoder.

    # Parameters

    namespace : `str`, optional (default = `"token_characters"`)
    min_padding_length : `int`, optional (default = `0`)
        Pad words to at least this many characters (a CNN needs its widest filter).
    max_word_length : `int`, optional (default = `30`)
        Longer words keep their first characters only.
    """

    def __init__(self, namespace: str = "token_characters", min_padding_length: int = 0,
                 max_word_length: int = 30) -> None:
        self.namespace = namespace
        self.min_padding_length = min_padding_length
        self.max_word_length = max_word_length

    def count_vocab_items(self, tokens: List[str], counter: Dict[str, Counter]) -> None:
        for token in tokens:
            counter[self.namespace].update(token[: self.max_word_length])

    def tokens_to_indices(self, tokens: List[str], vocab: Vocabulary) -> List[List[int]]:
        return [[vocab.get_token_index(c, self.namespace) for c in token[: self.max_word_length]] or [1]
                for token in tokens]

    def as_padded_tensor(self, indexed: List[List[List[int]]], length: int) -> Dict[str, torch.Tensor]:
        width = max([self.min_padding_length, 1] + [len(w) for words in indexed for w in words])
        out = numpy.zeros((len(indexed), length, width), dtype=numpy.int64)
        for row, words in enumerate(indexed):
            for col, chars in enumerate(words):
                out[row, col, : len(chars)] = chars
        return {"token_characters": torch.from_numpy(out)}
