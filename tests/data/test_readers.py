import json

import pytest

from joint_ere.common.errors import DataError
from joint_ere.data import DatasetReader, Document, SpertJsonReader
from tests.conftest import FIXTURES, SHARED_DATA, needs_shared_data


def write(tmp_path, content, name="data.json"):
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


def test_reads_fixture_documents():
    docs = SpertJsonReader().read_documents(str(FIXTURES / "train.json"))
    assert len(docs) == 8
    first = docs[0]
    assert first.tokens[:2] == ["John", "Smith"]
    assert [(e.type, e.start, e.end) for e in first.entities] == [("Peop", 0, 2), ("Org", 4, 6), ("Loc", 7, 8)]
    assert [(r.type, r.head, r.tail) for r in first.relations] == [("Work_For", 0, 1), ("OrgBased_In", 1, 2)]


def test_tricky_records(tmp_path):
    records = [
        # overlapping and nested entities, a relation to itself, unicode and extra fields kept as metadata
        {"tokens": ["Naïve", "B-cell", "lymphoma", "\u00a0"], "orig_id": 7,
         "entities": [{"type": "AE", "start": 0, "end": 3}, {"type": "AE", "start": 1, "end": 3}],
         "relations": [{"type": "R", "head": 0, "tail": 0}]},
        # no entities key at all: unlabelled text
        {"tokens": ["Just", "text"]},
    ]
    docs = SpertJsonReader().read_documents(write(tmp_path, records))
    assert docs[0].meta == {"orig_id": 7}
    assert docs[0].tokens == ["Naïve", "B-cell", "lymphoma", "\u00a0"]  # a no-break space is a token as given
    assert [(e.type, e.start, e.end) for e in docs[0].entities] == [("AE", 0, 3), ("AE", 1, 3)]
    assert [(r.type, r.head, r.tail) for r in docs[0].relations] == [("R", 0, 0)]
    assert docs[0].to_json() == records[0]  # written back as read
    assert docs[1].tokens == ["Just", "text"] and docs[1].entities == [] and docs[1].relations == []


def test_json_lines_are_accepted(tmp_path):
    path = write(tmp_path, '{"tokens": ["a"]}\n\n{"tokens": ["b", "c"]}\n', "data.jsonl")
    assert [d.tokens for d in SpertJsonReader().read_documents(path)] == [["a"], ["b", "c"]]


def test_round_trip_through_json():
    doc = SpertJsonReader().read_documents(str(FIXTURES / "train.json"))[5]
    again = Document.from_json(json.loads(json.dumps(doc.to_json())))
    assert again == doc


@pytest.mark.parametrize("content, message", [
    ('[{"tokens": ["a"]},\n {"tokens": ["b"}]', "malformed JSON"),
    ([{"tokens": ["a", "b"]}, {"tokens": ["a"], "entities": [{"type": "X", "start": 0, "end": 2}]}],
     "outside the 1 tokens"),
    ([{"tokens": ["a", "b"], "entities": [{"type": "X", "start": 1, "end": 1}]}], "start 1 >= end 1"),
    ([{"tokens": ["a", "b"], "entities": [{"type": "X", "start": 0, "end": 1}],
       "relations": [{"type": "R", "head": 0, "tail": 3}]}], "points at a missing entity"),
    ([{"tokens": ["a"]}, {"tokens": ["b"]}, {"tokens": []}], "empty token list"),
])
def test_bad_records_name_file_and_record(tmp_path, content, message):
    path = write(tmp_path, content)
    with pytest.raises(DataError) as error:
        SpertJsonReader().read_documents(path)
    assert message in str(error.value)
    assert path in str(error.value)
    assert "record" in str(error.value)


def test_bad_record_index_is_the_broken_one(tmp_path):
    path = write(tmp_path, [{"tokens": ["a"]}, {"tokens": ["b"]}, {"tokens": []}])
    with pytest.raises(DataError, match=r"record 2: empty token list"):
        SpertJsonReader().read_documents(path)


def test_malformed_json_lines_name_the_line(tmp_path):
    path = write(tmp_path, '{"tokens": ["a"]}\n{"tokens": \n', "bad.jsonl")
    with pytest.raises(DataError, match="line 2: malformed JSON"):
        SpertJsonReader().read_documents(path)


def test_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="data file not found"):
        SpertJsonReader().read(str(tmp_path / "nope.json"))


def test_reader_is_registered():
    assert DatasetReader.by_name("spert_json") is SpertJsonReader


@needs_shared_data
@pytest.mark.parametrize("relative, sentences, entities, relations", [
    ("conll04/conll04_train.json", 922, 3377, 1283),
    ("conll04/conll04_dev.json", 231, 893, 343),
    ("ade/ade_split_0_train.json", 3845, 9769, 6155),
    ("ade/ade_split_0_test.json", 427, 1070, 666),
    ("scierc/dev_triples.json", 275, 811, 455),
])
def test_benchmark_files_read_completely(relative, sentences, entities, relations):
    docs = SpertJsonReader().read_documents(str(SHARED_DATA / relative))
    assert len(docs) == sentences
    assert sum(len(d.entities) for d in docs) == entities
    assert sum(len(d.relations) for d in docs) == relations


def test_reads_from_a_url_into_the_cache(tmp_path):
    import functools
    import http.server
    import threading

    import cached_path

    served = tmp_path / "served"
    served.mkdir()
    (served / "train.json").write_text((FIXTURES / "train.json").read_text())
    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # keep the test output quiet
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    old_cache = cached_path.get_cache_dir()
    cached_path.set_cache_dir(tmp_path / "cache")
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/train.json"
        docs = SpertJsonReader().read_documents(url)
        assert len(docs) == 8 and docs[0].tokens[0] == "John"
        assert any((tmp_path / "cache").iterdir())
        with pytest.raises(DataError, match="could not download"):
            SpertJsonReader().read_documents(url.replace("train.json", "missing.json"))
    finally:
        cached_path.set_cache_dir(old_cache)
        server.shutdown()
