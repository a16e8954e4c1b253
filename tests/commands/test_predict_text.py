"""``allennlp predict`` and the Python API on raw text: offsets relative to the input, bad records refused."""
import json

import pytest

from joint_ere.commands import main
from joint_ere.common import DataError
from joint_ere.data import SpertJsonReader
from joint_ere.predictors import Predictor

TEXTS = [
    "Mary Jones works for Acme Corp. Peter Brown lives in Boston.",
    '  Globex   is based in "Paris" .\tZoë Ünal lives in Zürich.',
    "Peter Brown works for Globex.\u00a0\u00a0Mary Jones lives in Paris.",
]


def check_offsets(output):
    assert len(output["tokens"]) == len(output["token_offsets"])
    for token, (start, end) in zip(output["tokens"], output["token_offsets"]):
        assert output["text"][start:end] == token
    for entity in output["entities"]:
        assert output["text"][entity["char_start"]:entity["char_end"]] == entity["text"]
        assert entity["char_start"] == output["token_offsets"][entity["start"]][0]
        assert entity["char_end"] == output["token_offsets"][entity["end"] - 1][1]
    for relation in output["relations"]:
        assert 0 <= relation["head"] < len(output["entities"]) and 0 <= relation["tail"] < len(output["entities"])


@pytest.fixture(scope="module")
def predictor(quickstart_archive):
    return Predictor.from_path(str(quickstart_archive), cuda_device=-1)


def test_python_api_on_raw_text(predictor):
    one = predictor.predict(TEXTS[0])
    check_offsets(one)
    assert one["text"] == TEXTS[0]
    found = {(e["text"], e["type"]) for e in one["entities"]}
    assert {("Mary Jones", "Peop"), ("Boston", "Loc")} <= found  # the quick-start model learnt these names
    batch = predictor.predict_batch(TEXTS + [{"text": TEXTS[1], "id": 7}, {"tokens": ["Globex", "is", "in", "Paris"]}])
    assert len(batch) == 5 and batch[0] == one and batch[3]["id"] == 7
    assert {k: v for k, v in batch[3].items() if k != "id"} == batch[1]
    assert "text" not in batch[4] and batch[4]["tokens"] == ["Globex", "is", "in", "Paris"]
    for output in batch[:4]:
        check_offsets(output)
    with pytest.raises(DataError, match=r"<input>, record 1: the text is empty"):
        predictor.predict_batch(["fine", " \n "])
    with pytest.raises(DataError, match=r"<input>, record 0: expected a text"):
        predictor.predict_batch([["not", "a", "record"]])


def test_a_text_of_several_sentences_is_one_record(predictor):
    text = "\n".join(TEXTS) + "\n\n" + "Paris " * 450
    output = predictor.predict(text)
    check_offsets(output)
    assert len(output["sentences"]) >= 6
    starts = [s["start"] for s in output["sentences"]]
    assert starts == sorted(starts) and output["sentences"][-1]["end"] == len(output["tokens"])
    assert max(s["end"] - s["start"] for s in output["sentences"]) == 200  # the 450 words are cut into pieces
    assert {e["sentence"] for e in output["entities"]} >= {0, 1, 2}


def test_predict_command_reads_plain_text(quickstart_archive, tmp_path, capsys):
    source = tmp_path / "docs.txt"
    source.write_text(TEXTS[0] + "\r\n\n   \n" + TEXTS[1] + "\n" + TEXTS[2], encoding="utf-8")
    out = tmp_path / "out.jsonl"
    assert main(["predict", str(quickstart_archive), str(source), "--output-file", str(out), "--silent"]) == 0
    outputs = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [o["text"] for o in outputs] == TEXTS  # blank lines skipped, "\r" dropped
    for output in outputs:
        check_offsets(output)
    # the output is a data file that the readers (and so evaluate) take back
    documents = SpertJsonReader().read_documents(str(out))
    assert [d.tokens for d in documents] == [o["tokens"] for o in outputs]
    assert [len(d.entities) for d in documents] == [len(o["entities"]) for o in outputs]
    # --streams: the same predictions in one stream and in two batches at once (of one sentence each)
    for streams in ("1", "2"):
        assert main(["predict", str(quickstart_archive), str(source), "--output-file", str(tmp_path / streams),
                     "--silent", "--batch-size", "1", "--streams", streams]) == 0
    assert (tmp_path / "1").read_text(encoding="utf-8") == (tmp_path / "2").read_text(encoding="utf-8")
    assert len((tmp_path / "2").read_text(encoding="utf-8").splitlines()) == 3


def test_predict_command_reads_text_records_and_token_records(quickstart_archive, tmp_path, capsys):
    source = tmp_path / "mixed.jsonl"
    records = [{"text": TEXTS[0], "id": "a"}, {"tokens": ["Mary", "Jones", "lives", "in", "Paris"], "id": "b"},
               {"text": TEXTS[2], "id": "c", "entities": [{"type": "X", "start": 0, "end": 1}]}]
    source.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    assert main(["predict", str(quickstart_archive), str(source)]) == 0
    outputs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [o["id"] for o in outputs] == ["a", "b", "c"]
    assert "token_offsets" in outputs[0] and "token_offsets" not in outputs[1]
    assert all(e["type"] != "X" for e in outputs[2]["entities"])  # gold labels of the input are not kept
    # --input-format text reads the same file as lines of text
    assert main(["predict", str(quickstart_archive), str(source), "--input-format", "text"]) == 0
    outputs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert outputs[0]["text"] == json.dumps(records[0])


@pytest.mark.parametrize("content, where", [
    ('{"text": "fine"}\n{"text": 3}\n', 'record 1: "text" must be a string'),
    ('{"text": "fine"}\n{"text": "   "}\n', "record 1: the text is empty"),
    ('{"id": 1}\n', "record 0: expected a text"),
    ("\n \n\t\n", "the file is empty"),
])
def test_bad_input_stops_before_anything_is_written(quickstart_archive, tmp_path, capsys, content, where):
    source, out = tmp_path / "bad.jsonl", tmp_path / "out.jsonl"
    source.write_text(content)
    assert main(["predict", str(quickstart_archive), str(source), "--output-file", str(out)]) == 1
    assert where in capsys.readouterr().err
    assert not out.exists()


def test_streams_give_the_one_stream_predictions_in_input_order(quickstart_archive, monkeypatch):
    """Batches predicted two at a time, each on one torch thread, come back as one stream would give them, in
    input order; torch's thread count is restored afterwards."""
    import torch

    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)  # a 1-core machine still runs two streams
    threads = []
    monkeypatch.setattr(torch, "set_num_threads", threads.append)
    predictor = Predictor.from_path(str(quickstart_archive), cuda_device=-1)
    predictor.batch_size = 2
    texts = [text + " " * i for i in range(5) for text in TEXTS]  # 15 texts, 25 sentences, 13 batches
    predictor.streams = 1
    one_stream = predictor.predict_batch(texts)
    assert threads == []
    predictor.streams = None  # the model's choice: one stream per torch thread
    assert predictor.model.prediction_streams == 0
    calls = []
    predict_documents = predictor.predict_documents
    monkeypatch.setattr(predictor, "predict_documents", lambda docs: calls.append(docs) or predict_documents(docs))
    assert predictor.predict_batch(texts) == one_stream
    assert sum(len(output["sentences"]) for output in one_stream) == 25
    assert threads == [1, 2] and len(calls) == 13
    assert [output["text"] for output in one_stream] == texts
    assert sum(len(output["entities"]) for output in one_stream) > 0
