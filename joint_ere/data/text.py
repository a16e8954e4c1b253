"""
Raw text to sentences of tokens with character offsets, and predicted sentences back to one document.

The splitter is spaCy's blank English pipeline (rule-based, nothing downloaded) with its punctuation
sentencizer. One change to spaCy's defaults: a hyphen between letters does not split a word, because none of
the benchmarks split there ("Bosnia-Herzegovina", "three-day"). Re-tokenising the benchmarks' own sentences
(their tokens joined by spaces) gives back exactly the same tokens for 67.5% of CoNLL04 dev and 99.8% of ADE
fold 0 with this splitter, 55.8% / 90.4% with spaCy's defaults (the README's "Raw text" section; NLTK's
Treebank tokenizer matches 74.5% / 99.1% but has no sentence splitter that works without a download).

Besides the punctuation rule, a blank line (two newlines) always ends a sentence, and a sentence longer than
``max_sentence_length`` tokens is cut into pieces of at most that length, so that a long text without
punctuation cannot make one enormous batch row.
"""
import functools
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Sequence, Tuple

from tango.common import Registrable

from joint_ere.common.errors import ConfigurationError, DataError
from joint_ere.data.document import Document

Offsets = Tuple[int, int]  # [start, end) in characters of the input text


@dataclass(frozen=True)
class Sentence:
    tokens: List[str]
    offsets: List[Offsets]


@dataclass
class TextDocument:
    """A raw-text input: the text, its sentences, and the record's other keys (kept in the output)."""

    text: str
    sentences: List[Sentence]
    meta: Dict[str, Any] = field(default_factory=dict)

    def sentence_documents(self) -> List[Document]:
        return [Document(list(sentence.tokens)) for sentence in self.sentences]

    def merge(self, predicted: Sequence[Document]) -> Dict[str, Any]:
        """The predictions of this document's sentences as one record: tokens, entities and relations indexed
        across the whole document, each entity with ``char_start``/``char_end`` and its ``text``. Readable back
        by ``Document.from_json`` (``evaluate``), which keeps the extra keys as meta."""
        tokens: List[str] = []
        token_offsets: List[List[int]] = []
        sentences, entities, relations = [], [], []
        for number, (sentence, doc) in enumerate(zip(self.sentences, predicted)):
            token_base, entity_base = len(tokens), len(entities)
            tokens.extend(sentence.tokens)
            token_offsets.extend([start, end] for start, end in sentence.offsets)
            sentences.append({"start": token_base, "end": len(tokens), "char_start": sentence.offsets[0][0],
                              "char_end": sentence.offsets[-1][1]})
            for entity in doc.entities:
                char_start, char_end = sentence.offsets[entity.start][0], sentence.offsets[entity.end - 1][1]
                out: Dict[str, Any] = {"type": entity.type, "start": token_base + entity.start,
                                       "end": token_base + entity.end, "char_start": char_start,
                                       "char_end": char_end, "text": self.text[char_start:char_end],
                                       "sentence": number}
                if entity.score is not None:
                    out["score"] = round(entity.score, 6)
                entities.append(out)
            for relation in doc.relations:
                out = {"type": relation.type, "head": entity_base + relation.head, "tail": entity_base + relation.tail}
                if relation.score is not None:
                    out["score"] = round(relation.score, 6)
                relations.append(out)
        return {"text": self.text, "tokens": tokens, "token_offsets": token_offsets, "sentences": sentences,
                "entities": entities, "relations": relations, **self.meta}


class TextSplitter(Registrable):
    """Splits a text into sentences of tokens, each token with its character offsets in the text."""

    default_implementation = "spacy"

    def split(self, text: str) -> List[Sentence]:
        raise NotImplementedError

    def document(self, record: Any, path: str = "<input>", index: object = 0) -> TextDocument:
        """``"some text"`` or ``{"text": "some text", ...}``; a text without a single token is a DataError."""
        meta: Dict[str, Any] = {}
        if isinstance(record, dict):
            text = record.get("text")
            meta = {k: v for k, v in record.items() if k not in ("text", "tokens", "entities", "relations")}
        else:
            text = record
        if not isinstance(text, str):
            raise DataError(path, index, f'"text" must be a string, not {type(text).__name__}')
        sentences = self.split(text)
        if not sentences:
            raise DataError(path, index, "the text is empty (no tokens)")
        return TextDocument(text, sentences, meta)


_PARAGRAPH_BREAK = re.compile(r"\n[^\S\n]*\n")


@TextSplitter.register("spacy")
class SpacyTextSplitter(TextSplitter):
    """
    Parameters
    ----------
    language : `str`, optional (default = `"en"`)
        A spaCy language code; its blank pipeline (tokenizer exceptions and punctuation rules only) is used.
    split_on_hyphens : `bool`, optional (default = `False`)
        spaCy's default splits "three-day" into three tokens; the benchmarks do not.
    max_sentence_length : `int`, optional (default = `200`)
        Longer sentences are cut into consecutive pieces of at most this many tokens.
    """

    def __init__(self, language: str = "en", split_on_hyphens: bool = False, max_sentence_length: int = 200) -> None:
        try:
            import spacy
            from spacy.lang.char_classes import HYPHENS
            from spacy.util import compile_infix_regex
        except ImportError as error:  # pragma: no cover - spacy is a dependency
            raise ConfigurationError(f"reading raw text needs spaCy ({error})") from error
        if max_sentence_length < 1:
            raise ConfigurationError(f"max_sentence_length must be positive, not {max_sentence_length}")
        try:
            self.nlp = spacy.blank(language)
        except (ImportError, KeyError) as error:
            raise ConfigurationError(f"language {language!r}: spaCy has no blank pipeline for it ({error})") from error
        if not split_on_hyphens:
            infixes = [rule for rule in self.nlp.Defaults.infixes if HYPHENS not in rule]
            self.nlp.tokenizer.infix_finditer = compile_infix_regex(infixes).finditer
        self.nlp.add_pipe("sentencizer")
        self.max_sentence_length = max_sentence_length

    def split(self, text: str) -> List[Sentence]:
        sentences: List[Sentence] = []
        for start, end in self._paragraphs(text):
            doc = self.nlp(text[start:end])
            for span in doc.sents:
                words = [(token.text, start + token.idx, start + token.idx + len(token.text))
                         for token in span if not token.is_space]
                for cut in range(0, len(words), self.max_sentence_length):
                    piece = words[cut: cut + self.max_sentence_length]
                    sentences.append(Sentence([w for w, _, _ in piece], [(s, e) for _, s, e in piece]))
        return sentences

    @staticmethod
    def _paragraphs(text: str) -> List[Offsets]:
        """The [start, end) ranges between blank lines."""
        ranges, start = [], 0
        for match in _PARAGRAPH_BREAK.finditer(text):
            ranges.append((start, match.start()))
            start = match.end()
        ranges.append((start, len(text)))
        return [(s, e) for s, e in ranges if text[s:e].strip()]


@functools.lru_cache(maxsize=None)
def default_text_splitter() -> TextSplitter:
    """One shared default splitter per process (spaCy takes about a second to build one)."""
    return TextSplitter.by_name(TextSplitter.default_implementation)()
