"""
The one document type of the project (DESIGN.md, "Data contract"): SpERT JSON. ``end`` is exclusive and a
relation's ``head``/``tail`` index the document's ``entities``. Predictions add ``score``.
"""
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from joint_ere.common.errors import DataError


@dataclass(frozen=True)
class Entity:
    type: str
    start: int
    end: int  # exclusive
    score: Optional[float] = None

    @property
    def span(self) -> tuple:
        return (self.start, self.end)


@dataclass(frozen=True)
class Relation:
    type: str
    head: int  # index into Document.entities
    tail: int
    score: Optional[float] = None


@dataclass
class Document:
    tokens: List[str]
    entities: List[Entity] = field(default_factory=list)
    relations: List[Relation] = field(default_factory=list)
    meta: Dict[str, Any] = field(default_factory=dict)  # everything else of the record (orig_id, ...)

    def to_json(self) -> Dict[str, Any]:
        def entity(e: Entity) -> Dict[str, Any]:
            out: Dict[str, Any] = {"type": e.type, "start": e.start, "end": e.end}
            if e.score is not None:
                out["score"] = round(e.score, 6)
            return out

        def relation(r: Relation) -> Dict[str, Any]:
            out: Dict[str, Any] = {"type": r.type, "head": r.head, "tail": r.tail}
            if r.score is not None:
                out["score"] = round(r.score, 6)
            return out

        return {
            "tokens": list(self.tokens),
            "entities": [entity(e) for e in self.entities],
            "relations": [relation(r) for r in self.relations],
            **self.meta,
        }

    @classmethod
    def from_json(cls, record: Any, path: str = "<input>", index: object = 0, require_labels: bool = False) -> "Document":
        """Validates one record; every problem raises a DataError naming ``path`` and ``index``."""

        def fail(message: str) -> DataError:
            return DataError(path, index, message)

        if not isinstance(record, dict):
            raise fail(f"expected a JSON object, found {type(record).__name__}")
        tokens = record.get("tokens")
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise fail('"tokens" must be a list of strings')
        if not tokens:
            raise fail("empty token list")
        if require_labels and "entities" not in record:
            raise fail('missing "entities"')
        entities: List[Entity] = []
        for key in ("entities", "relations"):
            if record.get(key) is not None and not isinstance(record[key], list):
                raise fail(f'"{key}" must be a list, not {type(record[key]).__name__}')
        for i, raw in enumerate(record.get("entities") or []):
            try:
                etype, start, end = raw["type"], raw["start"], raw["end"]
            except (TypeError, KeyError) as error:
                raise fail(f"entity {i} needs type, start and end ({error})") from None
            if not isinstance(etype, str) or not etype:
                raise fail(f"entity {i}: type must be a non-empty string, not {etype!r}")
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in (start, end)):
                raise fail(f"entity {i}: start and end must be integers")
            if start >= end:
                raise fail(f"entity {i} has start {start} >= end {end}")
            if start < 0 or end > len(tokens):
                raise fail(f"entity {i} span [{start}, {end}) lies outside the {len(tokens)} tokens")
            entities.append(Entity(etype, start, end, _score(raw, f"entity {i}", fail)))
        relations: List[Relation] = []
        for i, raw in enumerate(record.get("relations") or []):
            try:
                rtype, head, tail = raw["type"], raw["head"], raw["tail"]
            except (TypeError, KeyError) as error:
                raise fail(f"relation {i} needs type, head and tail ({error})") from None
            if not isinstance(rtype, str) or not rtype:
                raise fail(f"relation {i}: type must be a non-empty string, not {rtype!r}")
            for name, value in (("head", head), ("tail", tail)):
                if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < len(entities):
                    raise fail(f"relation {i} {name} {value!r} points at a missing entity "
                               f"(the record has {len(entities)} entities)")
            relations.append(Relation(rtype, head, tail, _score(raw, f"relation {i}", fail)))
        meta = {k: v for k, v in record.items() if k not in ("tokens", "entities", "relations")}
        return cls(list(tokens), entities, relations, meta)


def _score(raw: Dict[str, Any], what: str, fail: Any) -> Optional[float]:
    """A prediction's ``score`` (read back by ``evaluate``): a number, or absent."""
    score = raw.get("score")
    if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float))):
        raise fail(f"{what}: score must be a number, not {score!r}")
    return score
