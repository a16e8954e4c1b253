"""
Training on several processes (``torchrun``, DistributedDataParallel): two CPU processes (gloo) with batches of
2 train the same model as one process with batches of 4, since each global step sees the same four sentences.
"""
import json
import os
import subprocess
import sys
from typing import Any

import pytest
import torch

from joint_ere.commands import main
from joint_ere.data import Document
from joint_ere.data.data_loader import DataLoader
from joint_ere.data.readers import SpertJsonReader
from joint_ere.metrics import EntityRelationMetrics
from tests.conftest import ROOT

TRAIN = ROOT / "fixtures" / "data" / "train.json"

gloo = pytest.mark.skipif(not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
                          reason="torch.distributed with gloo is not available")

EPOCHS = 40
TIMES = ("training_seconds", "training_duration")


def overrides(batch_size: int, epochs: int = EPOCHS, **trainer: Any) -> str:
    # no shuffling, so one process's batch k of 4 sentences is the two processes' batches 2k and 2k + 1
    # the test split is scored by the first process alone once training ends
    return json.dumps({"data_loader": {"batch_size": batch_size, "shuffle": False},
                       "trainer": {"num_epochs": epochs, "callbacks": [], **trainer},
                       "test_data_path": "fixtures/data/dev.json", "evaluate_on_test": True})


def torchrun(folder, batch_size: int, epochs: int = EPOCHS, *extra: str, **trainer: Any) -> None:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "joint_ere", "train", "training_config/quickstart.jsonnet", "-s", str(folder),
               "-o", overrides(batch_size, epochs, **trainer), *extra]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]


def epoch_metrics(folder, epoch):
    return json.loads((folder / f"metrics_epoch_{epoch}.json").read_text())


def assert_same_training(one, two, epochs=range(EPOCHS)):
    for epoch in epochs:
        a, b = epoch_metrics(one, epoch), epoch_metrics(two, epoch)
        for key in a:
            if key.startswith(("training_", "validation_", "best_validation_")) and key not in TIMES:
                assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-5), (epoch, key)
        assert a["best_epoch"] == b["best_epoch"]


@gloo
def test_two_processes_train_as_one_with_the_same_global_batch(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(["train", "training_config/quickstart.jsonnet", "-s", str(one), "-o", overrides(4)]) == 0
    torchrun(two, batch_size=2)

    assert_same_training(one, two)
    final = epoch_metrics(two, EPOCHS - 1)
    assert final["validation_ner_micro_f1"] == 1.0  # it learned, and validation pooled both processes' counts
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())
    tested = [json.loads((folder / "metrics.json").read_text()) for folder in (one, two)]
    assert tested[1]["test_ner_micro_f1"] == tested[0]["test_ner_micro_f1"] == 1.0
    log = (two / "out.log").read_text()
    assert log.count(f"epoch {EPOCHS}/{EPOCHS}: training loss") == 1  # rank 0 alone writes and logs
    assert "training on 2 processes (gloo)" in log

    # -r under torchrun: stopped after half the epochs, resumed, it ends where the uninterrupted run ended
    resumed = tmp_path / "resumed"
    torchrun(resumed, 2, EPOCHS // 2)
    torchrun(resumed, 2, EPOCHS, "-r")
    assert_same_training(two, resumed, [EPOCHS // 2 - 1, EPOCHS - 1])
    assert (resumed / "model.tar.gz").exists()


def test_shards_of_an_epoch():
    instances = SpertJsonReader().read(str(TRAIN))  # 8 sentences
    loader = DataLoader(instances, batch_size=3)  # batches [0 1 2] [3 4 5] [6 7]
    batches = loader._batches()
    assert batches == [[0, 1, 2], [3, 4, 5], [6, 7]] and len(loader) == 3

    loader.set_shard(1, 2, equal=True)  # training: as many batches on every rank (2), topped up from the start
    assert loader._sharded(batches) == [[3, 4, 5], [0, 1, 2]] and len(loader) == 2
    loader.set_shard(0, 2, equal=True)
    assert loader._sharded(batches) == [[0, 1, 2], [6, 7]] and len(loader) == 2

    loader.set_shard(1, 2, equal=False)  # validation: every batch once
    assert loader._sharded(batches) == [[3, 4, 5]] and len(loader) == 1
    loader.set_shard(0, 2, equal=False)
    assert loader._sharded(batches) == [[0, 1, 2], [6, 7]] and len(loader) == 2
    with pytest.raises(ValueError):
        loader.set_shard(2, 2, equal=False)


def test_metric_counts_of_two_processes_add_up():
    gold = SpertJsonReader().read_documents(str(TRAIN))
    predicted = [Document(doc.tokens, doc.entities[:1], []) for doc in gold]
    whole = EntityRelationMetrics()
    whole(predicted, gold)
    first, second = EntityRelationMetrics(), EntityRelationMetrics()
    first(predicted[:3], gold[:3])
    second(predicted[3:], gold[3:])
    first.add_state(second.state())
    assert first.get_metric(per_type=True) == whole.get_metric(per_type=True)
    assert 0.0 < whole.get_metric()["ner_micro_recall"] < 1.0  # the example is not trivial
