import json

from joint_ere.commands import main
from tests.conftest import ROOT


def test_quickstart_trains_evaluates_and_predicts(quickstart_archive, tmp_path, monkeypatch, capsys):
    """The README's first run, as a newcomer types it from the repository root (the training: conftest.py)."""
    monkeypatch.chdir(ROOT)
    run = quickstart_archive.parent
    assert main(["evaluate", str(run / "model.tar.gz"), "fixtures/data/dev.json", "--output-file",
                 str(tmp_path / "metrics.json")]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["ner_micro_f1"] >= 0.8 and metrics["re_strict_micro_f1"] >= 0.6
    capsys.readouterr()
    assert main(["predict", str(run / "model.tar.gz"), "fixtures/data/predict.jsonl"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 4 and lines[3]["id"] == "extra"
