"""
``casrel_triples``: the CasRel / CopyRE files of NYT and WebNLG (``*_triples.json``): a JSON list of
``{"text": ..., "triple_list": [[subject, relation, object], ...]}`` with arguments as strings and no offsets.
"""
import logging
import unicodedata
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from joint_ere.common.errors import ConfigurationError, DataError
from joint_ere.data.document import Document, Entity, Relation
from joint_ere.data.readers.dataset_reader import DatasetReader, load_json_records
from joint_ere.data.token_indexers import TokenIndexer

logger = logging.getLogger(__name__)

MATCHES = ("exact", "partial")
OCCURRENCES = ("first", "nearest")
Span = Tuple[int, int]


@dataclass
class LocationReport:
    """What reading one file found: triples read, located, located in more than one place (resolved by the
    reader's rule), not found (and in which records), and duplicates dropped."""

    triples: int = 0
    located: int = 0
    ambiguous: int = 0
    not_found: int = 0
    duplicates: int = 0
    records_not_found: List[int] = field(default_factory=list)

    def summary(self, file_path: str) -> str:
        text = (f"{file_path}: {self.triples} triples, {self.located} located ({self.ambiguous} with a string "
                f"that occurs more than once), {self.duplicates} repeated, {self.not_found} not found")
        if self.records_not_found:
            shown = ", ".join(str(r) for r in self.records_not_found[:10])
            more = f" and {len(self.records_not_found) - 10} more" if len(self.records_not_found) > 10 else ""
            text += f" (records {shown}{more})"
        return text


@DatasetReader.register("casrel_triples")
class CasRelTriplesReader(DatasetReader):
    """
    The text is split on whitespace (the files are tokenised and joined with single spaces). Each argument string is
    split the same way and located as a run of tokens; in ``partial`` data (NYT*, WebNLG*: each argument is the last
    word of the entity) the entity is the located run's last token, in ``exact`` data the whole run. Every distinct
    span becomes one entity of type ``entity_type`` (these datasets have no entity types).

    A string found in several places is resolved by ``occurrence``: ``first`` (RIN's and CasRel's official code: the
    first occurrence of each argument, each on its own) or ``nearest`` (of all placements of the subject and the
    object, the pair nearest each other, the earliest on ties, never both on the very same span when another pair
    exists; overlapping spans count as adjacent). A triple with an argument that does not occur is dropped, counted
    and reported once per file with its records; ``strict: true`` makes it an error naming file and record. A triple
    repeated in a record (the exact NYT files have some) is read once. With ``ignore_accents`` (the default) a
    string matches the text regardless of diacritics: the exact NYT files name "Medellín" in texts that write
    "Medellin".

    # Parameters

    token_indexers, max_instances : as for every `DatasetReader`
    match : `str`, optional (default = `"exact"`)
        ``exact`` (NYT, WebNLG) or ``partial`` (NYT*, WebNLG*).
    entity_type : `str`, optional (default = `"Entity"`)
    occurrence : `str`, optional (default = `"first"`)
    strict : `bool`, optional (default = `False`)
    ignore_accents : `bool`, optional (default = `True`)
    """

    def __init__(self, token_indexers: Optional[Dict[str, TokenIndexer]] = None, max_instances: Optional[int] = None,
                 match: str = "exact", entity_type: str = "Entity", occurrence: str = "first",
                 strict: bool = False, ignore_accents: bool = True) -> None:
        super().__init__(token_indexers, max_instances)
        for key, value, allowed in (("match", match, MATCHES), ("occurrence", occurrence, OCCURRENCES)):
            if value not in allowed:
                raise ConfigurationError(f"dataset_reader.{key}: {value!r} is not one of {', '.join(allowed)}")
        if not isinstance(entity_type, str) or not entity_type:
            raise ConfigurationError("dataset_reader.entity_type must be a non-empty string")
        self.match = match
        self.entity_type = entity_type
        self.occurrence = occurrence
        self.strict = strict
        self.ignore_accents = ignore_accents
        self.reports: Dict[str, LocationReport] = {}

    def _read(self, file_path: str) -> Iterable[Document]:
        report = LocationReport()
        documents = [self.record_to_document(record, file_path, index, report)
                     for index, record in enumerate(load_json_records(file_path))]
        self.reports[file_path] = report
        (logger.warning if report.not_found else logger.info)(report.summary(file_path))
        return documents

    def record_to_document(self, record: object, file_path: str, index: int, report: LocationReport) -> Document:
        if not isinstance(record, dict):
            raise DataError(file_path, index, f"expected a JSON object, found {type(record).__name__}")
        text, triples = record.get("text"), record.get("triple_list", [])
        if not isinstance(text, str) or not text.strip():
            raise DataError(file_path, index, '"text" must be a non-empty string')
        if not isinstance(triples, list):
            raise DataError(file_path, index, f'"triple_list" must be a list, not {type(triples).__name__}')
        tokens = text.split()
        searched = [without_accents(token) for token in tokens] if self.ignore_accents else tokens
        spans: Dict[Span, int] = {}
        relations: Dict[Tuple[int, str, int], None] = {}  # ordered and unique
        for number, triple in enumerate(triples):
            if not (isinstance(triple, list) and len(triple) == 3
                    and all(isinstance(x, str) and x.strip() for x in triple)):
                raise DataError(file_path, index, f"triple {number} must be [subject, relation, object] strings, "
                                                  f"not {triple!r}")
            report.triples += 1
            subject, label, obj = triple
            if self.ignore_accents:
                subject, obj = without_accents(subject), without_accents(obj)
            placed = self.locate(searched, subject, obj)
            if placed is None:
                report.not_found += 1
                if not report.records_not_found or report.records_not_found[-1] != index:
                    report.records_not_found.append(index)
                if self.strict:
                    missing = triple[0] if not occurrences(searched, subject) else triple[2]
                    raise DataError(file_path, index, f"triple {number}: {missing!r} does not occur in the text "
                                                      f"(strict: true)")
                continue
            (head, tail), ambiguous = placed
            report.located += 1
            report.ambiguous += ambiguous
            key = (spans.setdefault(head, len(spans)), label, spans.setdefault(tail, len(spans)))
            if key in relations:
                report.duplicates += 1
            relations[key] = None
        entities = [Entity(self.entity_type, start, end) for start, end in spans]
        return Document(tokens, entities, [Relation(label, head, tail) for head, label, tail in relations])

    def locate(self, tokens: Sequence[str], subject: str, obj: str) -> Optional[Tuple[Tuple[Span, Span], bool]]:
        """The (subject, object) entity spans, and whether either string occurred more than once; None when one
        does not occur."""
        heads, tails = occurrences(tokens, subject), occurrences(tokens, obj)
        if not heads or not tails:
            return None
        if self.occurrence == "first":
            head, tail = heads[0], tails[0]
        else:
            def distance(pair: Tuple[Span, Span]) -> Tuple[bool, int, Span, Span]:
                (h, t) = pair
                gap = max(h[0], t[0]) - min(h[1], t[1])  # tokens between them (negative: they overlap)
                return (h == t, max(gap, 0), h, t)

            head, tail = min(((h, t) for h in heads for t in tails), key=distance)
        if self.match == "partial":
            head, tail = (head[1] - 1, head[1]), (tail[1] - 1, tail[1])
        return (head, tail), len(heads) > 1 or len(tails) > 1


def occurrences(tokens: Sequence[str], string: str) -> List[Span]:
    """Every (start, end) where the whitespace-split ``string`` occurs as a run of ``tokens``."""
    words = string.split()
    width = len(words)
    return [(i, i + width) for i in range(len(tokens) - width + 1) if list(tokens[i: i + width]) == words]


def without_accents(text: str) -> str:
    """``text`` with combining marks removed after canonical decomposition (é -> e, ü -> u)."""
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)) if decomposed != text else text
