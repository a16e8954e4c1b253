"""``trainer.adversarial``: η_adv = α √D g / ‖g‖ per sentence, the summed gradient of both passes, the trainer."""
import json

import pytest
import torch

from joint_ere.archival import load_archive
from joint_ere.commands import main
from joint_ere.common import ConfigurationError
from joint_ere.training.adversarial import FastGradientPerturbation
from tests.conftest import tiny_config
from tests.training.test_distributed import assert_same_training, gloo, overrides, torchrun


class _Toy(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.text_field_embedder = torch.nn.Linear(3, 4)
        self.head = torch.nn.Linear(4, 2)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.loss(self.text_field_embedder(inputs))

    def loss(self, embedded: torch.Tensor) -> torch.Tensor:
        return (self.head(torch.tanh(embedded)) ** 2).sum()


def test_the_second_pass_trains_on_the_embeddings_moved_along_their_gradient():
    torch.manual_seed(0)
    toy, inputs = _Toy(), torch.randn(2, 5, 3)  # two sentences of five tokens
    adversarial = FastGradientPerturbation(toy, alpha=0.3)
    with adversarial.capture():
        toy(inputs).backward()
    with adversarial.perturb():
        toy(inputs).backward()
    trained = {name: p.grad.clone() for name, p in toy.named_parameters()}

    # by hand: g = dL/dw, η = 0.3 · √4 · g / ‖g‖ per sentence, and the gradient of L(w) + L(w + η) with η fixed
    toy.zero_grad()
    embedded = toy.text_field_embedder(inputs)
    gradient, = torch.autograd.grad(toy.loss(embedded), embedded)
    eta = 0.3 * 2.0 * gradient / gradient.flatten(1).norm(dim=1)[:, None, None]
    assert eta[0].norm().item() == pytest.approx(0.6) and eta[1].norm().item() == pytest.approx(0.6)
    (toy.loss(embedded) + toy.loss(embedded + eta)).backward()
    for name, parameter in toy.named_parameters():
        torch.testing.assert_close(trained[name], parameter.grad, msg=name)
    # and the perturbation made the loss larger, as a step up its gradient should
    with torch.no_grad():
        assert toy.loss(embedded + eta) > toy.loss(embedded)


def test_every_call_of_the_module_gets_its_own_perturbation():
    toy, inputs = _Toy(), torch.randn(1, 4, 3)
    adversarial = FastGradientPerturbation(toy, alpha=0.5)
    seen = []
    toy.head.register_forward_hook(lambda module, args, output: seen.append(args[0].detach().clone()))
    with adversarial.capture():
        (toy(inputs) + 3 * toy(inputs * 2)).backward()
    with adversarial.perturb():
        toy(inputs) + 3 * toy(inputs * 2)
    assert not torch.allclose(seen[2] - seen[0], seen[3] - seen[1])  # two calls, two directions
    with adversarial.perturb(), pytest.raises(RuntimeError, match="ran more often"):
        for _ in range(3):
            toy(inputs)
    assert torch.equal(toy.text_field_embedder(inputs), toy.text_field_embedder(inputs))  # outside: untouched


def test_bad_settings_name_the_key():
    with pytest.raises(ConfigurationError, match=r"trainer.adversarial.module: the model \(_Toy\) has no "
                                                 r"submodule 'embedder'"):
        FastGradientPerturbation(_Toy(), alpha=0.1, module="embedder")
    with pytest.raises(ConfigurationError, match="trainer.adversarial.alpha"):
        FastGradientPerturbation(_Toy(), alpha=-1.0)


def _config(lr, adversarial=None):
    config = tiny_config(epochs=2, dropout=0.0)
    config["trainer"]["optimizer"] = {"type": "sgd", "lr": lr}
    config["trainer"]["callbacks"] = []
    if adversarial is not None:
        config["trainer"]["adversarial"] = adversarial
    return config


def test_with_alpha_zero_each_step_takes_twice_the_gradient(tmp_path):
    """α = 0 (and no dropout) makes both passes the same, so SGD at half the learning rate takes the same steps."""
    runs = {}
    for name, config in (("plain", _config(0.1)), ("adversarial", _config(0.05, {"alpha": 0.0}))):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(config))
        assert main(["train", str(path), "-s", str(tmp_path / name)]) == 0
        runs[name] = torch.load(tmp_path / name / "model_state_e1.th", weights_only=True)
    for key, value in runs["plain"].items():
        torch.testing.assert_close(runs["adversarial"][key], value, rtol=1e-5, atol=1e-6, msg=key)


def test_training_reports_the_adversarial_loss_and_the_archive_predicts(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(_config(0.1, {"alpha": 0.05})))
    assert main(["train", str(path), "-s", str(tmp_path / "run")]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["training_adversarial_loss"] > 0 and "training_loss" in metrics
    model = load_archive(str(tmp_path / "run" / "model.tar.gz")).model
    assert not any(module._forward_hooks for module in model.modules())  # a training device, not the model's


@gloo
def test_two_processes_train_as_one_with_adversarial_training(tmp_path, monkeypatch):
    """η is normalised per sentence, so the shards of a batch get the perturbations the whole batch gets."""
    from tests.conftest import ROOT

    monkeypatch.chdir(ROOT)
    one, two, epochs = tmp_path / "one", tmp_path / "two", 4
    settings = overrides(4, epochs, adversarial={"alpha": 0.05})
    assert main(["train", "training_config/quickstart.jsonnet", "-s", str(one), "-o", settings]) == 0
    torchrun(two, 2, epochs, adversarial={"alpha": 0.05})
    assert_same_training(one, two, range(epochs))
    assert "training_adversarial_loss" in json.loads((two / "metrics_epoch_0.json").read_text())
