"""Scores every (row token, column token) cell of a table for each label: PFN's NER and RE units."""
from typing import List

import torch
from allennlp_light.nn import util

from joint_ere.modules.dropout import TableDropout

CELLS_AT_ONCE = 1 << 24  # table cells x hidden units built at once at inference (64 MB in float32)


def row_blocks(batch: int, rows: int, columns: int, hidden: int, training: bool) -> List[slice]:
    """The rows of a (batch, rows, columns, hidden) table in blocks of at most ``CELLS_AT_ONCE`` values, so a long
    sentence at inference needs bounded memory; in training one block (autograd keeps every block anyway)."""
    if training or batch * rows * columns * hidden <= CELLS_AT_ONCE:
        return [slice(0, rows)]
    block = max(1, CELLS_AT_ONCE // (batch * columns * hidden))
    return [slice(start, start + block) for start in range(0, rows, block)]


class TableScorer(torch.nn.Module):
    """
    ``logits[b, i, j, l] = Linear_l(ELU(LayerNorm(W [x_i; x_j; g])))``, where ``g`` is a sentence summary:
    the max over the words of ``tanh(Linear([task; shared]))`` (PFN's global representation).

    ``W [x_i; x_j; g]`` is computed as ``W_row x_i + W_col x_j + W_g g`` and broadcast to the table, so the
    (T x T x 3D) concatenation is never built.
    """

    def __init__(self, input_dim: int, shared_dim: int, hidden_dim: int, num_labels: int, dropout: float) -> None:
        super().__init__()
        self.summary = torch.nn.Linear(input_dim + shared_dim, hidden_dim)
        self.row = torch.nn.Linear(input_dim, hidden_dim)
        self.column = torch.nn.Linear(input_dim, hidden_dim, bias=False)
        self.context = torch.nn.Linear(hidden_dim, hidden_dim, bias=False)
        self.norm = torch.nn.LayerNorm(hidden_dim)
        self.dropout = TableDropout(dropout)
        self.scorer = torch.nn.Linear(hidden_dim, max(1, num_labels))
        # Nearly every cell is negative; starting near P = 0.01 keeps the summed loss sane in the first steps.
        torch.nn.init.constant_(self.scorer.bias, -4.6)

    def forward(self, task: torch.Tensor, shared: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        summary = torch.tanh(self.summary(torch.cat([task, shared], dim=-1)))
        summary = util.masked_max(summary, mask.unsqueeze(-1), dim=1)  # (B, H)
        rows = self.row(task).unsqueeze(2) + self.context(summary)[:, None, None, :]  # (B, T, 1, H)
        columns = self.column(task).unsqueeze(1)  # (B, 1, T, H)
        batch, length, _, hidden = rows.shape
        blocks = row_blocks(batch, length, length, hidden, self.training)
        if len(blocks) == 1:
            return self._score(rows + columns)
        return torch.cat([self._score(rows[:, block] + columns) for block in blocks], dim=1)

    def _score(self, cells: torch.Tensor) -> torch.Tensor:
        return self.scorer(self.dropout(torch.nn.functional.elu(self.norm(cells))))
