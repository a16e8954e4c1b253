import pytest
import torch

from joint_ere.common.targets import mark_cells


def test_valid_entries_become_one_and_padding_never_clears_a_real_one():
    target = torch.zeros(2, 3, 4)
    rows = torch.tensor([[0, 0, 0], [1, 1, 1]])
    first = torch.tensor([[0, 2, -1], [1, 1, 7]])  # -1 and 7: padding, outside the table
    second = torch.tensor([[0, 3, -1], [2, 2, 9]])
    valid = torch.tensor([[True, True, False], [True, True, False]])  # row 1 marks (1, 2) twice
    mark_cells(target, (rows, first, second), valid)
    expected = torch.zeros(2, 3, 4)
    expected[0, 0, 0] = expected[0, 2, 3] = expected[1, 1, 2] = 1.0
    assert torch.equal(target, expected)  # cell (0, 0, 0) kept its 1 though padding lands on it (clamped)


def test_it_matches_boolean_selection_on_random_tables():
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        index = [torch.randint(-1, size, (5, 6), generator=generator) for size in (5, 7, 3)]
        valid = torch.rand(5, 6, generator=generator) > 0.4
        valid &= (index[1] >= 0) & (index[2] >= 0)
        rows = torch.arange(5).unsqueeze(1).expand(5, 6)
        expected = torch.zeros(5, 7, 3)
        expected[rows[valid], index[1][valid], index[2][valid]] = 1.0
        assert torch.equal(mark_cells(torch.zeros(5, 7, 3), (rows, index[1], index[2]), valid), expected)


def test_indices_outside_the_table_and_empty_tables_change_nothing():
    target = torch.zeros(2, 3)
    mark_cells(target, (torch.tensor([0, 1, 1]), torch.tensor([-1, 3, 2])), torch.tensor([True, True, True]))
    assert target.tolist() == [[0, 0, 0], [0, 0, 1]]  # only (1, 2) is inside
    empty = torch.zeros(2, 0)
    assert mark_cells(empty, (torch.tensor([0]), torch.tensor([0])), torch.tensor([True])).shape == (2, 0)


def test_a_view_is_refused():
    with pytest.raises(ValueError, match="contiguous"):
        mark_cells(torch.zeros(3, 4).t(), (torch.tensor([0]), torch.tensor([0])), torch.tensor([True]))
