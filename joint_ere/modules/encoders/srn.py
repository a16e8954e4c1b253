r"""
The Selection Recurrent Network (Wang et al., Cascade-SRN, §3.3 and appendix eqs. 16-19), for k tasks.

Per step t, from [h_{t-1}, x_t]:
    f_t, o_t, \hat c_t = sigmoid, sigmoid, tanh of W_1 [h_{t-1}, x_t]                              (1)
    \tilde c_{t-1} = f_t * c_{t-1}                                                                  (2)
    rho_{i,\hat c}, rho_{i,\tilde c} = sigmoid of W_2 [h_{t-1}, x_t], one master gate per task i      (3)
    g_S = prod_{i in S} rho_i                       shared gate of every subset S, |S| >= 2          (4)
    g_i = rho_i - sum_{|S|=2, i in S} g_S + ... = rho_i * prod_{j != i} (1 - rho_j)                  (5)
          (independent gate by inclusion-exclusion; the product form is computed, which is the same
           number and never dips below 0 by rounding)
    s_S = g_{S,\tilde c} * \tilde c_{t-1} + g_{S,\hat c} * \hat c_t    for singletons and subsets    (6, 7)
    c_t = Linear([s_S for every S])                                                                 (8)
    h_t = o_t * tanh(c_t)                                                                           (9)
    h_S = tanh(s_S)  the representations the encoder returns                                        (10)
W_1 and W_2 are one matrix here (their rows stacked), and its x_t half runs for all steps at once.
"""
import functools
import operator
from typing import List, Optional, Tuple

import torch

from joint_ere.modules.encoders.multi_task_encoder import MultiTaskEncoder, task_subsets
from joint_ere.modules.encoders.recurrent import RecurrentCell, RecurrentTaskEncoder


class SelectionCell(RecurrentCell):
    """One direction of the SRN. Gate rows: f, o, the k master gates for \\hat c, the k for \\tilde c, \\hat c."""

    def __init__(self, input_dim: int, hidden_dim: int, num_tasks: int) -> None:
        subsets = task_subsets(num_tasks)
        super().__init__(input_dim, hidden_dim, (3 + 2 * num_tasks) * hidden_dim, num_memories=len(subsets))
        self.num_tasks = num_tasks
        # Gate of memory m = product over tasks j of bank[factor[j, m]], where the bank holds
        # rho_0 .. rho_{k-1}, 1 - rho_0 .. 1 - rho_{k-1}, 1 (eq. 4 for shared subsets, eq. 5 for single tasks).
        ones = 2 * num_tasks
        factor = [[j if j in subset else (num_tasks + j if len(subset) == 1 else ones) for j in range(num_tasks)]
                  for subset in subsets]
        self.register_buffer("factor", torch.tensor(factor, dtype=torch.long).t().contiguous(), persistent=False)
        # The same table for _cells.c, a code per factor: 0 = rho_j, 1 = 1 - rho_j, 2 = 1 (its MAX_TASKS is 4).
        codes = bytes(min(index // num_tasks, 2) for row in zip(*factor) for index in row)
        self._kernel = (1, num_tasks, codes) if num_tasks <= 4 else None
        # cell_update is eq. 8: c_t = Linear([s_e; s_r; s_er]) (or the seven memories of three tasks).

    def selection_gates(self, masters: torch.Tensor) -> torch.Tensor:
        """Eqs. 4-5: master gates ``(..., k, hidden)`` -> gates of every memory ``(..., num_memories, hidden)``:
        the product over tasks j of the factor each memory takes from the bank rho, 1 - rho, 1."""
        bank = torch.cat([masters, 1 - masters, torch.ones_like(masters[..., :1, :])], dim=-2)
        return _product([bank.index_select(-2, index) for index in self.factor])

    def _parts(self, activations: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """forget gate f_t, output gate o_t, master gates (batch, [\\hat c, \\tilde c], k, hidden), \\hat c_t."""
        hidden = self.hidden_dim
        masters = activations[:, 2 * hidden:-hidden].view(-1, 2, self.num_tasks, hidden)
        return activations[:, :hidden], activations[:, hidden:2 * hidden], masters, activations[:, -hidden:]

    def kernel(self) -> Optional[Tuple[int, int, bytes]]:
        return self._kernel  # kind 1 of _cells.c

    def activate(self, gates: torch.Tensor) -> torch.Tensor:
        hidden = self.hidden_dim
        return torch.cat([torch.sigmoid(gates[:, :-hidden]), torch.tanh(gates[:, -hidden:])], dim=1)  # eqs. 1, 3

    def select(self, activations: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        forget, _, masters, candidate = self._parts(activations)
        history = forget * cell  # \tilde c_{t-1}, eq. 2
        selection = self.selection_gates(masters)  # (batch, 2, num_memories, hidden), eqs. 4-5
        return selection[:, 0] * candidate.unsqueeze(1) + selection[:, 1] * history.unsqueeze(1)  # eqs. 6-7

    def output(self, cell: torch.Tensor, activations: torch.Tensor) -> torch.Tensor:
        hidden = self.hidden_dim
        return activations[:, hidden:2 * hidden] * torch.tanh(cell)  # h_t = o_t * tanh(c_t), eq. 9


def _product(tensors: List[torch.Tensor]) -> torch.Tensor:
    return functools.reduce(operator.mul, tensors)


@MultiTaskEncoder.register("srn")
class SelectionRecurrentNetwork(RecurrentTaskEncoder):
    """
    # Parameters

    input_dim : `int`
    hidden_dim : `int`
        Size of the cell and of each direction of every representation.
    num_tasks : `int`, optional (default = `2`)
        2 for NER + RE (representations ``e, r, er``), 3 for Cascade-SRN's entity / subject / object
        extraction (``e, s, o, es, eo, so, eso``).
    task_names : `List[str]`, optional
    bidirectional : `bool`, optional (default = `False`)
        The paper's SRN is unidirectional.
    recurrent_dropout : `float`, optional (default = `0.0`)
    """

    def __init__(self, input_dim: int, hidden_dim: int, num_tasks: int = 2, task_names: Optional[List[str]] = None,
                 bidirectional: bool = False, recurrent_dropout: float = 0.0) -> None:
        super().__init__(num_tasks, task_names, input_dim, hidden_dim, bidirectional, recurrent_dropout)

    def make_cell(self) -> RecurrentCell:
        return SelectionCell(self.input_dim, self.hidden_dim, self.num_tasks)
