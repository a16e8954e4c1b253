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

    def partitions(self, logits: torch.Tensor) -> torch.Tensor:
        """Logits ``(..., 2, hidden)`` (entity, relation) -> gates ``(..., 3, hidden)``: e-only, r-only, shared."""
        return self._partition(logits)[-1]

    @staticmethod
    def _partition(logits: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """softmax(logits), the entity gate, the relation gate and the three partitions (for the backward too)."""
        probabilities = torch.softmax(logits, dim=-1)
        gates = probabilities.cumsum(dim=-1)  # ON-LSTM's differentiable cummax: non-decreasing, in [0, 1]
        entity, relation = 1 - gates[..., 0, :], gates[..., 1, :]
        shared = entity * relation
        return probabilities, entity, relation, torch.stack([entity - shared, relation - shared, shared], dim=-2)

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

    def activate_backward(self, grad: torch.Tensor, activations: torch.Tensor) -> None:
        hidden = self.hidden_dim
        grad[:, :hidden] = torch.ops.aten.tanh_backward(grad[:, :hidden], activations[:, :hidden])

    def select_backward(self, grad_memories: torch.Tensor, activations: torch.Tensor, cell: torch.Tensor,
                        grad_activations: torch.Tensor) -> torch.Tensor:
        hidden = self.hidden_dim
        candidate = activations[:, :hidden]
        probabilities, entity, relation, partition = self._partition(activations[:, hidden:].view(-1, 2, 2, hidden))
        # rho_s also flows into rho_e and rho_r.
        grad_memories = torch.cat([grad_memories[:, :2], grad_memories.sum(1, keepdim=True)], dim=1).unsqueeze(1)
        states = torch.stack([cell, candidate], dim=1).unsqueeze(2)  # (batch, [c_{t-1}, \hat c], 1, hidden)
        grad_states = (grad_memories * partition).sum(2)
        grad_partition = grad_memories * states  # d e-only, d r-only, d shared
        coupled = grad_partition[..., 0, :] + grad_partition[..., 1, :] - grad_partition[..., 2, :]
        grad_entity = grad_partition[..., 0, :] - relation * coupled
        grad_relation = grad_partition[..., 1, :] - entity * coupled
        grad_cumulative = torch.stack([-grad_entity, grad_relation], dim=-2)
        # cumsum's backward is a reversed cumsum; then softmax's.
        grad_probabilities = grad_cumulative.flip(-1).cumsum(-1).flip(-1)
        grad_logits = torch.ops.aten._softmax_backward_data(grad_probabilities, probabilities, -1,
                                                            probabilities.dtype)
        grad_activations[:, :hidden] = grad_states[:, 1]
        grad_activations[:, hidden:] = grad_logits.reshape(grad_logits.size(0), -1)
        return grad_states[:, 0]

    def output_backward(self, grad_hidden: torch.Tensor, cell: torch.Tensor, hidden: torch.Tensor,
                        activations: torch.Tensor, grad_activations: torch.Tensor) -> torch.Tensor:
        return torch.ops.aten.tanh_backward(grad_hidden, hidden)


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
