"""The CasRel triples reader (NYT, WebNLG and their partial-match versions) on hand-made records."""
import json
import logging

import pytest

from joint_ere.common.errors import ConfigurationError, DataError
from joint_ere.data.readers import CasRelTriplesReader, DatasetReader
from tests.conftest import SHARED_DATA, needs_shared_data


def write(tmp_path, records, name="triples.json"):
    path = tmp_path / name
    path.write_text(json.dumps(records))
    return str(path)


def triples(document):
    """(subject span, relation, object span) of a document, as the reader built them."""
    spans = [(e.start, e.end) for e in document.entities]
    return [(spans[r.head], r.type, spans[r.tail]) for r in document.relations]


RECORDS = [
    {"text": "The University of Texas is in Austin , Texas .",
     "triple_list": [["University of Texas", "locatedIn", "Austin"],
                     ["Austin", "partOf", "Texas"],
                     ["Austin", "partOf", "Texas"]]},  # a repeated triple
    {"text": "Paris is far from Rome , and Rome from Paris .",
     "triple_list": [["Rome", "near", "Paris"]]},  # both strings occur twice
    {"text": "Mary met Bob .", "triple_list": [["Mary", "knows", "Alice"], ["Mary", "knows", "Bob"]]},
    {"text": "Nothing here .", "triple_list": []},
]


def test_exact_arguments_are_whole_runs_of_tokens_found_first(tmp_path):
    documents = CasRelTriplesReader().read_documents(write(tmp_path, RECORDS))
    assert documents[0].tokens[:4] == ["The", "University", "of", "Texas"]
    # "Texas" alone occurs inside "University of Texas" first: the first occurrence is taken, as RIN's code does
    assert triples(documents[0]) == [((1, 4), "locatedIn", (6, 7)), ((6, 7), "partOf", (3, 4))]
    assert {e.type for e in documents[0].entities} == {"Entity"}
    assert triples(documents[1]) == [((4, 5), "near", (0, 1))]
    assert triples(documents[2]) == [((0, 1), "knows", (2, 3))]  # the triple naming "Alice" is dropped
    assert (documents[3].entities, documents[3].relations) == ([], [])


def test_nearest_takes_the_closest_pair_of_placements(tmp_path):
    documents = CasRelTriplesReader(occurrence="nearest").read_documents(write(tmp_path, RECORDS))
    assert triples(documents[0])[1] == ((6, 7), "partOf", (8, 9))  # the "Texas" next to "Austin"
    assert triples(documents[1]) == [((7, 8), "near", (9, 10))]  # one token apart, not three
    tie = [{"text": "x a y x", "triple_list": [["a", "r", "x"]]}]  # "x" right before and two after "a"
    assert triples(CasRelTriplesReader(occurrence="nearest").read_documents(write(tmp_path, tie))[0]) == [
        ((1, 2), "r", (0, 1))]  # gap 0 against 1
    records = [{"text": "a b c a", "triple_list": [["a", "r", "a"]]}]  # never the same tokens when avoidable
    assert triples(CasRelTriplesReader(occurrence="nearest").read_documents(write(tmp_path, records))[0]) == [
        ((0, 1), "r", (3, 4))]


def test_partial_arguments_are_the_last_word(tmp_path):
    records = [{"text": "Alan Bean flew on Apollo 12 .", "triple_list": [["Bean", "crew", "12"],
                                                                          ["Alan Bean", "crew", "Apollo 12"]]}]
    document = CasRelTriplesReader(match="partial").read_documents(write(tmp_path, records))[0]
    # a multi-word string in partial data still counts by its last word, so both triples are one
    assert triples(document) == [((1, 2), "crew", (5, 6))]


def test_the_report_counts_every_outcome_and_names_the_records(tmp_path, caplog):
    reader = CasRelTriplesReader()
    path = write(tmp_path, RECORDS + [{"text": "X .", "triple_list": [["Y", "r", "X"]]}])
    with caplog.at_level(logging.WARNING):
        reader.read_documents(path)
    report = reader.reports[path]
    assert (report.triples, report.located, report.ambiguous, report.duplicates, report.not_found) == (7, 5, 3, 1, 2)
    assert report.records_not_found == [2, 4]
    assert caplog.text.count("not found") == 1
    assert f"{path}: 7 triples, 5 located (3 with a string that occurs more than once), 1 repeated, 2 not found " \
           f"(records 2, 4)" in caplog.text


def test_strict_makes_a_missing_string_an_error_naming_file_and_record(tmp_path):
    path = write(tmp_path, RECORDS)
    with pytest.raises(DataError, match=r"triples.json.*record 2.*triple 0: 'Alice' does not occur"):
        CasRelTriplesReader(strict=True).read_documents(path)


def test_accents_are_ignored_unless_asked_not_to(tmp_path):
    path = write(tmp_path, [{"text": "A clinic in Medellin , Colombia .",
                             "triple_list": [["Colombia", "contains", "Medellín"]]}])
    assert triples(CasRelTriplesReader().read_documents(path)[0]) == [((5, 6), "contains", (3, 4))]
    reader = CasRelTriplesReader(ignore_accents=False)
    assert reader.read_documents(path)[0].relations == [] and reader.reports[path].not_found == 1


@pytest.mark.parametrize("record, message", [
    ({"triple_list": []}, '"text" must be a non-empty string'),
    ({"text": "a b", "triple_list": {"a": 1}}, '"triple_list" must be a list'),
    ({"text": "a b", "triple_list": [["a", "r"]]}, "triple 0 must be [subject, relation, object] strings"),
    ({"text": "a b", "triple_list": [["a", "", "b"]]}, "triple 0 must be"),
    (["a", "b"], "expected a JSON object"),
])
def test_malformed_records_name_file_and_record(tmp_path, record, message):
    with pytest.raises(DataError, match="record 1") as error:
        CasRelTriplesReader().read_documents(write(tmp_path, [RECORDS[3], record]))
    assert message in str(error.value)


def test_settings_are_checked():
    with pytest.raises(ConfigurationError, match="dataset_reader.match: 'fuzzy'"):
        CasRelTriplesReader(match="fuzzy")
    with pytest.raises(ConfigurationError, match="dataset_reader.occurrence: 'last'"):
        CasRelTriplesReader(occurrence="last")
    assert isinstance(DatasetReader.by_name("casrel_triples")(), CasRelTriplesReader)


@needs_shared_data
@pytest.mark.parametrize("folder, match, split, sentences, unique", [
    ("webnlg_star", "partial", "val", 500, 1113), ("nyt", "exact", "val", 5000, 7985),
    ("nyt_star", "partial", "test", 5000, 8110)])
def test_shipped_files_read_completely(folder, match, split, sentences, unique):
    reader = CasRelTriplesReader(match=match)
    path = str(SHARED_DATA / folder / f"{split}_triples.json")
    documents = reader.read_documents(path)
    assert len(documents) == sentences
    assert sum(len(d.relations) for d in documents) == unique
    assert reader.reports[path].not_found == 0


def test_a_label_file_fixes_the_relation_vocabulary(tmp_path):
    from joint_ere.data import Vocabulary

    instances = CasRelTriplesReader().read(write(tmp_path, RECORDS))
    rel2id = tmp_path / "rel2id.json"
    rel2id.write_text(json.dumps([{"partOf": 1, "locatedIn": 0, "near": 3, "knows": 2, "unused": 4},
                                  {"0": "locatedIn"}]))
    vocab = Vocabulary.from_instances(instances, label_files={"relation_labels": str(rel2id)})
    assert vocab.get_index_to_token_vocabulary("relation_labels") == {
        0: "locatedIn", 1: "partOf", 2: "knows", 3: "near", 4: "unused"}
    assert vocab.get_vocab_size("entity_labels") == 1  # other namespaces still come from the data
    rel2id.write_text(json.dumps(["locatedIn", "near"]))
    with pytest.raises(ConfigurationError, match=r"vocabulary.label_files.relation_labels: .* lacks 2 label\(s\) "
                                                 r"of the data: knows, partOf"):
        Vocabulary.from_instances(instances, label_files={"relation_labels": str(rel2id)})
    rel2id.write_text(json.dumps({"a": "b"}))
    with pytest.raises(ConfigurationError, match="is neither"):
        Vocabulary.from_instances(instances, label_files={"relation_labels": str(rel2id)})


@needs_shared_data
def test_nyt_relations_come_from_rel2id_also_those_a_split_lacks():
    from joint_ere.data import Vocabulary

    instances = CasRelTriplesReader().read(str(SHARED_DATA / "nyt" / "val_triples.json"))
    assert len({r.type for i in instances for r in i.document.relations}) == 22
    vocab = Vocabulary.from_instances(instances, label_files={"relation_labels": str(SHARED_DATA / "nyt" /
                                                                                     "rel2id.json")})
    assert vocab.get_vocab_size("relation_labels") == 24
