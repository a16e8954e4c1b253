import torch

from joint_ere.common.sequences import reversal_index, reverse_within_lengths


def test_each_sequence_is_reversed_within_its_length_and_padding_stays():
    lengths = torch.tensor([3, 1, 0, 4])
    tensor = torch.arange(4 * 4 * 2, dtype=torch.float).view(4, 4, 2)
    reversed_ = reverse_within_lengths(tensor, reversal_index(lengths, 4))
    for row, n in enumerate(lengths.tolist()):
        assert torch.equal(reversed_[row, :n], tensor[row, :n].flip(0))
        assert torch.equal(reversed_[row, n:], tensor[row, n:])


def test_trailing_dimensions_and_the_round_trip():
    lengths = torch.tensor([5, 2, 4])
    tensor = torch.randn(3, 5, 3, 2)
    index = reversal_index(lengths, 5)
    reversed_ = reverse_within_lengths(tensor, index)
    assert torch.equal(reversed_[1, :2], tensor[1, :2].flip(0))
    assert torch.equal(reverse_within_lengths(reversed_, index), tensor)


def test_the_gradient_is_the_reversal_of_the_output_gradient():
    lengths = torch.tensor([3, 5, 1])
    tensor = torch.randn(3, 5, 4, dtype=torch.double, requires_grad=True)
    index = reversal_index(lengths, 5)
    assert torch.autograd.gradcheck(lambda t: reverse_within_lengths(t, index), (tensor,))
    weights = torch.randn(3, 5, 4, dtype=torch.double)
    (reverse_within_lengths(tensor, index) * weights).sum().backward()
    assert torch.equal(tensor.grad, reverse_within_lengths(weights, index))


def test_an_empty_batch():
    tensor = torch.zeros(0, 5, 4, requires_grad=True)
    reversed_ = reverse_within_lengths(tensor, reversal_index(torch.zeros(0, dtype=torch.long), 5))
    assert reversed_.shape == (0, 5, 4)
    reversed_.sum().backward()
    assert tensor.grad.shape == (0, 5, 4)


def test_the_time_major_index_reverses_the_same_positions():
    lengths = torch.tensor([3, 1, 0, 4])
    tensor = torch.randn(4, 5, 2)
    batch_first = reverse_within_lengths(tensor, reversal_index(lengths, 5))
    index = reversal_index(lengths, 5, time_major=True)
    time_major = reverse_within_lengths(tensor.transpose(0, 1).contiguous(), index)
    assert torch.equal(time_major.transpose(0, 1), batch_first)
