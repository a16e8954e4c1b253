from typing import Any, Dict, Iterable, List, Optional, Tuple

from joint_ere.common.errors import DataError
from joint_ere.data.document import Document, Entity, Relation
from joint_ere.data.readers.dataset_reader import DatasetReader, load_json_records
from joint_ere.data.token_indexers import TokenIndexer

PTB_BRACKETS = {"-LRB-": "(", "-RRB-": ")", "-LSB-": "[", "-RSB-": "]", "-LCB-": "{", "-RCB-": "}"}


@DatasetReader.register("dygie")
class DygieReader(DatasetReader):
    """
    Reads DyGIE / PURE document JSON lines (SciERC's ``processed_data/json``, the ACE05 files of DyGIE++'s
    scripts): per document ``doc_key``, ``sentences`` (lists of tokens) and, per sentence, ``ner``
    (``[start, end, type]``) and ``relations`` (``[head start, head end, tail start, tail end, type]``), with
    document-level token offsets and **both ends inclusive**. ``clusters`` (coreference) and any other key are
    ignored.

    Each sentence becomes one ``Document`` with sentence-level, end-exclusive offsets, and
    ``meta = {"doc_key": ..., "sentence": index in the document}``. A relation's arguments must be annotated
    entities of the same sentence (their types are the entities'). A sentence without tokens is skipped (no
    annotation can point into it). Anything else that does not fit is a ``DataError`` naming the file, the
    document and the sentence.

    # Parameters

    token_indexers, max_instances : as for every `DatasetReader`
    unescape_brackets : `bool`, optional (default = `True`)
        Turn Penn Treebank escapes (``-LRB-``, ``-RRB-``, ``-LSB-``, ...) back into brackets, as the SpERT copies of
        the same data have them and as word embeddings and wordpiece tokenizers expect.
    """

    def __init__(self, token_indexers: Optional[Dict[str, TokenIndexer]] = None, max_instances: Optional[int] = None,
                 unescape_brackets: bool = True) -> None:
        super().__init__(token_indexers, max_instances)
        self.unescape_brackets = unescape_brackets

    def _read(self, file_path: str) -> Iterable[Document]:
        for index, record in enumerate(load_json_records(file_path)):
            for document in self.document_sentences(record, file_path, index):
                if self.unescape_brackets:
                    document.tokens = [PTB_BRACKETS.get(token, token) for token in document.tokens]
                yield document

    @staticmethod
    def document_sentences(record: Any, file_path: str, index: int) -> List[Document]:
        """The sentences of one DyGIE document as ``Document``s."""
        if not isinstance(record, dict):
            raise DataError(file_path, index, f"expected a JSON object (a DyGIE document), found "
                                              f"{type(record).__name__}")
        doc_key = record.get("doc_key", index)
        where = f"document {index} (doc_key {doc_key!r})"
        sentences = record.get("sentences")
        if not isinstance(sentences, list) or not all(isinstance(s, list) for s in sentences):
            raise DataError(file_path, where, '"sentences" must be a list of token lists')
        per_sentence = {}
        for key in ("ner", "relations"):
            value = record.get(key, [[] for _ in sentences])
            if not isinstance(value, list) or len(value) != len(sentences):
                raise DataError(file_path, where, f'"{key}" must hold one list per sentence '
                                                  f'({len(sentences)} sentences)')
            per_sentence[key] = value
        documents, offset = [], 0
        for number, (tokens, ner, relations) in enumerate(zip(sentences, per_sentence["ner"],
                                                              per_sentence["relations"])):
            place = f"{where}, sentence {number}"
            if not all(isinstance(token, str) for token in tokens):
                raise DataError(file_path, place, "tokens must be strings")
            entities = _entities(ner, offset, len(tokens), file_path, place)
            if tokens:
                documents.append(Document(list(tokens), entities,
                                          _relations(relations, entities, offset, len(tokens), file_path, place),
                                          {"doc_key": doc_key, "sentence": number}))
            elif relations:
                raise DataError(file_path, place, "an empty sentence has relations")
            offset += len(tokens)
        return documents


def _entities(ner: Any, offset: int, length: int, file_path: str, place: str) -> List[Entity]:
    if not isinstance(ner, list):
        raise DataError(file_path, place, '"ner" of a sentence must be a list')
    entities = []
    for i, item in enumerate(ner):
        start, end = _span(item, 2, f"entity {i}", file_path, place)
        label = item[2]
        if not isinstance(label, str) or not label:
            raise DataError(file_path, place, f"entity {i}: type must be a non-empty string, not {label!r}")
        entities.append(Entity(label, *_in_sentence(start, end, offset, length, f"entity {i}", file_path, place)))
    return entities


def _relations(relations: Any, entities: List[Entity], offset: int, length: int, file_path: str,
               place: str) -> List[Relation]:
    if not isinstance(relations, list):
        raise DataError(file_path, place, '"relations" of a sentence must be a list')
    index_of = {}
    for i, entity in enumerate(entities):
        index_of.setdefault((entity.start, entity.end), i)  # the first entity of a span is its argument
    found = []
    for i, item in enumerate(relations):
        if not isinstance(item, list) or len(item) != 5:
            raise DataError(file_path, place, f"relation {i} must be [head start, head end, tail start, "
                                              f"tail end, type], not {item!r}")
        arguments = []
        for name, (start, end) in (("head", item[0:2]), ("tail", item[2:4])):
            what = f"relation {i} {name}"
            span = _in_sentence(*_span([start, end], 2, what, file_path, place), offset, length, what, file_path,
                                place)
            if span not in index_of:
                raise DataError(file_path, place, f"relation {i}: its {name} [{start}, {end}] (document offsets, "
                                                  f"inclusive) is not an annotated entity of the sentence")
            arguments.append(index_of[span])
        label = item[4]
        if not isinstance(label, str) or not label:
            raise DataError(file_path, place, f"relation {i}: type must be a non-empty string, not {label!r}")
        found.append(Relation(label, *arguments))
    return found


def _span(item: Any, width: int, what: str, file_path: str, place: str) -> Tuple[int, int]:
    if not isinstance(item, list) or len(item) < width or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in item[:2]):
        raise DataError(file_path, place, f"{what} must start with two integer offsets, not {item!r}")
    return item[0], item[1]


def _in_sentence(start: int, end: int, offset: int, length: int, what: str, file_path: str,
                 place: str) -> Tuple[int, int]:
    """Document-level inclusive [start, end] -> sentence-level exclusive (start, end)."""
    if start > end:
        raise DataError(file_path, place, f"{what}: start {start} > end {end}")
    if start < offset or end >= offset + length:
        raise DataError(file_path, place, f"{what}: [{start}, {end}] is not inside the sentence, which holds "
                                          f"document tokens {offset} to {offset + length - 1}")
    return start - offset, end + 1 - offset
