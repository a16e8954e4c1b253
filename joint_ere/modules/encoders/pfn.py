r"""
The Partition Filter Network encoder (Yan et al. 2021, "A Partition Filter Network for Joint Entity and
Relation Extraction", §2.1-2.2), for the two tasks NER (``e``) and RE (``r``).

Per step t, from [h_{t-1}, x_t] (one matrix W; its x_t half runs for all steps at once):
    \hat c_t = tanh(W_c [h_{t-1}, x_t])                                  candidate cell
    e = 1 - cummax(W_e [h_{t-1}, x_t]),  r = cummax(W_r [h_{t-1}, x_t])  partition gates, one pair for the
        history c_{t-1} and one for \hat c_t; cummax(x) = cumsum(softmax(x)), so e falls and r rises along
        the neurons and their overlap is a contiguous band
    shared = e * r,  e-only = e - shared,  r-only = r - shared           the three partitions
    \rho_s = shared_hist * c_{t-1} + shared_cur * \hat c_t               shared memory
    \rho_e = e-only_hist * c_{t-1} + e-only_cur * \hat c_t + \rho_s      entity memory (with the shared part)
    \rho_r = r-only_hist * c_{t-1} + r-only_cur * \hat c_t + \rho_s      relation memory
    c_t = Linear([\rho_e; \rho_r; \rho_s]),  h_t = tanh(c_t)             filter: the next step's state
    h_e, h_r, h_er = tanh(\rho_e), tanh(\rho_r), tanh(\rho_s)             the task representations
"""
from typing import List, Optional, Tuple

import torch

from joint_ere.common.errors import ConfigurationError
from joint_ere.modules.encoders.multi_task_encoder import MultiTaskEncoder
from joint_ere.modules.encoders.recurrent import RecurrentCell, RecurrentTaskEncoder


class PartitionFilterCell(RecurrentCell):
    """One direction of the PFN. Gate rows: \\hat c, then entity and relation logits for c_{t-1} and \\hat c."""

    def __init__(self, input_dim: int, hidden_dim: int) -> None:
        super().__init__(input_dim, hidden_dim, 5 * hidden_dim, num_memories=3)  # memories e, r, er
        # Adds the shared memory into the entity and relation memories.
        self.register_buffer("with_shared", torch.tensor([1.0, 1.0, 0.0]).view(1, 3, 1), persistent=False)

    @staticmethod
    def partitions(logits: torch.Tensor) -> torch.Tensor:
        """Logits ``(..., 2, hidden)`` (entity, relation) -> gates ``(..., 3, hidden)``: e-only, r-only, shared."""
        gates = torch.softmax(logits, dim=-1).cumsum(dim=-1)  # ON-LSTM's differentiable cummax: rising, in [0, 1]
        entity, relation = 1 - gates[..., 0, :], gates[..., 1, :]
        shared = entity * relation
        return torch.stack([entity - shared, relation - shared, shared], dim=-2)

    def kernel(self) -> Optional[Tuple[int, int, bytes]]:
        return 0, 2, b""  # kind 0 of _cells.c

    def activate(self, gates: torch.Tensor) -> torch.Tensor:
        # \hat c_t = tanh(.); the partition logits stay raw (their cummax is part of ``select``).
        hidden = self.hidden_dim
        return torch.cat([torch.tanh(gates[:, :hidden]), gates[:, hidden:]], dim=1)

    def select(self, activations: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        hidden = self.hidden_dim
        candidate = activations[:, :hidden]
        partition = self.partitions(activations[:, hidden:].view(-1, 2, 2, hidden))  # (batch, [hist, cur], 3, H)
        memories = partition[:, 0] * cell.unsqueeze(1) + partition[:, 1] * candidate.unsqueeze(1)
        return memories + memories[:, 2:] * self.with_shared  # rho_e, rho_r, rho_s

    def output(self, cell: torch.Tensor, activations: torch.Tensor) -> torch.Tensor:
        return torch.tanh(cell)  # PFN has no output gate


@MultiTaskEncoder.register("pfn")
class PartitionFilterEncoder(RecurrentTaskEncoder):
    """
    # Parameters

    input_dim : `int`
    hidden_dim : `int`
    num_tasks : `int`, optional (default = `2`)
        PFN's partition is defined for exactly two tasks; any other value is a configuration error.
    task_names : `List[str]`, optional (default = `["e", "r"]`)
    bidirectional : `bool`, optional (default = `False`)
        PFN is unidirectional.
    recurrent_dropout : `float`, optional (default = `0.0`)
        DropConnect on the hidden-to-gate weights (PFN uses 0.1).
    """

    def __init__(self, input_dim: int, hidden_dim: int, num_tasks: int = 2, task_names: Optional[List[str]] = None,
                 bidirectional: bool = False, recurrent_dropout: float = 0.0) -> None:
        if num_tasks != 2:
            raise ConfigurationError(f"num_tasks: the pfn encoder partitions neurons between exactly 2 tasks "
                                     f"(entity and relation), got {num_tasks}; use 'srn' for more")
        super().__init__(num_tasks, task_names, input_dim, hidden_dim, bidirectional, recurrent_dropout)

    def make_cell(self) -> RecurrentCell:
        return PartitionFilterCell(self.input_dim, self.hidden_dim)
