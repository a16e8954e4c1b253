import pytest
import torch
from allennlp_light.modules import ConditionalRandomField

from joint_ere.modules.crf import crf_log_likelihood


def _batch(lengths, num_tags, seed, scale=3.0):
    generator = torch.Generator().manual_seed(seed)
    length = max(lengths)
    logits = torch.randn(len(lengths), length, num_tags, generator=generator, dtype=torch.double) * scale
    mask = torch.arange(length)[None] < torch.tensor(lengths)[:, None]
    # Padded positions hold arbitrary tags and scores: neither may leak into the result.
    tags = torch.randint(0, num_tags, (len(lengths), length), generator=generator)
    return logits, tags, mask


@pytest.mark.parametrize("lengths,scale", [([7, 3, 1, 7, 5], 3.0), ([1], 3.0), ([1, 1], 3.0), ([12, 12], 3.0),
                                          ([40, 2, 17], 3.0), ([1500, 9], 3.0), ([30, 25], 200.0)])
def test_log_likelihood_and_gradients_match_allennlp_light(lengths, scale):
    # The last two: a long sentence (the recursions rescale every step) and scores far apart (exp of them
    # unscaled would overflow).
    num_tags = 6
    reference = ConditionalRandomField(num_tags, include_start_end_transitions=True).double()
    parameters = (reference.transitions, reference.start_transitions, reference.end_transitions)
    for parameter in parameters:
        torch.nn.init.normal_(parameter, std=2.0)
        parameter.grad = torch.zeros_like(parameter)  # one-token sentences leave allennlp's transitions unused
    logits, tags, mask = _batch(lengths, num_tags, seed=len(lengths), scale=scale)
    ours_logits = logits.clone().requires_grad_()
    reference_logits = logits.clone().requires_grad_()
    weights = torch.linspace(0.5, 1.5, len(lengths), dtype=torch.double)  # a non-uniform upstream gradient per sentence

    expected = torch.stack([reference(reference_logits[i:i + 1], tags[i:i + 1], mask[i:i + 1])
                            for i in range(len(lengths))])
    (expected * weights).sum().backward()
    expected_grads = [p.grad.clone() for p in parameters]
    for parameter in parameters:
        parameter.grad.zero_()

    ours = crf_log_likelihood(ours_logits, tags, mask, reference.transitions, reference.start_transitions,
                              reference.end_transitions)
    (ours * weights).sum().backward()
    torch.testing.assert_close(ours, expected, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(ours_logits.grad, reference_logits.grad, rtol=1e-10, atol=1e-10)
    assert ours_logits.grad[~mask].abs().sum() == 0  # padding gets no gradient
    for parameter, expected_grad in zip(parameters, expected_grads):
        torch.testing.assert_close(parameter.grad, expected_grad, rtol=1e-10, atol=1e-10)


def test_log_likelihood_of_every_path_sums_to_one():
    # Two tags, three tokens: the eight paths' probabilities, each computed by the gold-path formula, sum to one.
    torch.manual_seed(0)
    logits = torch.randn(1, 3, 2)
    transitions, start, end = torch.randn(2, 2), torch.randn(2), torch.randn(2)
    paths = torch.tensor([[a, b, c] for a in range(2) for b in range(2) for c in range(2)])
    mask = torch.ones(8, 3, dtype=torch.bool)
    total = crf_log_likelihood(logits.expand(8, 3, 2), paths, mask, transitions, start, end).exp().sum()
    assert total.item() == pytest.approx(1.0, abs=1e-6)


def test_gradients_pass_gradcheck_in_double_precision():
    logits, tags, mask = _batch([4, 2, 3], num_tags=3, seed=3)
    inputs = (logits.requires_grad_(), torch.randn(3, 3, dtype=torch.double, requires_grad=True),
              torch.randn(3, dtype=torch.double, requires_grad=True),
              torch.randn(3, dtype=torch.double, requires_grad=True))
    assert torch.autograd.gradcheck(lambda x, a, s, e: crf_log_likelihood(x, tags, mask, a, s, e), inputs)


def test_half_precision_scores_give_a_float32_result_and_gradient_of_their_dtype():
    logits, tags, mask = _batch([5, 3], num_tags=4, seed=5)
    half = logits.bfloat16().requires_grad_()  # as autocast hands them over
    crf = ConditionalRandomField(4)
    result = crf_log_likelihood(half, tags, mask, crf.transitions, crf.start_transitions, crf.end_transitions)
    assert result.dtype == torch.float32
    result.sum().backward()
    assert half.grad.dtype == torch.bfloat16
