"""Scores every (row token, column token) cell of a table for each label: PFN's NER and RE units."""
import torch
from allennlp_light.nn import util

from joint_ere.modules.dropout import TableDropout

CELLS_AT_ONCE = 1 << 24  # table cells x hidden units built at once at inference (64 MB in float32)


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
        if self.training or batch * length * length * hidden <= CELLS_AT_ONCE:
            return self._score(rows + columns)
        # A long sentence at inference: the (T, T, H) cells a block of rows at a time, so memory stays bounded.
        block = max(1, CELLS_AT_ONCE // (batch * length * hidden))
        return torch.cat([self._score(rows[:, start:start + block] + columns)
                          for start in range(0, length, block)], dim=1)

    def _score(self, cells: torch.Tensor) -> torch.Tensor:
        return self.scorer(self.dropout(torch.nn.functional.elu(self.norm(cells))))
