"""``trainer.adversarial``: η_adv = α √D g / ‖g‖ per sentence, the summed gradient of both passes, the trainer."""
import json

import pytest
import torch

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
    torch.manual_seed(1)
    toy, inputs = _Toy(), torch.randn(1, 4, 3)
    adversarial = FastGradientPerturbation(toy, alpha=0.5)

    def twice() -> torch.Tensor:
        return toy(inputs) + 3 * toy(inputs * 2)

    with adversarial.capture():
        twice().backward()
    with adversarial.perturb():
        twice().backward()
    trained = {name: p.grad.clone() for name, p in toy.named_parameters()}
    toy.zero_grad()
    first, second = toy.text_field_embedder(inputs), toy.text_field_embedder(inputs * 2)
    gradients = torch.autograd.grad(toy.loss(first) + 3 * toy.loss(second), [first, second])
    first_eta, second_eta = (0.5 * 2.0 * g / g.norm() for g in gradients)
    assert not torch.allclose(first_eta, second_eta, atol=1e-3)
    clean = toy.loss(first) + 3 * toy.loss(second)
    (clean + toy.loss(first + first_eta) + 3 * toy.loss(second + second_eta)).backward()
    for name, parameter in toy.named_parameters():
        torch.testing.assert_close(trained[name], parameter.grad, msg=name)

    with adversarial.capture():
        twice().backward()
    with pytest.raises(RuntimeError, match="ran 1 times in the perturbed pass and 2 in the first"):
        with adversarial.perturb():
            toy(inputs)
    with adversarial.capture():
        twice().backward()
    with adversarial.perturb(), pytest.raises(RuntimeError, match="ran more often"):
        for _ in range(3):
            toy(inputs)
    assert torch.equal(toy.text_field_embedder(inputs), toy.text_field_embedder(inputs))  # outside: untouched
    adversarial.remove()
    assert not toy.text_field_embedder._forward_hooks


def test_a_frozen_embedder_is_perturbed_too():
    torch.manual_seed(2)
    toy, inputs = _Toy(), torch.randn(2, 3, 3)
    toy.text_field_embedder.requires_grad_(False)
    adversarial = FastGradientPerturbation(toy, alpha=0.3)
    with adversarial.capture():
        toy(inputs).backward()
    with adversarial.perturb():
        toy(inputs).backward()
    toy_grad = toy.head.weight.grad.clone()
    toy.zero_grad()
    embedded = toy.text_field_embedder(inputs).requires_grad_()
    gradient, = torch.autograd.grad(toy.loss(embedded), embedded)
    eta = 0.3 * 2.0 * gradient / gradient.flatten(1).norm(dim=1)[:, None, None]
    (toy.loss(embedded) + toy.loss(embedded + eta)).backward()
    torch.testing.assert_close(toy_grad, toy.head.weight.grad)


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


def test_training_reports_the_adversarial_loss_and_takes_other_steps(tmp_path):
    runs = {}
    for name, alpha in (("zero", 0.0), ("adversarial", 0.5)):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(_config(0.1, {"alpha": alpha})))
        assert main(["train", str(path), "-s", str(tmp_path / name)]) == 0
        runs[name] = torch.load(tmp_path / name / "model_state_e1.th", weights_only=True)
    for epoch in (0, 1):  # no dropout: the perturbed pass has the same weights, a step up the loss
        metrics = json.loads((tmp_path / "adversarial" / f"metrics_epoch_{epoch}.json").read_text())
        assert metrics["training_adversarial_loss"] > metrics["training_loss"]
        zero = json.loads((tmp_path / "zero" / f"metrics_epoch_{epoch}.json").read_text())
        assert zero["training_adversarial_loss"] == pytest.approx(zero["training_loss"])
    assert max((runs["zero"][key] - value).abs().max().item() for key, value in runs["adversarial"].items()) > 1e-4


def test_the_trained_model_keeps_no_hook(tmp_path):
    from joint_ere.commands.train import train_model
    from joint_ere.common import Params

    model = train_model(Params(_config(0.1, {"alpha": 0.1})), str(tmp_path / "run"))
    assert not any(module._forward_hooks for module in model.modules())


@gloo
def test_two_processes_train_as_one_with_adversarial_training(tmp_path, monkeypatch):
    """η is normalised per sentence, so the shards of a batch get the perturbations the whole batch gets."""
    from tests.conftest import ROOT

    monkeypatch.chdir(ROOT)
    one, two, epochs = tmp_path / "one", tmp_path / "two", 4
    # SGD: Adam's normalised steps would turn the two runs' different summation orders into visible differences
    trainer = {"adversarial": {"alpha": 0.05}, "optimizer": {"type": "sgd", "lr": 0.1}}
    assert main(["train", "training_config/quickstart.jsonnet", "-s", str(one), "-o",
                 overrides(4, epochs, **trainer)]) == 0
    torchrun(two, 2, epochs, **trainer)
    assert_same_training(one, two, range(epochs))
    assert "training_adversarial_loss" in json.loads((two / "metrics_epoch_0.json").read_text())
