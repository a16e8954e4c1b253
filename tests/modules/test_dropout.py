"""TableDropout: the statistics of dropout, from a cheaper random-number draw."""
import pytest
import torch

from joint_ere.modules.dropout import TableDropout


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_drops_a_fraction_p_and_keeps_the_expectation(p):
    torch.manual_seed(0)
    dropout = TableDropout(p).train()
    inputs = torch.ones(8, 30, 30, 40)  # 288,000 elements: the 16-bit path
    outputs = dropout(inputs)
    kept = outputs != 0
    assert abs(1 - kept.float().mean().item() - p) < 0.005
    assert torch.allclose(outputs[kept], torch.tensor(1 / (1 - p)))
    assert abs(outputs.mean().item() - 1) < 0.01
    # Independent masks: neighbouring elements (which share a 64-bit word) are not correlated.
    first, second = kept.flatten()[0::2].float(), kept.flatten()[1::2].float()
    assert abs((first * second).mean().item() - (1 - p) ** 2) < 0.005


def test_gradient_is_the_mask_and_eval_is_identity():
    torch.manual_seed(1)
    dropout = TableDropout(0.25).train()
    inputs = torch.randn(4, 20, 20, 50, requires_grad=True)
    outputs = dropout(inputs)
    outputs.sum().backward()
    assert torch.equal(inputs.grad, torch.where(outputs != 0, torch.tensor(1 / 0.75), torch.tensor(0.0)))
    dropout.eval()
    assert dropout(inputs) is inputs
    assert torch.equal(TableDropout(1.0).train()(inputs.detach()), torch.zeros_like(inputs))


def test_seeded_runs_repeat():
    dropout = TableDropout(0.1).train()
    inputs = torch.ones(3, 100, 300)
    torch.manual_seed(5)
    first = dropout(inputs)
    torch.manual_seed(5)
    assert torch.equal(first, dropout(inputs))
