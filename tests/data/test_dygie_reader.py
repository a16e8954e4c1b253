"""The DyGIE / PURE reader: document-level inclusive offsets to sentence-level exclusive ones."""
import json

import pytest

from joint_ere.common.errors import DataError
from joint_ere.data import DygieReader, SpertJsonReader
from tests.conftest import SHARED_DATA, needs_shared_data

TRICKY = {
    "doc_key": "tricky-1",
    "sentences": [["We", "use", "CRF", "models", "."], [], ["They", "-LRB-", "help", "-RRB-", "NER"], ["Done"]],
    "ner": [
        [[2, 3, "Method"], [2, 2, "Method"], [0, 0, "Generic"]],  # nested spans; the first word of the document
        [],
        [[5, 5, "Generic"], [9, 9, "Task"]],  # the first word after an empty sentence; a sentence's last word
        [[10, 10, "Generic"]],  # the last word of the document
    ],
    "relations": [
        [[2, 2, 0, 0, "USED-FOR"], [2, 3, 2, 2, "PART-OF"]],  # the inner of two nested spans is an argument
        [],
        [[5, 5, 9, 9, "USED-FOR"], [5, 5, 9, 9, "USED-FOR"]],  # duplicates are kept, as in SpERT's copy
        [],
    ],
    "clusters": [[[0, 0], [5, 5]]],
}


def write(tmp_path, *documents, name="docs.json"):
    path = tmp_path / name
    path.write_text("\n".join(json.dumps(d) for d in documents) + "\n")
    return str(path)


def as_tuples(doc):
    entities = [(e.type, e.start, e.end) for e in doc.entities]
    return entities, [(r.type, r.head, r.tail) for r in doc.relations]


def test_sentences_get_sentence_level_exclusive_offsets(tmp_path):
    docs = DygieReader().read_documents(write(tmp_path, TRICKY))
    assert [d.meta for d in docs] == [{"doc_key": "tricky-1", "sentence": 0}, {"doc_key": "tricky-1", "sentence": 2},
                                      {"doc_key": "tricky-1", "sentence": 3}]  # the empty sentence is skipped
    assert as_tuples(docs[0]) == ([("Method", 2, 4), ("Method", 2, 3), ("Generic", 0, 1)],
                                  [("USED-FOR", 1, 2), ("PART-OF", 0, 1)])
    assert docs[1].tokens == ["They", "(", "help", ")", "NER"]
    assert as_tuples(docs[1]) == ([("Generic", 0, 1), ("Task", 4, 5)], [("USED-FOR", 0, 1), ("USED-FOR", 0, 1)])
    assert as_tuples(docs[2]) == ([("Generic", 0, 1)], [])
    assert docs[1].to_json()["doc_key"] == "tricky-1"


def test_brackets_can_stay_escaped(tmp_path):
    docs = DygieReader(unescape_brackets=False).read_documents(write(tmp_path, TRICKY))
    assert docs[1].tokens[1] == "-LRB-"


def broken(**changes):
    return {**json.loads(json.dumps(TRICKY)), **changes}


@pytest.mark.parametrize("document, message", [
    (broken(relations=[[[2, 2, 1, 1, "USED-FOR"]], [], [], []]),
     "sentence 0: relation 0: its tail [1, 1] (document offsets, inclusive) is not an annotated entity"),
    (broken(ner=[[[3, 5, "Method"]], [], [], []]),
     "sentence 0: entity 0: [3, 5] is not inside the sentence, which holds document tokens 0 to 4"),
    (broken(relations=[[], [], [[5, 5, 10, 10, "USED-FOR"]], []]),
     "sentence 2: relation 0 tail: [10, 10] is not inside the sentence"),
    (broken(ner=[[], [], []]), '"ner" must hold one list per sentence (4 sentences)'),
    (broken(ner=[[[3, 2, "Method"]], [], [], []]), "sentence 0: entity 0: start 3 > end 2"),
    (broken(ner=[[[2, "3", "Method"]], [], [], []]), "sentence 0: entity 0 must start with two integer offsets"),
    (broken(ner=[[[2, 2, None]], [], [], []]), "entity 0: type must be a non-empty string"),
    (broken(relations=[[[2, 2, 0, 0]], [], [], []]), "relation 0 must be [head start, head end, tail start"),
    (broken(sentences="We use CRF"), '"sentences" must be a list of token lists'),
])
def test_broken_documents_name_file_document_and_sentence(tmp_path, document, message):
    path = write(tmp_path, TRICKY, document)
    with pytest.raises(DataError) as error:
        DygieReader().read_documents(path)
    assert path in str(error.value) and "document 1 (doc_key 'tricky-1')" in str(error.value)
    assert message in str(error.value)


def test_a_document_that_is_not_an_object(tmp_path):
    with pytest.raises(DataError, match=r"record 1: expected a JSON object \(a DyGIE document\), found list"):
        DygieReader().read_documents(write(tmp_path, TRICKY, ["We", "use"]))


@needs_shared_data
def test_scierc_dygie_dev_is_the_spert_sentence_file():
    """The two SciERC dev copies hold the same sentences, entities and relations; DyGIE's relation labels are
    upper case (USED-FOR where SpERT writes Used-for)."""
    dygie = DygieReader().read_documents(str(SHARED_DATA / "scierc" / "dygie" / "dev.json"))
    spert = SpertJsonReader().read_documents(str(SHARED_DATA / "scierc" / "dev_triples.json"))
    assert len(dygie) == len(spert) == 275
    for ours, theirs in zip(dygie, spert):
        assert ours.tokens == theirs.tokens
        ours_entities, ours_relations = as_tuples(ours)
        their_entities, their_relations = as_tuples(theirs)
        assert sorted(ours_entities) == sorted(their_entities)
        named = [(t, ours_entities[h], ours_entities[tl]) for t, h, tl in ours_relations]
        their_named = [(t.upper(), their_entities[h], their_entities[tl]) for t, h, tl in their_relations]
        assert sorted(named) == sorted(their_named)


@needs_shared_data
def test_scierc_dygie_train_reads_completely():
    docs = DygieReader().read_documents(str(SHARED_DATA / "scierc" / "dygie" / "train.json"))
    assert (len(docs), sum(len(d.entities) for d in docs), sum(len(d.relations) for d in docs)) == (1861, 5598, 3219)
    assert len({d.meta["doc_key"] for d in docs}) == 350
