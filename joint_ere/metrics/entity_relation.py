"""
P/R/F1 for joint extraction, compared on decoded documents (DESIGN.md, "Metrics"):

- ``ner``: strict entities (span and type).
- ``re``: relation boundaries, both argument spans and the relation type ("RE").
- ``re_strict``: also both entity types ("RE+").
- ``re_partial``: the last token of both arguments and the relation type (the "partial match" of NYT* and
  WebNLG*, whose arguments are single words; exact match there is ``re``).

Data with typed entities get ``ner, re, re_strict``; data with one entity type (NYT, WebNLG) get
``ner, re, re_partial``: there RE+ would equal RE to the last digit, so it is not printed twice.
Each has ``micro`` (pooled counts) and ``macro`` (mean over types of the per-type F1, over every type seen
in gold or predictions); per-type values on request. Tuples are sets per document, so duplicates count once.
Names: ``{ner,re,re_strict or re_partial}_{micro,macro}_{precision,recall,f1}`` and
``{task}_{type}_{precision,recall,f1}``.

With the per-type values come NER's ``ner_{in_triple,out_of_triple}_{precision,recall,f1}`` (Cascade-SRN's
Table 3): entities are split by the role of their span in the gold document, in-triple when the span is an
argument of a gold relation; a predicted span counts in the group its span has in gold (out-of-triple when gold
has no entity there), so both groups' precision and recall share one partition.
"""
from collections import defaultdict
from typing import Dict, Iterable, List, Set, Tuple

from joint_ere.common import distributed
from joint_ere.data.document import Document

TASKS = ("ner", "re", "re_strict")
UNTYPED_TASKS = ("ner", "re", "re_partial")


def _tuples(doc: Document) -> Dict[str, Set[Tuple]]:
    ents = doc.entities
    ner = {(e.start, e.end, e.type) for e in ents}
    re_b, re_s, re_p = set(), set(), set()
    for r in doc.relations:
        head, tail = ents[r.head], ents[r.tail]
        re_b.add((head.start, head.end, tail.start, tail.end, r.type))
        re_s.add((head.start, head.end, head.type, tail.start, tail.end, tail.type, r.type))
        re_p.add((head.end - 1, tail.end - 1, r.type))
    return {"ner": ner, "re": re_b, "re_strict": re_s, "re_partial": re_p}


def prf(tp: int, fp: int, fn: int) -> Tuple[float, float, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


class EntityRelationMetrics:
    """``typed_entities``: whether the data's entities have more than one type (models pass it from their
    vocabulary); it picks ``re_strict`` or ``re_partial``."""

    def __init__(self, typed_entities: bool = True) -> None:
        self.tasks = TASKS if typed_entities else UNTYPED_TASKS
        self.reset()

    def reset(self) -> None:
        # counts[task][type] = [tp, fp, fn]
        self.counts: Dict[str, Dict[str, List[int]]] = {t: defaultdict(lambda: [0, 0, 0]) for t in self.tasks}
        self.triple_counts: Dict[str, List[int]] = {"in_triple": [0, 0, 0], "out_of_triple": [0, 0, 0]}

    def __call__(self, predicted: Iterable[Document], gold: Iterable[Document]) -> None:
        for pred_doc, gold_doc in zip(predicted, gold, strict=True):
            pred, true = _tuples(pred_doc), _tuples(gold_doc)
            for task in self.tasks:
                table = self.counts[task]
                for item in pred[task] & true[task]:
                    table[item[-1]][0] += 1
                for item in pred[task] - true[task]:
                    table[item[-1]][1] += 1
                for item in true[task] - pred[task]:
                    table[item[-1]][2] += 1
            arguments = {(e.start, e.end) for r in gold_doc.relations
                         for e in (gold_doc.entities[r.head], gold_doc.entities[r.tail])}
            for index, items in enumerate((pred["ner"] & true["ner"], pred["ner"] - true["ner"],
                                           true["ner"] - pred["ner"])):
                for start, end, _ in items:
                    self.triple_counts["in_triple" if (start, end) in arguments else "out_of_triple"][index] += 1

    def state(self) -> Dict[str, Dict[str, List[int]]]:
        """The counts, as plain dicts (picklable)."""
        return {**{task: dict(table) for task, table in self.counts.items()}, "triple": dict(self.triple_counts)}

    def add_state(self, state: Dict[str, Dict[str, List[int]]]) -> None:
        """Adds counts from ``state()`` of another instance (e.g. another process's)."""
        for task, table in state.items():
            target = self.triple_counts if task == "triple" else self.counts[task]
            for label, counts in table.items():
                target[label] = [a + b for a, b in zip(target[label], counts)]

    def sum_across_processes(self) -> None:
        """In a distributed run, every process's counts become the sum over all processes (all must call it)."""
        if distributed.world_size() == 1:
            return
        states = distributed.all_gather(self.state())
        self.reset()
        for state in states:
            self.add_state(state)

    def get_metric(self, reset: bool = False, per_type: bool = False) -> Dict[str, float]:
        out: Dict[str, float] = {}
        for task in self.tasks:
            table = self.counts[task]
            totals = [sum(c[i] for c in table.values()) for i in range(3)]
            for name, value in zip(("precision", "recall", "f1"), prf(*totals)):
                out[f"{task}_micro_{name}"] = value
            per = {label: prf(*counts) for label, counts in sorted(table.items())}
            for i, name in enumerate(("precision", "recall", "f1")):
                out[f"{task}_macro_{name}"] = sum(v[i] for v in per.values()) / len(per) if per else 0.0
            if per_type:
                for label, values in per.items():
                    for name, value in zip(("precision", "recall", "f1"), values):
                        out[f"{task}_{label}_{name}"] = value
        if per_type:
            for group, counts in self.triple_counts.items():
                for name, value in zip(("precision", "recall", "f1"), prf(*counts)):
                    out[f"ner_{group}_{name}"] = value
        if reset:
            self.reset()
        return out
