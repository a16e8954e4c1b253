"""``trainer.moving_average``: the average's arithmetic, the weights the trainer validates and archives, and ``-r``."""
import json

import pytest
import torch

from joint_ere.archival import load_archive
from joint_ere.commands import main
from joint_ere.common import ConfigurationError
from joint_ere.training.moving_average import ExponentialMovingAverage, MovingAverage
from tests.conftest import tiny_config, train_interrupted_then_resumed


def test_the_decay_starts_small_and_the_average_is_exact():
    weight = torch.nn.Parameter(torch.tensor([0.0, 10.0]))
    frozen = torch.nn.Parameter(torch.tensor([5.0]), requires_grad=False)
    average = ExponentialMovingAverage([("weight", weight), ("frozen", frozen)], decay=0.3)
    assert average.names == ["weight"]  # only what trains is averaged
    expected = torch.tensor([0.0, 10.0])
    for value, decay in ((1.0, 2 / 11), (2.0, 3 / 12), (4.0, 0.3), (8.0, 0.3)):  # min(0.3, (1 + n) / (10 + n))
        with torch.no_grad():
            weight.fill_(value)
        average.apply()
        expected = decay * expected + (1 - decay) * value
        assert average.decay() == pytest.approx(decay)
        torch.testing.assert_close(average.shadows[0], expected, rtol=0, atol=1e-6)


def test_assign_and_restore_swap_the_weights():
    weight = torch.nn.Parameter(torch.tensor([1.0]))
    average = ExponentialMovingAverage([("weight", weight)])
    with torch.no_grad():
        weight.fill_(3.0)
    average.assign_average_value()
    assert weight.item() == 1.0
    with pytest.raises(RuntimeError, match="already assigned"):
        average.assign_average_value()
    average.restore()
    assert weight.item() == 3.0


@pytest.mark.parametrize("settings", [{"decay": 1.0}, {"decay": -0.1}, {"denominator": 0.0}])
def test_bad_settings_name_the_key(settings):
    with pytest.raises(ConfigurationError, match="trainer.moving_average"):
        ExponentialMovingAverage([("w", torch.nn.Parameter(torch.zeros(1)))], **settings)


def _config(epochs, moving_average=None, validation=True):
    config = tiny_config(epochs=epochs, dropout=0.2)
    config["data_loader"] = {"batch_sampler": {"type": "bucket", "batch_size": 3}}
    config["trainer"]["optimizer"] = {"type": "sgd", "lr": 0.1}
    config["trainer"]["validation_metric"] = "-loss"  # falls every epoch here, so the best epoch is the last
    if moving_average is not None:
        config["trainer"]["moving_average"] = moving_average
    if not validation:
        config.pop("validation_data_path")
        config["trainer"].pop("validation_metric", None)
    return config


def test_best_th_holds_the_average_of_every_steps_weights(tmp_path, monkeypatch):
    """Without validation data every epoch is the best, so best.th is the average after the last step: the
    trainer's average of the weights after each step, recomputed here from those weights."""
    seen, captured = [], {}
    original = MovingAverage.apply

    def recording(self):  # called after every optimizer step, with the step's new weights
        captured.setdefault("initial", dict(zip(self.names, (shadow.clone() for shadow in self.shadows))))
        seen.append({name: p.detach().clone() for name, p in zip(self.names, self.parameters)})
        original(self)

    monkeypatch.setattr(MovingAverage, "apply", recording)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(_config(2, {"type": "exponential", "decay": 0.9}, validation=False)))
    assert main(["train", str(path), "-s", str(tmp_path / "run")]) == 0

    expected = captured["initial"]
    for n, weights in enumerate(seen, start=1):
        decay = min(0.9, (1 + n) / (10 + n))
        expected = {name: decay * expected[name] + (1 - decay) * weights[name] for name in expected}
    best = torch.load(tmp_path / "run" / "best.th", weights_only=True)
    last = torch.load(tmp_path / "run" / "model_state_e1.th", weights_only=True)
    assert len(seen) >= 4
    moved = max((best[name] - last[name]).abs().max().item() for name in expected)
    assert moved > 1e-3  # the average is not the last weights...
    for name in expected:  # ...but the average of every step's weights
        torch.testing.assert_close(best[name], expected[name], rtol=1e-5, atol=1e-6, msg=name)
    for name, value in last.items():  # the checkpoint to resume from keeps the trained weights
        if name in seen[-1]:
            assert torch.equal(value, seen[-1][name]), name


def test_validation_and_the_archive_use_the_average(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(_config(3, {"type": "exponential", "decay": 0.9})))
    assert main(["train", str(path), "-s", str(tmp_path / "run")]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    out = tmp_path / "evaluated.json"
    dev = _config(1)["validation_data_path"]
    assert main(["evaluate", str(tmp_path / "run" / "model.tar.gz"), dev, "--output-file", str(out)]) == 0
    evaluated = json.loads(out.read_text())
    assert metrics["best_epoch"] == 2
    assert evaluated["loss"] == pytest.approx(metrics["best_validation_loss"], rel=1e-5)
    archived = load_archive(str(tmp_path / "run" / "model.tar.gz")).model.state_dict()
    best = torch.load(tmp_path / "run" / "best.th", weights_only=True)
    assert all(torch.equal(archived[name], best[name]) for name in best)
    trained = torch.load(tmp_path / "run" / "model_state_e2.th", weights_only=True)  # the same epoch, not averaged
    assert max((best[name] - trained[name]).abs().max().item() for name in best) > 1e-3
    state = torch.load(tmp_path / "run" / "training_state_e2.th", weights_only=False)["moving_average"]
    assert all(torch.equal(best[name], shadow) for name, shadow in state["shadows"].items())


def test_recover_resumes_the_average_exactly(tmp_path, monkeypatch):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(_config(4, {"type": "exponential", "decay": 0.95})))
    assert main(["train", str(path), "-s", str(tmp_path / "whole")]) == 0
    train_interrupted_then_resumed(path, tmp_path / "split", monkeypatch)
    for name in ("model_state_e3.th", "best.th"):
        whole = torch.load(tmp_path / "whole" / name, weights_only=True)
        split = torch.load(tmp_path / "split" / name, weights_only=True)
        for key in whole:
            assert torch.equal(whole[key], split[key]), (name, key)
    whole, split = (torch.load(tmp_path / run / "training_state_e3.th", weights_only=False)["moving_average"]
                    for run in ("whole", "split"))
    assert whole["num_updates"] == split["num_updates"] > 0
    assert all(torch.equal(whole["shadows"][name], split["shadows"][name]) for name in whole["shadows"])
    a, b = (json.loads((tmp_path / run / "metrics.json").read_text()) for run in ("whole", "split"))
    assert a["best_epoch"] == b["best_epoch"] == 3  # best.th was written after the resume
    assert a["best_validation_loss"] == b["best_validation_loss"]


def test_resuming_with_other_trainable_parameters_keeps_the_shared_averages(caplog):
    kept, new = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.ones(2))
    average = ExponentialMovingAverage([("kept", kept), ("new", new)])
    average.load_state_dict({"num_updates": 7, "shadows": {"kept": torch.full((2,), 3.0), "gone": torch.zeros(1)}})
    assert average.num_updates == 7
    assert torch.equal(average.shadows[0], torch.full((2,), 3.0)) and torch.equal(average.shadows[1], torch.ones(2))
    assert "started afresh for ['new'], dropped for ['gone']" in caplog.text


def test_recover_refuses_a_checkpoint_without_the_average(tmp_path, capsys):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(_config(1)))
    assert main(["train", str(path), "-s", str(tmp_path / "run")]) == 0
    path.write_text(json.dumps(_config(2, {"type": "exponential"})))
    assert main(["train", str(path), "-s", str(tmp_path / "run"), "-r"]) != 0
    assert "moving_average" in capsys.readouterr().err
