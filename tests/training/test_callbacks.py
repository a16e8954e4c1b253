"""Training curves: TensorBoard event files (per step and per epoch) and validation_curves.png."""
import json
import struct

import pytest

from joint_ere.commands import main
from joint_ere.training.callbacks import epoch_metrics
from tests.conftest import tiny_config


def read_scalars(folder):
    """{tag: [(step, value), ...]} from the TFRecord event files in ``folder`` (in the order written)."""
    from tensorboardX.proto import event_pb2

    scalars = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        data = path.read_bytes()
        at = 0
        while at < len(data):
            (length,) = struct.unpack("<Q", data[at: at + 8])
            event = event_pb2.Event.FromString(data[at + 12: at + 12 + length])
            at += 12 + length + 4
            for value in event.summary.value:
                scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars


def train(config, folder, *extra):
    path = folder / "config.json"
    path.write_text(json.dumps(config))
    assert main(["train", str(path), "-s", str(folder / "run"), *extra]) == 0
    return folder / "run"


def test_event_files_hold_every_step_and_every_epoch_metric(tmp_path):
    config = tiny_config(epochs=3)
    config["data_loader"] = {"batch_size": 3, "shuffle": False}
    run = train(config, tmp_path)
    steps_per_epoch = -(-len(json.loads(open(config["train_data_path"]).read())) // 3)
    train_events, validation_events = read_scalars(run / "log" / "train"), read_scalars(run / "log" / "validation")
    assert [step for step, _ in train_events["batch/loss"]] == list(range(3 * steps_per_epoch))
    assert {"batch/ner_loss", "batch/re_loss", "batch/learning_rate"} <= set(train_events)
    epochs = epoch_metrics(str(run))
    assert len(epochs) == 3
    for key in ("loss", "ner_macro_f1", "re_strict_micro_f1", "ner_micro_precision"):
        assert validation_events[f"epoch/{key}"] == [
            (e["epoch"] + 1, pytest.approx(e[f"validation_{key}"], abs=1e-6)) for e in epochs]
    assert train_events["epoch/loss"] == [(e["epoch"] + 1, pytest.approx(e["training_loss"], abs=1e-6))
                                          for e in epochs]
    png = (run / "validation_curves.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (1200, 450)


def test_a_resumed_run_continues_the_curves_without_repeating_steps(tmp_path):
    config = tiny_config(epochs=2)
    run = train(config, tmp_path)
    config["trainer"]["num_epochs"] = 4
    train(config, tmp_path, "-r", "-o", '{"trainer": {"num_epochs": 4}}')
    events = read_scalars(run / "log" / "validation")
    assert [step for step, _ in events["epoch/loss"]] == [1, 2, 3, 4]
    steps = [step for step, _ in read_scalars(run / "log" / "train")["batch/loss"]]
    assert steps == sorted(set(steps))
    assert len(epoch_metrics(str(run))) == 4 and (run / "validation_curves.png").exists()


def test_callbacks_can_be_turned_off(tmp_path):
    config = tiny_config(epochs=1)
    config["trainer"]["callbacks"] = []
    run = train(config, tmp_path)
    assert not (run / "log").exists() and not (run / "validation_curves.png").exists()
