r"""
A table of every (row token i, column token j) cell scored for each label, with one sigmoid per cell and label:
the NER and RE units of the Partition Filter Network (Yan et al. 2021), used twice by ``table_filling``.

    g             = max_t tanh(W_s [x_t; s_t] + b_s)                  (the sentence summary, PFN's global vector)
    logits[i, j]  = V ELU(LayerNorm(W_row x_i + W_col x_j + W_g g + b)) + c

``W [x_i; x_j; g]`` is computed as ``W_row x_i + W_col x_j + W_g g`` and broadcast to the table, so the
(T x T x 3D) concatenation is never built; at inference the table is built a block of rows at a time. The loss
is binary cross-entropy summed over the valid cells (``upper_triangular``: only i <= j, as for spans) and
labels, per sentence.
"""
from typing import Dict, List, Optional, Tuple

import torch
from allennlp_light.nn import util

from joint_ere.common.blocks import row_blocks
from joint_ere.modules.dropout import TableDropout

Cell = Tuple[int, int, int, int]  # batch row, row token, column token, label


class TableHead(torch.nn.Module):
    """
    # Parameters

    input_dim : `int`
        Size of the task's token representations x.
    shared_dim : `int`
        Size of the shared representations s that the summary also reads.
    hidden_dim : `int`
        Size of a cell before its labels are scored.
    num_labels : `int`
    dropout : `float`
        On the cells.
    upper_triangular : `bool`, optional (default = `False`)
        Only cells with i <= j are valid (a span table); otherwise every pair of real tokens.
    """

    def __init__(self, input_dim: int, shared_dim: int, hidden_dim: int, num_labels: int, dropout: float,
                 upper_triangular: bool = False) -> None:
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
        self.upper_triangular = upper_triangular

    def forward(self, task: torch.Tensor, shared: torch.Tensor, mask: torch.Tensor,
                gold: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        """``{"logits": (B, T, T, labels), "cells": (B, T, T) valid cells, "loss"}``; the loss (summed, divided by
        the batch size) when ``gold``, a 0/1 table shaped as the logits, is given."""
        output = {"logits": self.score(task, shared, mask), "cells": self.cells(mask)}
        if gold is not None:
            weight = output["cells"].unsqueeze(-1).to(torch.float32)
            output["loss"] = torch.nn.functional.binary_cross_entropy_with_logits(
                output["logits"].float(), gold, weight=weight, reduction="sum") / mask.size(0)
        return output

    def score(self, task: torch.Tensor, shared: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
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

    def cells(self, mask: torch.Tensor) -> torch.Tensor:
        pairs = mask.unsqueeze(2) & mask.unsqueeze(1)
        if not self.upper_triangular:
            return pairs
        length = mask.size(1)
        return pairs & torch.ones(length, length, dtype=torch.bool, device=mask.device).triu()

    @staticmethod
    def decode(logits: torch.Tensor, cells: torch.Tensor, threshold: float) -> Tuple[List[Cell], torch.Tensor]:
        """The valid cells over ``threshold``, sorted, and the probability table (on the CPU)."""
        probabilities = torch.sigmoid(logits.float()) * cells.unsqueeze(-1)
        return (probabilities > threshold).nonzero().tolist(), probabilities.cpu()
