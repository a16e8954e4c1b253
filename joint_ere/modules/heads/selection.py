r"""
Multi-head selection (Bekoulis et al. 2018, eq. 4), the relation scorer of the Crone model and of RIN: for tokens
i, j and relation r,

    s(i, j, r) = V_r . f(W z_i + U z_j + b) + c_r,        P(head i, tail j, r) = sigmoid(s(i, j, r))

with one sigmoid per cell, so a pair may hold several relations and a token several heads. A relation is anchored
at the last token of each argument. ``W z_i + U z_j`` is a broadcast sum of two projections, so no
(T x T x 2d) concatenation is built, and at inference the (T x T x hidden) table is built a block of rows at a
time (``row_blocks``).
"""
from typing import List, Tuple

import torch

from joint_ere.common.blocks import row_blocks
from joint_ere.common.errors import ConfigurationError
from joint_ere.common.targets import mark_cells

ACTIVATIONS = {"relu": torch.relu, "tanh": torch.tanh}


class SelectionHead(torch.nn.Module):
    """
    # Parameters

    input_dim : `int`
        Size of z.
    num_labels : `int`
        Relation types.
    hidden_dim : `int`
        Size of ``W z_i + U z_j``.
    activation : `str`
        f: ``relu`` or ``tanh``.
    key : `str`
        The config key that names ``activation``, for the error message.
    """

    def __init__(self, input_dim: int, num_labels: int, hidden_dim: int, activation: str = "relu",
                 key: str = "model.activation") -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ConfigurationError(f"{key}: {activation!r} is not one of {sorted(ACTIVATIONS)}")
        self.num_labels = num_labels
        self.head_projection = torch.nn.Linear(input_dim, hidden_dim)  # W (with b)
        self.tail_projection = torch.nn.Linear(input_dim, hidden_dim, bias=False)  # U
        self.scorer = torch.nn.Linear(hidden_dim, max(1, num_labels))  # V, c
        # Almost every (i, j, r) cell is negative; starting near P = 0.01 keeps the summed relation loss from
        # swamping the NER loss in the first steps.
        torch.nn.init.constant_(self.scorer.bias, -4.6)
        self.activation = ACTIVATIONS[activation]

    def project(self, z: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``W z_i + b`` and ``U z_j``: (B, T, H) each."""
        return self.head_projection(z), self.tail_projection(z)

    def score(self, head: torch.Tensor, tail: torch.Tensor) -> torch.Tensor:
        """s(i, j, r) for every i of ``head`` and j of ``tail``: (B, I, J, R) logits."""
        return self.scorer(self.activation(head.unsqueeze(2) + tail.unsqueeze(1)))

    @staticmethod
    def gold_cells(entities: torch.Tensor, relations: torch.Tensor) -> torch.Tensor:
        """The gold cells (sentence, last token of head, last token of tail, relation) of every relation slot of
        the batch: (B x R, 4). A padding slot (or a relation type the vocabulary lacks) has relation -1; ``loss``
        skips it, so no host round trip is needed to drop it here."""
        last_token = entities[..., 1] - 1  # (B, E)
        head = last_token.gather(1, relations[..., 0].clamp(min=0))
        tail = last_token.gather(1, relations[..., 1].clamp(min=0))
        rows = torch.arange(entities.size(0), device=entities.device).unsqueeze(1).expand_as(head)
        return torch.stack([rows, head, tail, relations[..., 2]], dim=-1).reshape(-1, 4)

    def loss(self, head: torch.Tensor, tail: torch.Tensor, gold: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Binary cross-entropy summed over the (B, T, T, R) table (row i the head token, column j the tail,
        targets 1 at the ``gold`` cells whose relation is not -1); at inference a block of rows at a time, so
        memory stays bounded."""
        batch, length, hidden = head.shape
        total = head.new_zeros((), dtype=torch.float32)
        for rows in row_blocks(batch, length, length, hidden, self.training):
            logits = self.score(head[:, rows], tail).float()  # fp32 under AMP
            first, last = rows.start, rows.start + logits.size(1)
            inside = (gold[:, 3] >= 0) & (gold[:, 1] >= first) & (gold[:, 1] < last)
            target = mark_cells(torch.zeros_like(logits), (gold[:, 0], gold[:, 1] - first, gold[:, 2], gold[:, 3]),
                                inside)
            pairs = (mask[:, rows].unsqueeze(2) & mask.unsqueeze(1)).unsqueeze(-1).float()
            total = total + torch.nn.functional.binary_cross_entropy_with_logits(logits, target, weight=pairs,
                                                                                 reduction="sum")
        return total

    def entity_relations(self, head: torch.Tensor, tail: torch.Tensor, spans: List[List[tuple]],
                         threshold: float) -> List[List[tuple]]:
        """For every sentence b of the batch, (head entity, tail entity, relation, probability) for every ordered
        pair of distinct entities of ``spans[b]`` (through their last tokens) above ``threshold``. Only these
        pairs are scored, not all T x T tokens: the batch's entities padded to (B, E, H), a block of head
        entities at a time, so a long sentence with many entities stays bounded. Where padding would more than
        quadruple the pairs (one sentence with many entities among sentences with few), sentence by sentence."""
        counts = [len(row_spans) for row_spans in spans]
        most = max(counts, default=0)
        if not self.num_labels or not most:
            return [[] for _ in spans]
        if len(spans) > 1 and len(spans) * most * most > 4 * sum(count * count for count in counts):
            return [self.entity_relations(head[row: row + 1], tail[row: row + 1], [row_spans], threshold)[0]
                    for row, row_spans in enumerate(spans)]
        last = torch.tensor([[end - 1 for _, end, _ in row_spans] + [0] * (most - len(row_spans))
                             for row_spans in spans], device=head.device)
        valid = torch.arange(most, device=head.device) < torch.tensor(counts, device=head.device).unsqueeze(1)
        index = last.unsqueeze(-1).expand(-1, -1, head.size(-1))
        heads, tails = head.gather(1, index), tail.gather(1, index)  # (B, E, H)
        distinct = ~torch.eye(most, dtype=torch.bool, device=head.device)
        found: List[List[tuple]] = [[] for _ in spans]
        for rows in row_blocks(len(spans), most, most, head.size(-1), training=False):
            probs = torch.sigmoid(self.score(heads[:, rows], tails).float())  # (B, rows, E, R)
            pairs = valid[:, rows, None] & valid[:, None, :] & distinct[rows]
            above = ((probs > threshold) & pairs.unsqueeze(-1)).nonzero()
            values = probs[above[:, 0], above[:, 1], above[:, 2], above[:, 3]].tolist()
            for (row, head_entity, tail_entity, label), probability in zip(above.tolist(), values):
                found[row].append((rows.start + head_entity, tail_entity, label, probability))
        return found
