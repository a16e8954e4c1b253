"""The span extraction head (Cascade-SRN appendix A, eqs. 12-15)."""
import torch

from joint_ere.modules.heads import SpanExtractionHead

BIG = 20.0


def scores(length, labels, starts=(), ends=(), matches=()):
    """Hand-made logits: +BIG at the given (row, i, k), (row, j, k), (row, i, j, k), -BIG elsewhere."""
    output = {"start": torch.full((1, length, labels), -BIG), "end": torch.full((1, length, labels), -BIG),
              "match": torch.full((1, length, length, labels), -BIG)}
    for name, cells in (("start", starts), ("end", ends), ("match", matches)):
        for cell in cells:
            output[name][(0, *cell)] = BIG
    return output


def test_decoding_needs_a_start_an_end_and_a_match():
    head = SpanExtractionHead(4, num_labels=2)
    mask = torch.tensor([[True] * 6 + [False] * 2])
    output = scores(8, 2,
                    starts=[(0, 0), (2, 1), (3, 1), (4, 0), (6, 0)],
                    ends=[(1, 0), (3, 1), (5, 1), (4, 0), (6, 0)],
                    matches=[(0, 1, 0),  # words 0-1, label 0
                             (2, 3, 1), (2, 5, 1), (3, 3, 1),  # nested and overlapping spans of label 1
                             (4, 4, 0),  # a single word
                             (3, 5, 0),  # a match without a start and an end of its label
                             (0, 4, 1),  # a match of label 1 where label 0 starts and ends
                             (3, 2, 1),  # end before start: never a span
                             (6, 6, 0)])  # a padding position
    spans = head.decode(output, mask)
    assert [(s, e, k) for s, e, k, _ in spans[0]] == [(0, 2, 0), (2, 4, 1), (2, 6, 1), (3, 4, 1), (4, 5, 0)]
    assert all(abs(score - torch.sigmoid(torch.tensor(BIG)).item()) < 1e-6 for *_, score in spans[0])


def test_thresholds_come_from_the_config():
    output = scores(3, 1, starts=[(0, 0)], ends=[(2, 0)], matches=[(0, 2, 0)])
    output["match"][0, 0, 2, 0] = 0.0  # p = 0.5
    mask = torch.ones(1, 3, dtype=torch.bool)
    assert SpanExtractionHead(4, 1).decode(output, mask) == [[]]
    assert [s[:3] for s in SpanExtractionHead(4, 1, match_threshold=0.4).decode(output, mask)[0]] == [(0, 3, 0)]


def test_the_match_logits_are_a_linear_layer_over_the_concatenation():
    """eq. 13 as written: W_m,k [h_i; h_j] + b_m,k."""
    torch.manual_seed(0)
    head = SpanExtractionHead(5, num_labels=3)
    states = torch.randn(2, 4, 5)
    match = head(states, torch.ones(2, 4, dtype=torch.bool))["match"]
    weight = torch.cat([head.match_row.weight, head.match_column.weight], dim=1)  # (K, 2d)
    for i in range(4):
        for j in range(4):
            expected = torch.cat([states[:, i], states[:, j]], dim=-1) @ weight.T + head.match_row.bias
            torch.testing.assert_close(match[:, i, j], expected)


def test_loss_is_equation_15_over_real_tokens_and_pairs():
    torch.manual_seed(1)
    head = SpanExtractionHead(3, num_labels=2, start_weight=0.5, end_weight=0.25, match_weight=2.0)
    states = torch.randn(1, 3, 3)
    mask = torch.tensor([[True, True, False]])
    gold = torch.tensor([[[0, 2, 1], [1, 2, 0], [-1, -1, -1]]])
    output = head(states, mask, gold)

    def bce(logit, target):
        p = torch.sigmoid(logit)
        return -(target * torch.log(p) + (1 - target) * torch.log(1 - p))

    start_gold = {(0, 1), (1, 0)}
    end_gold = {(1, 1), (1, 0)}
    match_gold = {(0, 1, 1), (1, 1, 0)}
    expected = torch.tensor(0.0)
    for i in range(2):
        for k in range(2):
            expected += 0.5 * bce(output["start"][0, i, k], float((i, k) in start_gold))
            expected += 0.25 * bce(output["end"][0, i, k], float((i, k) in end_gold))
            for j in range(i, 2):
                expected += 2.0 * bce(output["match"][0, i, j, k], float((i, j, k) in match_gold))
    torch.testing.assert_close(output["loss"], expected)


def test_the_head_learns_nested_spans_of_several_labels():
    torch.manual_seed(2)
    states = torch.randn(3, 7, 8)
    mask = torch.tensor([[True] * 7, [True] * 5 + [False] * 2, [True] * 3 + [False] * 4])
    gold = torch.tensor([[[0, 3, 0], [1, 3, 1], [5, 7, 0]], [[2, 3, 1], [4, 5, 1], [-1, -1, -1]],
                         [[0, 3, 0], [-1, -1, -1], [-1, -1, -1]]])
    head = SpanExtractionHead(8, num_labels=2)
    optimizer = torch.optim.Adam(head.parameters(), lr=0.05)
    for _ in range(800):  # learned by about step 500
        optimizer.zero_grad()
        head(states, mask, gold)["loss"].backward()
        optimizer.step()
    predicted = [[s[:3] for s in row] for row in head.decode(head(states, mask), mask)]
    expected = [sorted(tuple(span) for span in row.tolist() if span[2] >= 0) for row in gold]
    assert predicted == expected
