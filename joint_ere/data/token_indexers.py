"""Token indexers: how a word becomes ids (per instance) and how a batch of them becomes padded tensors."""
import itertools
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
        return vocab.get_token_indices([self._normalise(t) for t in tokens], self.namespace)

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
        words = [token[: self.max_word_length] for token in tokens]
        ids = vocab.get_token_indices("".join(words), self.namespace)  # one lookup for the sentence's characters
        ends = list(itertools.accumulate(len(word) for word in words))
        return [ids[end - len(word): end] or [1] for word, end in zip(words, ends)]

    def as_padded_tensor(self, indexed: List[List[List[int]]], length: int) -> Dict[str, torch.Tensor]:
        width = max([self.min_padding_length, 1] + [len(w) for words in indexed for w in words])
        out = numpy.zeros((len(indexed), length, width), dtype=numpy.int64)
        for row, words in enumerate(indexed):
            for col, chars in enumerate(words):
                out[row, col, : len(chars)] = chars
        return {"token_characters": torch.from_numpy(out)}


@TokenIndexer.register("pretrained_transformer_mismatched")
class PretrainedTransformerMismatchedIndexer(TokenIndexer):
    """
    Splits each word into the wordpieces of a Hugging Face tokenizer, for the
    ``pretrained_transformer_mismatched`` embedder, which pools them back to one vector per word.

    # Parameters

    model_name : `str`
        A hub name (``bert-base-cased``) or a local model folder.

    A word the tokenizer turns into no wordpiece at all (a control character, say) gets the unknown piece, so
    every word still has a vector. Tokenizers that mark a word start with a leading space (RoBERTa, GPT-2
    style) see each word with that space.
    """

    def __init__(self, model_name: str) -> None:
        from joint_ere.common.transformers import cached_tokenizer

        self.model_name = model_name
        self.tokenizer = cached_tokenizer(model_name)
        self._space_prefix = self.tokenizer.tokenize(" a") != self.tokenizer.tokenize("a")

    def count_vocab_items(self, tokens: List[str], counter: Dict[str, Counter]) -> None:
        pass  # the tokenizer brings its own vocabulary

    def tokens_to_indices(self, tokens: List[str], vocab: Vocabulary) -> Dict[str, list]:
        words = [" " + t for t in tokens] if self._space_prefix else list(tokens)
        pieces = self.tokenizer(words, add_special_tokens=False)["input_ids"]
        unknown = self.tokenizer.unk_token_id if self.tokenizer.unk_token_id is not None else 0
        ids: List[int] = []
        offsets: List[List[int]] = []
        for word_pieces in pieces:
            word_pieces = word_pieces or [unknown]
            offsets.append([len(ids), len(ids) + len(word_pieces)])  # end exclusive
            ids.extend(word_pieces)
        return {"wordpieces": ids, "offsets": offsets}

    def as_padded_tensor(self, indexed: List[Dict[str, list]], length: int) -> Dict[str, torch.Tensor]:
        pieces = max(1, max(len(x["wordpieces"]) for x in indexed))
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids = numpy.full((len(indexed), pieces), pad, dtype=numpy.int64)
        piece_mask = numpy.zeros((len(indexed), pieces), dtype=bool)
        offsets = numpy.zeros((len(indexed), length, 2), dtype=numpy.int64)
        mask = numpy.zeros((len(indexed), length), dtype=bool)
        for row, item in enumerate(indexed):
            ids[row, : len(item["wordpieces"])] = item["wordpieces"]
            piece_mask[row, : len(item["wordpieces"])] = True
            offsets[row, : len(item["offsets"])] = item["offsets"]
            mask[row, : len(item["offsets"])] = True
        return {"token_ids": torch.from_numpy(ids), "wordpiece_mask": torch.from_numpy(piece_mask),
                "offsets": torch.from_numpy(offsets), "mask": torch.from_numpy(mask)}
