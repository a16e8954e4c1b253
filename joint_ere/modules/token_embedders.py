"""Token embedders (one vector per word from an indexer's tensors) and the text field embedder joining them."""
import gzip
import logging
import zlib
from typing import Dict, Iterator, List, Optional, Tuple

import torch
from allennlp_light.modules import Seq2VecEncoder
from tango.common import Registrable

from joint_ere.common.errors import ConfigurationError, DataError
from joint_ere.common.files import resolve_path, undecodable, unreadable
from joint_ere.data.vocabulary import Vocabulary

logger = logging.getLogger(__name__)

OOV_INDEX = 1  # @@UNKNOWN@@ in every padded namespace


class TokenEmbedder(torch.nn.Module, Registrable):
    def get_output_dim(self) -> int:
        raise NotImplementedError


@TokenEmbedder.register("embedding")
class Embedding(TokenEmbedder):
    """
    A trainable lookup table, optionally started from a GloVe-format text file.

    # Parameters

    embedding_dim : `int`
    vocab_namespace : `str`, optional (default = `"tokens"`)
    pretrained_file : `str`, optional
        GloVe text format (``word v1 v2 ...``), plain or ``.gz``, local path or URL. Only words of the
        vocabulary are kept in memory; the coverage is logged. Words it lacks start random.
    trainable : `bool`, optional (default = `True`)
    word_dropout : `float`, optional (default = `0.0`)
        In training, replace each word by ``@@UNKNOWN@@`` with this probability, so the model learns to
        tag words it has not seen (a strong regulariser on small data sets).
    """

    def __init__(self, vocab: Vocabulary, embedding_dim: int, vocab_namespace: str = "tokens",
                 pretrained_file: Optional[str] = None, trainable: bool = True,
                 padding_index: int = 0, word_dropout: float = 0.0) -> None:
        super().__init__()
        num_embeddings = vocab.get_vocab_size(vocab_namespace)
        weight = torch.empty(num_embeddings, embedding_dim)
        torch.nn.init.xavier_uniform_(weight)
        self.coverage: Optional[float] = None
        if pretrained_file:
            self.coverage = read_pretrained_vectors(pretrained_file, vocab, vocab_namespace, weight)
        weight[padding_index].zero_()
        self.weight = torch.nn.Parameter(weight, requires_grad=trainable)
        self.padding_index = padding_index
        self.output_dim = embedding_dim
        self.word_dropout = word_dropout

    def get_output_dim(self) -> int:
        return self.output_dim

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.training and self.word_dropout > 0:
            drop = (torch.rand(tokens.shape, device=tokens.device) < self.word_dropout) & (tokens != self.padding_index)
            tokens = tokens.masked_fill(drop, OOV_INDEX)
        return torch.nn.functional.embedding(tokens, self.weight, padding_idx=self.padding_index)


def read_pretrained_vectors(path: str, vocab: Vocabulary, namespace: str, weight: torch.Tensor) -> float:
    """Copies vectors of vocabulary words from a GloVe text file (plain or ``.gz``; a word2vec header line is
    skipped) into ``weight`` and returns the coverage. A broken file is a DataError naming the file and line."""
    try:
        local = resolve_path(path)
    except Exception as error:
        raise ConfigurationError(f"pretrained_file {path!r}: {error}") from error
    wanted = vocab.get_token_to_index_vocabulary(namespace)
    dim = weight.size(1)
    found = vectors = 0
    for number, word, values in _glove_lines(local):
        if vectors == 0 and len(values) == 1 and word.isdigit() and values[0].isdigit():
            continue  # word2vec's "count dimension" header
        vectors += 1
        index = wanted.get(word)
        if index is None and vectors > 1:  # the first vector is always checked, so a wrong file fails early
            continue
        if len(values) != dim:
            raise DataError(local, None, f"line {number}: {len(values)} numbers for {word!r}, but the "
                                         f"embedding_dim is {dim}")
        try:
            vector = torch.tensor([float(v) for v in values])
        except ValueError:
            bad = next(v for v in values if not _is_float(v))
            raise DataError(local, None, f"line {number}: {bad!r} (for {word!r}) is not a number") from None
        if not torch.isfinite(vector).all():
            raise DataError(local, None, f"line {number}: the vector of {word!r} is not finite")
        if index is not None:
            weight[index] = vector
            found += 1
    if vectors == 0:
        raise DataError(local, None, "holds no vectors (expected GloVe text: a word and its numbers per line)")
    real_words = max(1, len(wanted) - 2)  # padding and unknown are not words
    coverage = found / real_words
    logger.info("%s: vectors for %d of %d %s words (%.1f%%)", path, found, real_words, namespace, 100 * coverage)
    return coverage


def _glove_lines(path: str) -> Iterator[Tuple[int, str, List[str]]]:
    """(line number, word, value strings) of a GloVe file, decoded strictly; blank lines are skipped."""
    offset = 0
    try:
        with (gzip.open if path.endswith(".gz") else open)(path, "rb") as handle:
            for number, raw in enumerate(handle, start=1):
                try:
                    line = raw.decode("utf-8-sig" if number == 1 else "utf-8")  # a byte-order mark is not a word
                except UnicodeDecodeError as error:
                    raise undecodable(path, number, offset + error.start, error) from None
                offset += len(raw)
                word, _, rest = line.rstrip("\r\n").partition(" ")
                if word or rest:
                    yield number, word, rest.split(" ")
    except (OSError, EOFError, zlib.error) as error:
        raise unreadable(path, error) from None


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@TokenEmbedder.register("character_encoding")
class TokenCharactersEncoder(TokenEmbedder):
    """
    Character embeddings run through a Seq2VecEncoder (``cnn`` or ``lstm``) per word.

    # Parameters

    embedding : `Embedding` (over ``token_characters``)
    encoder : `Seq2VecEncoder`
    dropout : `float`, optional (default = `0.0`)
    """

    def __init__(self, embedding: Embedding, encoder: Seq2VecEncoder, dropout: float = 0.0) -> None:
        super().__init__()
        self._embedding = embedding
        self._encoder = encoder
        self._dropout = torch.nn.Dropout(dropout) if dropout > 0 else torch.nn.Identity()
        self.output_dim = encoder.get_output_dim()

    def get_output_dim(self) -> int:
        return self.output_dim

    def forward(self, token_characters: torch.Tensor) -> torch.Tensor:
        # Each distinct word of the batch is encoded once ("the", "," and padding recur many times), then
        # copied back to its positions: the same result as encoding every position, for about half the work.
        *positions, width = token_characters.shape
        words, inverse = unique_rows(token_characters.reshape(-1, width))
        embedded = self._embedding(words)
        # Outside autocast: AllenNLP's CnnEncoder masks with the lowest value of its convolutions' dtype
        # (bfloat16 / float16 under autocast) but, its bool mask times a Python float being float32, looks for
        # float32's lowest value after the max-pool; so a word shorter than a filter came out as -3.4e38 instead
        # of 0, and the loss as NaN. The encoder is small.
        with torch.autocast(embedded.device.type, enabled=False):
            encoded = self._encoder(embedded, words != 0)
        return self._dropout(encoded[inverse].reshape(*positions, -1))


def unique_rows(rows: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """``torch.unique(rows, dim=0, return_inverse=True)`` for non-negative integer rows: the distinct rows in
    lexicographic order and each row's index among them.

    torch's ``unique_dim`` compares rows one pair at a time on a CPU (about 8 ms for 2,000 words of 20
    characters); here the rows are packed into a few int64 keys (as many columns to a key as their bit width
    allows) and sorted key by key, least significant first, with a stable sort: a radix sort of a handful of
    passes, on any device.
    """
    count, width = rows.shape
    if count == 0 or width == 0:
        return torch.unique(rows, dim=0, return_inverse=True)
    bits = max(1, int(rows.max()).bit_length())
    per_key = max(1, 63 // bits)
    order = torch.arange(count, device=rows.device)
    for first in reversed(range(0, width, per_key)):
        key = torch.zeros(count, dtype=torch.int64, device=rows.device)
        for column in range(first, min(first + per_key, width)):
            key = (key << bits) | rows[:, column].long()
        order = order[torch.sort(key[order], stable=True).indices]
    ordered = rows[order]
    starts = torch.ones(count, dtype=torch.bool, device=rows.device)
    starts[1:] = (ordered[1:] != ordered[:-1]).any(dim=1)
    group = torch.cumsum(starts, 0) - 1
    inverse = torch.empty_like(group)
    inverse[order] = group
    return ordered[starts], inverse


class TextFieldEmbedder(torch.nn.Module, Registrable):
    default_implementation = "basic"

    def get_output_dim(self) -> int:
        raise NotImplementedError


@TextFieldEmbedder.register("basic")
class BasicTextFieldEmbedder(TextFieldEmbedder):
    """
    Concatenates the token embedders' outputs; the keys match the dataset reader's ``token_indexers``.

    # Parameters

    token_embedders : `Dict[str, TokenEmbedder]`
    """

    def __init__(self, token_embedders: Dict[str, TokenEmbedder]) -> None:
        super().__init__()
        if not token_embedders:
            raise ConfigurationError("token_embedders must name at least one embedder")
        self.token_embedders = torch.nn.ModuleDict(token_embedders)

    def get_output_dim(self) -> int:
        return sum(e.get_output_dim() for e in self.token_embedders.values())

    def forward(self, text_field_input: Dict[str, Dict[str, torch.Tensor]]) -> torch.Tensor:
        missing = set(self.token_embedders) - set(text_field_input)
        if missing:
            raise ConfigurationError(f"token_embedders {sorted(missing)} have no token indexer of that name; "
                                     f"the indexers are {sorted(text_field_input)}")
        return torch.cat([embedder(**text_field_input[name]) for name, embedder in self.token_embedders.items()],
                         dim=-1)
