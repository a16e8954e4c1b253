"""
Every input a user can hand the commands, broken in the ways files get broken. Each case must end with one line
``error: ...`` that names the file (or option) and the place, exit status 1, no traceback and no output written.
"""
import gzip
import json
from pathlib import Path
from typing import Dict, List, NamedTuple

import pytest

from joint_ere.commands import main
from tests.conftest import FIXTURES, tiny_config

GOOD_LINE = json.dumps({"tokens": ["Anna", "lives", "in", "Paris"],
                        "entities": [{"type": "Peop", "start": 0, "end": 1}, {"type": "Loc", "start": 3, "end": 4}],
                        "relations": [{"type": "Live_In", "head": 0, "tail": 1}]})
GOOD_RECORD = json.loads(GOOD_LINE)


def record(**changes):
    return json.dumps({**GOOD_RECORD, **changes})


# name -> (file contents, what the error must say). Bytes are written as they are.
BAD_DATA: Dict[str, tuple] = {
    "undecodable bytes in JSON lines": (GOOD_LINE.encode() + b"\n" + b'{"tokens": ["caf\xe9"]}\n',
                                        ["line 2, byte offset", "not UTF-8", "0xe9"]),
    "undecodable bytes in a JSON list": (b'[\n ' + GOOD_LINE.encode() + b',\n {"tokens": ["\xff"]}]',
                                         ["line 3, byte offset", "not UTF-8", "0xff"]),
    "a gzip file without .gz": (gzip.compress(GOOD_LINE.encode()), ["byte offset 1", "not UTF-8"]),
    "a truncated last line": ((GOOD_LINE + "\n" + GOOD_LINE[:25]).encode(), ["line 2", "truncated"]),
    "a truncated JSON list": (("[" + GOOD_LINE + ",\n" + GOOD_LINE[:40]).encode(), ["malformed JSON", "truncated"]),
    "an empty file": (b"", ["the file is empty"]),
    "a file of blank lines": (b"\n  \n\t\n", ["the file is empty"]),
    "a file with no records": (b"[]\n", ["holds no records"]),
    "a record that is a list": (b'[["Anna", "lives"]]', ["record 0", "expected a JSON object"]),
    "tokens that are numbers": (record(tokens=[1, 2, 3, 4]).encode(), ["record 0", '"tokens" must be a list of strings']),
    "an entity without a type": (record(entities=[{"type": None, "start": 0, "end": 1}], relations=[]).encode(),
                                 ["record 0", "entity 0: type must be a non-empty string"]),
    "an entity offset as a float": (record(entities=[{"type": "Peop", "start": 0, "end": 1.0}], relations=[]).encode(),
                                    ["record 0", "start and end must be integers"]),
    "entities as an object": (record(entities={"type": "Peop", "start": 0, "end": 1}).encode(),
                              ["record 0", '"entities" must be a list']),
    "a relation to a missing entity": (record(relations=[{"type": "Live_In", "head": 0, "tail": 5}]).encode(),
                                       ["record 0", "relation 0 tail 5 points at a missing entity"]),
    "relations as a number": (record(relations=0).encode(), ["record 0", '"relations" must be a list, not int']),
    "a score that is not a number": (record(entities=[{"type": "Peop", "start": 0, "end": 1, "score": "high"}],
                                            relations=[]).encode(), ["record 0", "score must be a number"]),
    "JSON nested a million deep": (b"[" * 1_000_000 + b"]" * 1_000_000, ["nested too deeply"]),
}

BAD_GLOVE: Dict[str, tuple] = {
    "undecodable GloVe bytes": (b"john " + b"0.1 " * 9 + b"0.1\nsm\xefth " + b"0.1 " * 9 + b"0.1\n",
                                ["line 2, byte offset 47", "not UTF-8"]),
    "a GloVe value that is not a number": (b"john " + b"0.1 " * 9 + b"0.1\nsmith " + b"0.1 " * 9 + b"zero\n",
                                           ["line 2", "'zero'", "is not a number"]),
    "a GloVe vector with NaN": (b"john " + b"0.1 " * 9 + b"nan\n", ["line 1", "not finite"]),
    "a GloVe vector of the wrong size": (b"the 0.1 0.2\n", ["line 1", "2 numbers", "embedding_dim is 10"]),
    "an empty GloVe file": (b"", ["holds no vectors"]),
}


class Case(NamedTuple):
    argv: List[str]
    outputs: List[Path]  # must not exist afterwards
    expected: List[str]  # fragments of the error line


def run_case(case: Case, capsys) -> None:
    capsys.readouterr()
    assert main(case.argv) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, err
    for fragment in case.expected:
        assert fragment in errors[0], (fragment, errors[0])
    for output in case.outputs:
        assert not output.exists(), output
        assert not Path(str(output) + ".tmp").exists(), output


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("hostile")
    config = folder / "config.json"
    config.write_text(json.dumps(tiny_config(epochs=1)))
    assert main(["train", str(config), "-s", str(folder / "run")]) == 0
    return folder / "run" / "model.tar.gz"


def bad_file(tmp_path: Path, table: Dict[str, tuple], name: str, filename: str = "data.json") -> tuple:
    """Writes the case ``name`` of ``table``; returns its path and the fragments its error must hold."""
    content, expected = table[name]
    path = tmp_path / filename
    path.write_bytes(content)
    return path, [str(path), *expected]


def write_config(tmp_path: Path, config: dict) -> str:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return str(path)


@pytest.mark.parametrize("name", sorted(BAD_DATA))
@pytest.mark.parametrize("role", ["train", "validation"])
def test_bad_training_data(name, role, tmp_path, capsys):
    bad, expected = bad_file(tmp_path, BAD_DATA, name)
    config = tiny_config(**{"train": bad} if role == "train" else {"dev": bad})
    run = tmp_path / "run"
    run_case(Case(["train", write_config(tmp_path, config), "-s", str(run)], [run], expected), capsys)


@pytest.mark.parametrize("name", ["undecodable bytes in JSON lines", "a truncated last line", "an empty file",
                                  "a file with no records", "a score that is not a number"])
def test_bad_evaluation_data(name, archive, tmp_path, capsys):
    bad, expected = bad_file(tmp_path, BAD_DATA, name)
    metrics, predictions = tmp_path / "metrics.json", tmp_path / "predictions.jsonl"
    run_case(Case(["evaluate", str(archive), str(bad), "--output-file", str(metrics),
                   "--predictions-output-file", str(predictions)], [metrics, predictions], expected),
             capsys)


@pytest.mark.parametrize("name", ["undecodable bytes in JSON lines", "a truncated last line", "an empty file",
                                  "tokens that are numbers", "JSON nested a million deep"])
def test_bad_prediction_input(name, archive, tmp_path, capsys):
    bad, expected = bad_file(tmp_path, BAD_DATA, name, "input.jsonl")
    out = tmp_path / "out.jsonl"
    run_case(Case(["predict", str(archive), str(bad), "--output-file", str(out)], [out], expected),
             capsys)


@pytest.mark.parametrize("name", sorted(BAD_GLOVE))
def test_bad_pretrained_vectors(name, tmp_path, capsys):
    glove, expected = bad_file(tmp_path, BAD_GLOVE, name, "vectors.txt")
    config = tiny_config()
    config["model"]["text_field_embedder"]["token_embedders"]["tokens"]["pretrained_file"] = str(glove)
    run = tmp_path / "run"
    run_case(Case(["train", write_config(tmp_path, config), "-s", str(run)], [run], expected), capsys)


def test_truncated_gzip_vectors(tmp_path, capsys):
    glove = tmp_path / "vectors.txt.gz"
    glove.write_bytes(gzip.compress((FIXTURES / "glove_tiny.10d.txt").read_bytes())[:-30])
    config = tiny_config()
    config["model"]["text_field_embedder"]["token_embedders"]["tokens"]["pretrained_file"] = str(glove)
    run = tmp_path / "run"
    run_case(Case(["train", write_config(tmp_path, config), "-s", str(run)], [run], [str(glove), "cannot be read"]),
             capsys)


def test_gzip_vectors_and_a_word2vec_header_are_read(tmp_path):
    """Not hostile: the same vectors gzipped and behind a "count dimension" header train as the plain file."""
    lines = (FIXTURES / "glove_tiny.10d.txt").read_text().splitlines()
    glove = tmp_path / "vectors.txt.gz"
    glove.write_bytes(gzip.compress(("\n".join([f"{len(lines)} 10", *lines]) + "\n").encode()))
    config = tiny_config(epochs=1)
    config["model"]["text_field_embedder"]["token_embedders"]["tokens"]["pretrained_file"] = str(glove)
    assert main(["train", write_config(tmp_path, config), "-s", str(tmp_path / "run")]) == 0


def test_a_data_path_that_is_a_directory(tmp_path, capsys):
    run = tmp_path / "run"
    config = tiny_config(dev=tmp_path)
    run_case(Case(["train", write_config(tmp_path, config), "-s", str(run)], [run], [str(tmp_path), "is a directory"]),
             capsys)


def test_a_byte_order_mark_is_accepted(tmp_path):
    """Not hostile: files saved by Windows editors start with a UTF-8 byte-order mark; they read as without it."""
    from joint_ere.data import SpertJsonReader

    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + (FIXTURES / "dev.json").read_bytes())
    assert SpertJsonReader().read_documents(str(path)) == SpertJsonReader().read_documents(str(FIXTURES / "dev.json"))


def test_a_line_separator_inside_a_token_is_not_a_line_break(tmp_path):
    """JSON lines may hold U+2028 inside strings (json.dumps(ensure_ascii=False) writes it raw)."""
    from joint_ere.data import SpertJsonReader

    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps({"tokens": ["a\u2028b", "c\x85"]}, ensure_ascii=False) + "\n", encoding="utf-8")
    assert SpertJsonReader().read_documents(str(path))[0].tokens == ["a\u2028b", "c\x85"]


# -- configs and overrides ------------------------------------------------------------------------------------
BAD_CONFIGS: Dict[str, tuple] = {
    "a config that is not UTF-8": (b"{model: '\xe9'}", ["line 1, byte offset 9", "not UTF-8"]),
    "a config that is a list": (b"[1, 2]", ["a config must be an object"]),
    "a config with a syntax error": (b"{model: }", ["config.jsonnet"]),
}


@pytest.mark.parametrize("name", sorted(BAD_CONFIGS))
def test_bad_config_files(name, tmp_path, capsys):
    config, expected = bad_file(tmp_path, BAD_CONFIGS, name, "config.jsonnet")
    run = tmp_path / "run"
    run_case(Case(["train", str(config), "-s", str(run)], [run], expected), capsys)


BAD_OVERRIDES = {
    '{"trainer": {"num_epochs": }': "-o/--overrides is not valid JSON",
    "[1, 2]": "-o/--overrides must be a JSON object, not list",
    '{"trainer": 1, "trainer.num_epochs": 2}': "trainer is given a value and also keys below it",
    '{"dataset_reader.token_indexers.tokens.type": "single_id", "vocabulary": {"x": 1}}': "vocabulary.x",
    '{"model.ner_encoder": {"type": "lstm"}}': "model.ner_encoder",
    '{"": 1}': "'' is not a key",
    '{"train_data_path": ["a.json"]}': "a data path must be a string, not list",
}


@pytest.mark.parametrize("overrides", sorted(BAD_OVERRIDES))
def test_bad_overrides_in_train(overrides, tmp_path, capsys):
    run = tmp_path / "run"
    run_case(Case(["train", write_config(tmp_path, tiny_config()), "-s", str(run), "-o", overrides], [run],
                  [BAD_OVERRIDES[overrides]]), capsys)


def test_an_override_into_a_list_needs_an_existing_index(archive, tmp_path, capsys):
    out = tmp_path / "metrics.json"
    key = "model.text_field_embedder.token_embedders.token_characters.encoder.ngram_filter_sizes"
    run_case(Case(["evaluate", str(archive), str(FIXTURES / "dev.json"), "--output-file", str(out),
                   "-o", json.dumps({f"{key}.4": 2})], [out], [f"{key}.4", "a list of 1 elements"]), capsys)


# -- archives, options and outputs ----------------------------------------------------------------------------
def test_an_archive_that_is_not_an_archive(tmp_path, capsys):
    fake = tmp_path / "model.tar.gz"
    fake.write_text("not an archive")
    out = tmp_path / "out.jsonl"
    run_case(Case(["predict", str(fake), str(FIXTURES / "predict.jsonl"), "--output-file", str(out)], [out],
                  [str(fake), "not a readable model archive"]), capsys)


def test_a_truncated_archive(archive, tmp_path, capsys):
    cut = tmp_path / "model.tar.gz"
    cut.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    out = tmp_path / "metrics.json"
    run_case(Case(["evaluate", str(cut), str(FIXTURES / "dev.json"), "--output-file", str(out)], [out],
                  [str(cut), "not a readable model archive"]), capsys)


def rewritten_archive(archive: Path, tmp_path: Path, member: str, content: bytes) -> Path:
    """A copy of ``archive`` with ``member`` replaced by ``content`` (a folder member by a file)."""
    import io
    import tarfile

    target = tmp_path / "broken.tar.gz"
    with tarfile.open(archive) as source, tarfile.open(target, "w:gz") as out:
        for info in source.getmembers():
            if info.name == member or info.name.startswith(member + "/"):
                continue
            out.addfile(info, source.extractfile(info) if info.isfile() else None)
        info = tarfile.TarInfo(member)
        info.size = len(content)
        out.addfile(info, io.BytesIO(content))
    return target


BAD_MEMBERS = {
    "meta.json": (b"[]", "meta.json is broken"),
    "config.json": (b'{"model": ', "config.json is broken"),
    "vocabulary/tokens.txt": (b"@@UNKNOWN@@\ncaf\xe9\n", "the vocabulary cannot be read (vocabulary/tokens.txt: line 2"),
    "vocabulary": (b"not a folder", "the vocabulary cannot be read"),
    "weights.th": (b"not a torch file", "the weights cannot be loaded"),
}


@pytest.mark.parametrize("member", sorted(BAD_MEMBERS))
def test_an_archive_with_a_broken_member(member, archive, tmp_path, capsys, monkeypatch):
    import tempfile

    content, expected = BAD_MEMBERS[member]
    broken = rewritten_archive(archive, tmp_path, member, content)
    extraction = tmp_path / "extraction"
    extraction.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(extraction))
    out = tmp_path / "out.jsonl"
    run_case(Case(["predict", str(broken), str(FIXTURES / "predict.jsonl"), "--output-file", str(out)], [out],
                  [str(broken), expected]), capsys)
    assert not list(extraction.iterdir())  # the temporary extraction folder is gone


def test_weights_that_are_not_a_state_dict(archive, tmp_path, capsys):
    import io

    import torch

    buffer = io.BytesIO()
    torch.save([torch.zeros(2)], buffer)
    broken = rewritten_archive(archive, tmp_path, "weights.th", buffer.getvalue())
    out = tmp_path / "metrics.json"
    run_case(Case(["evaluate", str(broken), str(FIXTURES / "dev.json"), "--output-file", str(out)], [out],
                  [str(broken), "the weights cannot be loaded"]), capsys)


def test_recover_from_a_broken_checkpoint(tmp_path, capsys):
    config = write_config(tmp_path, tiny_config(epochs=2))
    run = tmp_path / "run"
    assert main(["train", config, "-s", str(run)]) == 0
    state = run / "training_state_e1.th"
    state.write_bytes(state.read_bytes()[:100])
    run_case(Case(["train", config, "-s", str(run), "-r"], [], [str(state), "is broken", "--force"]), capsys)


def test_an_output_file_in_a_missing_directory(archive, tmp_path, capsys):
    out = tmp_path / "no" / "such" / "out.jsonl"
    run_case(Case(["predict", str(archive), str(FIXTURES / "predict.jsonl"), "--output-file", str(out)], [out],
                  ["--output-file", "does not exist"]), capsys)


def test_a_serialization_directory_that_is_a_file(tmp_path, capsys):
    run = tmp_path / "run"
    run.write_text("")
    run_case(Case(["train", write_config(tmp_path, tiny_config()), "-s", str(run)], [], [str(run), "is a file"]),
             capsys)


def test_a_serialization_directory_below_a_file(tmp_path, capsys):
    run = tmp_path / "file" / "run"
    (tmp_path / "file").write_text("")
    run_case(Case(["train", write_config(tmp_path, tiny_config()), "-s", str(run)], [],
                  [str(run), str(tmp_path / "file"), "is a file"]), capsys)


def test_an_unknown_predictor(archive, tmp_path, capsys):
    out = tmp_path / "out.jsonl"
    run_case(Case(["predict", str(archive), str(FIXTURES / "predict.jsonl"), "--predictor", "nope",
                   "--output-file", str(out)], [out], ["--predictor 'nope' is not a registered Predictor"]), capsys)


def test_a_5000_token_sentence_is_predicted(archive, tmp_path, monkeypatch):
    """The relation table of a long sentence is scored a block of rows at a time: no (pairs x hidden) block
    larger than CELLS_AT_ONCE is ever built, however many entities the sentence has."""
    from joint_ere.modules.heads import SelectionHead
    from joint_ere.common.blocks import CELLS_AT_ONCE

    largest = []
    score_pairs = SelectionHead.score

    def counting(self, head, tail):
        largest.append(head.shape[0] * head.shape[1] * tail.shape[1] * head.shape[2])
        return score_pairs(self, head, tail)

    monkeypatch.setattr(SelectionHead, "score", counting)
    words = ["Anna", "Lee", "lives", "in", "Paris", ".", "Acme", "Corp", "hired", "John", "Smith", "."]
    long = tmp_path / "long.jsonl"
    long.write_text(json.dumps({"tokens": [words[i % len(words)] for i in range(5000)]}) + "\n")
    out = tmp_path / "out.jsonl"
    assert main(["predict", str(archive), str(long), "--output-file", str(out), "--silent"]) == 0
    predicted = json.loads(out.read_text())
    assert len(predicted["tokens"]) == 5000
    assert all(0 <= e["start"] < e["end"] <= 5000 for e in predicted["entities"])
    assert len(predicted["entities"]) > 1000  # a one-epoch model tags most words: the worst case for pairs
    assert len(largest) > 1 and max(largest) <= CELLS_AT_ONCE
