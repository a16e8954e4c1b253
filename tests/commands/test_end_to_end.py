"""train -> archive -> evaluate -> predict through the ``allennlp`` command, on the fixtures."""
import io
import json
import tarfile

import pytest
import torch

from joint_ere.archival import load_archive
from joint_ere.commands import main
from joint_ere.common import ConfigurationError, DataError
from joint_ere.data import SpertJsonReader
from joint_ere.training.trainer import GradientDescentTrainer
from tests.conftest import FIXTURES, tiny_config, train_interrupted_then_resumed


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("trained")
    config = folder / "config.json"
    config.write_text(json.dumps(tiny_config(epochs=3)))
    assert main(["train", str(config), "-s", str(folder / "run")]) == 0
    return folder / "run"


def test_serialization_directory_layout(trained):
    for name in ("config.json", "vocabulary/tokens.txt", "vocabulary/entity_labels.txt", "out.log", "best.th",
                 "metrics.json", "model.tar.gz", "metrics_epoch_0.json", "metrics_epoch_2.json"):
        assert (trained / name).exists(), name
    metrics = json.loads((trained / "metrics.json").read_text())
    assert {"best_epoch", "training_duration", "best_validation_re_strict_micro_f1"} <= set(metrics)
    assert "epoch 3/3" in (trained / "out.log").read_text()
    with tarfile.open(trained / "model.tar.gz") as tar:
        names = set(tar.getnames())
    assert {"config.json", "weights.th", "meta.json", "vocabulary"} <= names


def test_existing_directory_needs_force_or_recover(trained, capsys):
    assert main(["train", str(trained / "config.json"), "-s", str(trained)]) == 1
    assert "--force" in capsys.readouterr().err


def test_evaluate_writes_metrics_and_predictions(trained, tmp_path):
    out, predictions = tmp_path / "metrics.json", tmp_path / "predictions.jsonl"
    assert main(["evaluate", str(trained / "model.tar.gz"), str(FIXTURES / "dev.json"), "--output-file", str(out),
                 "--predictions-output-file", str(predictions), "--batch-size", "2"]) == 0
    metrics = json.loads(out.read_text())
    # the predictions are documents that the reader reads back, and scoring them gives the same numbers
    docs = SpertJsonReader().read_documents(str(predictions))
    gold = SpertJsonReader().read_documents(str(FIXTURES / "dev.json"))
    assert [d.tokens for d in docs] == [d.tokens for d in gold]
    from joint_ere.metrics import EntityRelationMetrics

    metric = EntityRelationMetrics()
    metric(docs, gold)
    rescored = metric.get_metric()
    for task in ("ner", "re", "re_strict"):
        for kind in ("micro", "macro"):
            for score in ("precision", "recall", "f1"):
                key = f"{task}_{kind}_{score}"
                assert rescored[key] == pytest.approx(metrics[key]), key
    assert sum(len(d.entities) for d in docs) > 0  # the trained model predicts something to score


def test_evaluate_counts_unseen_labels_as_misses(trained, tmp_path):
    records = json.loads((FIXTURES / "dev.json").read_text())
    records[0]["entities"].append({"type": "Weapon", "start": 2, "end": 3})
    records[0]["relations"].append({"type": "Uses", "head": 0, "tail": 2})
    path = tmp_path / "odd.json"
    path.write_text(json.dumps(records))
    out = tmp_path / "m.json"
    assert main(["evaluate", str(trained / "model.tar.gz"), str(path), "--output-file", str(out), "--per-type"]) == 0
    metrics = json.loads(out.read_text())
    assert metrics["ner_Weapon_recall"] == 0.0
    assert metrics["re_Uses_recall"] == 0.0


def test_predict_json_lines_and_spert_input(trained, tmp_path, capsys):
    out = tmp_path / "predictions.jsonl"
    assert main(["predict", str(trained / "model.tar.gz"), str(FIXTURES / "predict.jsonl"),
                 "--output-file", str(out), "--silent", "--batch-size", "2"]) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 4
    assert lines[3]["tokens"] == ["Anna", "Lee", "lives", "in", "Paris", "."] and lines[3]["id"] == "extra"
    for line in lines:
        assert set(line) >= {"tokens", "entities", "relations"}
        for entity in line["entities"]:
            assert 0 <= entity["start"] < entity["end"] <= len(line["tokens"]) and 0 <= entity["score"] <= 1
        for relation in line["relations"]:
            assert relation["head"] < len(line["entities"]) and relation["score"] > 0.5
    assert main(["predict", str(trained / "model.tar.gz"), str(FIXTURES / "dev.json")]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(printed) == 3


def test_predict_bad_input_writes_nothing(trained, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"tokens": ["ok"]}\n{"tokens": []}\n')
    out = tmp_path / "out.jsonl"
    assert main(["predict", str(trained / "model.tar.gz"), str(bad), "--output-file", str(out)]) == 1
    assert not out.exists() and not (tmp_path / "out.jsonl.tmp").exists()
    bad.write_text('{"tokens": ["ok"]}\n{"tokens": ["x"\n')
    assert main(["predict", str(trained / "model.tar.gz"), str(bad), "--output-file", str(out)]) == 1
    assert "line 2" in capsys.readouterr().err
    assert not out.exists()


def test_predict_names_the_bad_record(trained, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"tokens": ["ok"]}\n{"tokens": []}\n')
    assert main(["predict", str(trained / "model.tar.gz"), str(bad), "--silent"]) == 1
    err = capsys.readouterr().err
    assert str(bad) in err and "record 1" in err and "empty token list" in err


def test_archive_extraction_refuses_paths_outside(tmp_path):
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        data = b"{}"
        info = tarfile.TarInfo("../../escaped.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(ConfigurationError, match="outside"):
        load_archive(str(evil))
    assert not (tmp_path.parent / "escaped.json").exists()


def test_recover_ends_where_an_uninterrupted_run_would(tmp_path, monkeypatch):
    config = tiny_config(epochs=4, dropout=0.2)
    config["trainer"]["learning_rate_scheduler"] = {"type": "linear_with_warmup", "warmup_steps": 2}
    config["data_loader"] = {"batch_sampler": {"type": "bucket", "batch_size": 3}}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    assert main(["train", str(path), "-s", str(tmp_path / "whole")]) == 0
    train_interrupted_then_resumed(path, tmp_path / "split", monkeypatch)

    whole = torch.load(tmp_path / "whole" / "model_state_e3.th", weights_only=True)
    split = torch.load(tmp_path / "split" / "model_state_e3.th", weights_only=True)
    assert whole.keys() == split.keys()
    for key in whole:
        assert torch.equal(whole[key], split[key]), key
    a = json.loads((tmp_path / "whole" / "metrics_epoch_3.json").read_text())
    b = json.loads((tmp_path / "split" / "metrics_epoch_3.json").read_text())
    assert a["validation_loss"] == b["validation_loss"] and a["best_epoch"] == b["best_epoch"]

    # recovering a finished run trains nothing more and keeps its metrics
    before = json.loads((tmp_path / "split" / "metrics.json").read_text())
    assert main(["train", str(path), "-s", str(tmp_path / "split"), "-r"]) == 0
    after = json.loads((tmp_path / "split" / "metrics.json").read_text())
    assert after["best_epoch"] == before["best_epoch"] and after["epoch"] == 3
    assert not (tmp_path / "split" / "metrics_epoch_4.json").exists()


def test_recover_with_another_patience_goes_on_after_an_early_stop(tmp_path):
    dev = tmp_path / "dev.json"  # no gold relations: relation F1 is 0.0 at every epoch, so patience 1 stops at once
    records = json.loads((FIXTURES / "dev.json").read_text())
    dev.write_text(json.dumps([{**record, "relations": []} for record in records]))
    config = tiny_config(dev=dev, epochs=6)
    config["trainer"].update({"validation_metric": "+re_strict_micro_f1", "patience": 1})
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    assert main(["train", str(path), "-s", str(tmp_path / "run")]) == 0
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["epoch"] == 1  # stopped early
    assert main(["train", str(path), "-s", str(tmp_path / "run"), "-r", "-o", '{"trainer": {"patience": null}}']) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["epoch"] == 5 and metrics["best_epoch"] == 0


def test_a_nan_loss_stops_training_and_recover_resumes(tmp_path, monkeypatch, capsys):
    """A NaN loss in epoch 2 stops the run, naming epoch and batch; best.th and epoch 1's checkpoint stay, and -r
    (once the cause is gone) ends exactly where a run without the NaN ends."""
    config = tiny_config(epochs=3, dropout=0.2)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    assert main(["train", str(path), "-s", str(tmp_path / "whole")]) == 0

    original = GradientDescentTrainer._forward
    calls = []

    def poisoned(self, batch):
        output = original(self, batch)
        if self.model.training:
            calls.append(1)
            if len(calls) == 4:  # epoch 2 (two batches of 4 sentences per epoch), batch 2
                output["loss"] = output["loss"] * float("nan")
        return output

    monkeypatch.setattr(GradientDescentTrainer, "_forward", poisoned)
    capsys.readouterr()
    assert main(["train", str(path), "-s", str(tmp_path / "split")]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1
    assert "epoch 2, batch 2: the loss is nan" in errors[0] and "checkpoint of epoch 1" in errors[0]
    assert "-r" in errors[0]
    split = tmp_path / "split"
    assert (split / "best.th").exists() and (split / "model_state_e0.th").exists()
    assert not (split / "model_state_e1.th").exists() and not (split / "model.tar.gz").exists()

    monkeypatch.setattr(GradientDescentTrainer, "_forward", original)
    assert main(["train", str(path), "-s", str(split), "-r"]) == 0
    whole = torch.load(tmp_path / "whole" / "model_state_e2.th", weights_only=True)
    resumed = torch.load(split / "model_state_e2.th", weights_only=True)
    for key in whole:
        assert torch.equal(whole[key], resumed[key]), key


@pytest.mark.parametrize("scheduler, optimizer", [(None, "adam"), ({"type": "linear_with_warmup", "warmup_steps": 2},
                                                                   "adam"), (None, "sgd")])
def test_recover_with_a_new_learning_rate_uses_it(tmp_path, scheduler, optimizer):
    """After a NaN the user resumes with a lower lr: -r -o must not let the checkpoint's optimizer state (which
    holds the old lr) or a step scheduler's base rates win."""
    config = tiny_config(epochs=2)
    if scheduler:
        config["trainer"]["learning_rate_scheduler"] = scheduler
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    run = tmp_path / "run"
    assert main(["train", str(path), "-s", str(run)]) == 0
    overrides = {"trainer": {"num_epochs": 3, "optimizer": {"type": optimizer, "lr": 0.004}}}
    assert main(["train", str(path), "-s", str(run), "-r", "-o", json.dumps(overrides)]) == 0
    state = torch.load(run / "training_state_e2.th", weights_only=False)
    lr = state["optimizer"]["param_groups"][0]["lr"]
    assert ("momentum" in state["optimizer"]["param_groups"][0]) == (optimizer == "sgd")  # sgd started afresh
    if scheduler:
        assert state["scheduler"]["base_lrs"] == [0.004]
        assert lr == 0.0  # the linear decay from 0.004 ends at 0 with the last step
    else:
        assert lr == 0.004
    assert json.loads((run / "config.json").read_text())["trainer"]["optimizer"]["lr"] == 0.004


def test_a_nan_validation_loss_saves_nothing_of_that_epoch(tmp_path, monkeypatch, capsys):
    """Finite training losses, then weights that give NaN on validation: they must not become best.th or a
    checkpoint to resume from."""
    config = tiny_config(epochs=3)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    from joint_ere.training import trainer

    original, validations = trainer.evaluate, []

    def poisoned(*args, **kwargs):
        metrics = original(*args, **kwargs)
        validations.append(metrics)
        if len(validations) > 1:  # from epoch 2's validation on
            metrics["loss"] = float("nan")
        return metrics

    monkeypatch.setattr(trainer, "evaluate", poisoned)
    capsys.readouterr()
    assert main(["train", str(path), "-s", str(tmp_path / "run")]) == 1
    error = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")][0]
    assert "epoch 2: the validation loss is nan" in error and "checkpoint of epoch 1" in error
    run = tmp_path / "run"
    assert not (run / "model_state_e1.th").exists()
    best = torch.load(run / "best.th", weights_only=True)
    first = torch.load(run / "model_state_e0.th", weights_only=True)
    assert all(torch.equal(best[key], first[key]) for key in first)


def test_amp_needs_cuda(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    config = tiny_config(epochs=1)
    config["trainer"]["use_amp"] = True
    path = tmp_path / "c.json"
    path.write_text(json.dumps(config))
    assert main(["train", str(path), "-s", str(tmp_path / "run")]) == 1
    assert "trainer.use_amp with float16 needs a CUDA" in capsys.readouterr().err
    config["trainer"]["amp_dtype"] = "half"
    path.write_text(json.dumps(config))
    assert main(["train", str(path), "-s", str(tmp_path / "run")]) == 1
    assert "trainer.amp_dtype must be float16 or bfloat16" in capsys.readouterr().err


def test_bfloat16_on_a_cpu_without_native_bfloat16_warns(tmp_path, monkeypatch, caplog):
    from joint_ere.training import trainer

    monkeypatch.setattr(trainer, "cpu_has_native_bfloat16", lambda: False)
    config = tiny_config(epochs=1)
    config["trainer"].update({"use_amp": True, "amp_dtype": "bfloat16"})
    path = tmp_path / "c.json"
    path.write_text(json.dumps(config))
    with caplog.at_level("WARNING", logger="joint_ere.training.trainer"):
        assert main(["train", str(path), "-s", str(tmp_path / "run")]) == 0
    assert "no native bfloat16" in caplog.text


def test_bfloat16_autocast_trains_and_validates(tmp_path, monkeypatch):
    """trainer.amp_dtype bfloat16 (here on the CPU; on GPUs that support it the same code path): the forward and the
    validation run under bfloat16 autocast without gradient scaling, and the archive evaluates in float32."""
    from joint_ere.training.trainer import GradientDescentTrainer

    config = tiny_config(epochs=3)
    config["trainer"].update({"use_amp": True, "amp_dtype": "bfloat16", "validation_metric": "-loss"})
    path = tmp_path / "c.json"
    path.write_text(json.dumps(config))
    seen = set()
    original = GradientDescentTrainer._autocast

    def autocast(self):
        context = original(self)
        seen.add((self.scaler is None, context.fast_dtype, context._enabled))
        return context

    monkeypatch.setattr(GradientDescentTrainer, "_autocast", autocast)
    assert main(["train", str(path), "-s", str(tmp_path / "run")]) == 0
    assert seen == {(True, torch.bfloat16, True)}  # training and validation alike, no gradient scaler
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["best_epoch"] == 2 and torch.isfinite(torch.tensor(metrics["best_validation_loss"]))
    out = tmp_path / "evaluated.json"
    assert main(["evaluate", str(tmp_path / "run" / "model.tar.gz"), str(FIXTURES / "dev.json"),
                 "--output-file", str(out)]) == 0
    evaluated = json.loads(out.read_text())
    assert evaluated["loss"] == pytest.approx(metrics["best_validation_loss"], rel=0.05)  # float32 against bfloat16


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("amp_dtype", ["float16", "bfloat16"])
def test_trains_on_cuda_with_amp(tmp_path, amp_dtype):
    if amp_dtype == "bfloat16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bfloat16")
    config = tiny_config(epochs=2)
    config["trainer"].update({"cuda_device": 0, "use_amp": True, "amp_dtype": amp_dtype})
    path = tmp_path / "c.json"
    path.write_text(json.dumps(config))
    assert main(["train", str(path), "-s", str(tmp_path / "run")]) == 0
    archive = load_archive(str(tmp_path / "run" / "model.tar.gz"), cuda_device=0)
    assert next(archive.model.parameters()).is_cuda
    assert main(["evaluate", str(tmp_path / "run" / "model.tar.gz"), str(FIXTURES / "dev.json"),
                 "--cuda-device", "0"]) == 0


BAD_RECORDS = {
    "malformed JSON": '[{"tokens": ["a"]}, {"tokens": ["b"}]',
    "outside the 2 tokens": [{"tokens": ["a", "b"], "entities": [{"type": "Peop", "start": 1, "end": 3}]}],
    "start 1 >= end 1": [{"tokens": ["a", "b"], "entities": [{"type": "Peop", "start": 1, "end": 1}]}],
    "points at a missing entity": [{"tokens": ["a", "b"], "entities": [{"type": "Peop", "start": 0, "end": 1}],
                                    "relations": [{"type": "Work_For", "head": 0, "tail": 1}]}],
    "empty token list": [{"tokens": []}],
}


@pytest.mark.parametrize("message", sorted(BAD_RECORDS))
def test_train_and_evaluate_stop_on_bad_records(trained, tmp_path, capsys, message):
    content = BAD_RECORDS[message]
    good = json.loads((FIXTURES / "dev.json").read_text())
    bad = tmp_path / "bad.json"
    bad.write_text(content if isinstance(content, str) else json.dumps(good + content))
    config = tmp_path / "config.json"
    config.write_text(json.dumps(tiny_config(dev=bad)))
    assert main(["train", str(config), "-s", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert message in err and str(bad) in err and ("record" in err or "line" in err)
    assert not (tmp_path / "run").exists()
    out = tmp_path / "metrics.json"
    assert main(["evaluate", str(trained / "model.tar.gz"), str(bad), "--output-file", str(out)]) == 1
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_gradient_accumulation_matches_a_larger_batch(tmp_path):
    """Two accumulated batches of 2 make the same update as one batch of 4 (the loss is a mean over sentences).

    Plain SGD, because its update is linear in the gradient: the two runs differ only by float32 summation
    order (a few ulp of each gradient, |g| < 10 here), scaled by lr = 0.1, i.e. ~1e-7. Adam would divide
    near-zero gradients by their own magnitude and turn that rounding into +-lr, which no tolerance can bound.
    """
    def run(name, batch_size, steps, lr=0.1):
        config = tiny_config(epochs=1, dropout=0.0)
        config["dataset_reader"]["token_indexers"].pop("token_characters")
        embedders = config["model"]["text_field_embedder"]["token_embedders"]
        embedders.pop("token_characters")
        config["model"]["shared_encoder"]["input_size"] = 10
        config["data_loader"] = {"batch_size": batch_size}
        config["trainer"]["num_gradient_accumulation_steps"] = steps
        config["trainer"]["optimizer"] = {"type": "sgd", "lr": lr}
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(config))
        assert main(["train", str(path), "-s", str(tmp_path / name)]) == 0
        return torch.load(tmp_path / name / "model_state_e0.th", weights_only=True)

    initial = run("initial", 4, 1, lr=0.0)
    whole, accumulated = run("whole", 4, 1), run("accumulated", 2, 2)
    moved = max((whole[key] - initial[key]).abs().max().item() for key in whole)
    assert moved > 1e-2  # the updates are large against the tolerance below
    for key in whole:
        torch.testing.assert_close(whole[key], accumulated[key], rtol=0, atol=1e-5, msg=key)


def test_predictor_python_api(trained):
    from joint_ere.predictors import Predictor

    predictor = Predictor.from_path(str(trained / "model.tar.gz"), cuda_device=-1)
    one = predictor.predict_json({"tokens": ["Mary", "Jones", "lives", "in", "Paris", "."], "id": 3})
    assert one["tokens"][0] == "Mary" and one["id"] == 3 and "entities" in one and "relations" in one
    batch = predictor.predict_batch_json([{"tokens": ["a"]}, {"tokens": ["Globex", "is", "in", "Berlin"]}])
    assert [len(b["tokens"]) for b in batch] == [1, 4]
    with pytest.raises(DataError, match=r"<input>, record 1: expected a text"):
        predictor.predict_batch_json([{"tokens": ["a"]}, ["not", "a", "record"]])


def test_evaluate_rejects_overrides_that_match_nothing(trained, capsys):
    assert main(["evaluate", str(trained / "model.tar.gz"), str(FIXTURES / "dev.json"),
                 "-o", '{"modell.dropout": 0.5}']) == 1
    assert "overrides" in capsys.readouterr().err
