"""
What the SRN and PFN encoders share: an LSTM-like cell run over time, with the input half of every gate
computed for all time steps in one matrix product so that the per-step work is one ``h @ W_h`` plus the
cell's element-wise algebra; an optional second (reversed) direction; masks for padded batches.
"""
import contextlib
import functools
import logging
import math
import os
import warnings
from typing import Any, Callable, ContextManager, Dict, List, NamedTuple, Optional, Tuple

import torch
from torch.autograd.function import once_differentiable

from joint_ere.common.errors import ConfigurationError, first_line
from joint_ere.common.sequences import reversal_index, reverse_within_lengths
from joint_ere.modules.encoders.multi_task_encoder import MultiTaskEncoder

try:  # the C steps of the cells (setup.py builds them where a C compiler is found)
    from joint_ere.modules.encoders import _cells
except ImportError:  # pragma: no cover - an install without a compiler
    _cells = None

logger = logging.getLogger(__name__)

use_fused = True  # tests switch it off to compare the C steps with the torch-operator ones
# Where the C steps do not run (CUDA; dtypes other than float32; an SRN of more than 4 tasks; an install without
# a C compiler; ``use_fused`` off) each step's element-wise algebra runs as torch operators: eagerly, or under
# ``torch.compile``, which fuses each stage (forward: select, output; backward: output, select) into few kernels.
# None: compiled on CUDA, where every small operator costs a kernel launch, and eager elsewhere. A compiler that
# fails falls back to eager with a warning. While it is None, the environment variable JOINT_ERE_COMPILE_STEPS=0
# or 1 decides, for command-line users (``allennlp train``).
compile_steps: Optional[bool] = None


class RecurrentCell(torch.nn.Module):
    """
    One direction of a multi-task recurrent encoder, split where the matrix products are:

        a_t = activate(W . [h_{t-1}, x_t] + b)       gate activations (``input_projection``, ``hidden_weight``)
        memories_t = select(a_t, c_{t-1})             element-wise; (batch, num_memories, hidden)
        c_t = cell_update(memories_t)                 a Linear over all memories
        h_t = output(c_t, a_t)                        element-wise

    Subclasses write the element-wise parts in the paper's terms, once: they are the specification. Their
    derivatives come from autograd over it (``_output_step`` and ``_select_step``, one step at a time), and the
    fused C steps of ``_cells.c`` are tested against it. ``_Recurrence`` runs a cell over time.
    """

    num_memories: int

    def __init__(self, input_dim: int, hidden_dim: int, gate_dim: int, num_memories: int) -> None:
        super().__init__()
        self.hidden_dim = hidden_dim
        self.num_memories = num_memories
        self.input_projection = torch.nn.Linear(input_dim, gate_dim)  # the x_t half of W . [h_{t-1}, x_t]
        self.hidden_weight = torch.nn.Parameter(torch.empty(gate_dim, hidden_dim))  # the h_{t-1} half
        self.cell_update = torch.nn.Linear(num_memories * hidden_dim, hidden_dim)

    def reset_parameters(self) -> None:
        # nn.LSTM's initialisation, for every weight of the cell.
        bound = 1.0 / math.sqrt(self.hidden_dim)
        for parameter in self.parameters():
            torch.nn.init.uniform_(parameter, -bound, bound)

    def multiply_adds_per_step(self) -> int:
        """Multiply-adds of the cell's matrix products per token and step (for the encoder benchmark)."""
        return sum(p.numel() for p in self.parameters() if p.dim() == 2)

    def kernel(self) -> Optional[Tuple[int, int, bytes]]:
        """The cell as the fused C steps of ``_cells.c`` know it: (kind, tasks, gate codes); None: no such steps."""
        return None

    def activate(self, gates: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def select(self, activations: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def output(self, cell: torch.Tensor, activations: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


def _select_step(cell: RecurrentCell, gates: torch.Tensor, state: torch.Tensor
                 ) -> Tuple[torch.Tensor, torch.Tensor]:
    """One step's memories and representations from its gate pre-activations z_t and c_{t-1}:
    ``select(activate(z_t), c_{t-1})`` and their tanh (eq. 10 of the SRN paper)."""
    memories = cell.select(cell.activate(gates), state)
    return memories, torch.tanh(memories)


def _output_step(cell: RecurrentCell, new_state: torch.Tensor, gates: torch.Tensor) -> torch.Tensor:
    """One step's hidden state h_t from c_t and the gate pre-activations z_t: ``output(c_t, activate(z_t))``."""
    return cell.output(new_state, cell.activate(gates))


def _autograd_pullback(function: Callable[..., Any], primals: Tuple[torch.Tensor, ...], cotangents: Any
                       ) -> Tuple[torch.Tensor, ...]:
    """The gradient of ``function(*primals)``'s outputs, weighted by ``cotangents``, w.r.t. every primal (zeros
    for one the function does not use): autograd over the specification, eagerly."""
    with torch.enable_grad():
        inputs = tuple(primal.detach().requires_grad_() for primal in primals)
        grads = torch.autograd.grad(function(*inputs), inputs, cotangents, allow_unused=True)
    return tuple(torch.zeros_like(primal) if grad is None else grad for primal, grad in zip(primals, grads))


def _functional_pullback(function: Callable[..., Any], primals: Tuple[torch.Tensor, ...], cotangents: Any
                         ) -> Tuple[torch.Tensor, ...]:
    """The same through ``torch.func.vjp``, which ``torch.compile`` traces into one graph (eagerly it costs
    about 3 ms a call against 0.1 ms for autograd's)."""
    return torch.func.vjp(function, *primals)[1](cotangents)


Pullback = Callable[[Callable[..., Any], Tuple[torch.Tensor, ...], Any], Tuple[torch.Tensor, ...]]


def _forward_select(cell: RecurrentCell, projected: torch.Tensor, recurrent: torch.Tensor, state: torch.Tensor
                    ) -> Tuple[torch.Tensor, ...]:
    """z_t = W_x x_t + b + W_h h_{t-1} (both products given), a_t = activate(z_t), then ``select``: z_t, a_t
    (for ``_forward_output``, so the forward activates once), the memories and their tanh."""
    gates = projected + recurrent
    activations = cell.activate(gates)
    memories = cell.select(activations, state)
    return gates, activations, memories, torch.tanh(memories)


def _forward_output(cell: RecurrentCell, new_state: torch.Tensor, activations: torch.Tensor) -> torch.Tensor:
    return cell.output(new_state, activations)


def _backward_output(cell: RecurrentCell, new_state: torch.Tensor, gates: torch.Tensor, grad_hidden: torch.Tensor,
                     grad_state_next: torch.Tensor, pullback: Pullback = _autograd_pullback
                     ) -> Tuple[torch.Tensor, torch.Tensor]:
    """dL/dc_t (through h_t and through step t + 1) and the part of dL/dz_t that comes through h_t."""
    grad_state, grad_gates = pullback(functools.partial(_output_step, cell), (new_state, gates), grad_hidden)
    return grad_state_next + grad_state, grad_gates


def _backward_select(cell: RecurrentCell, gates: torch.Tensor, state: torch.Tensor, grad_memories: torch.Tensor,
                     grad_representations: torch.Tensor, grad_gates_output: torch.Tensor,
                     pullback: Pullback = _autograd_pullback) -> Tuple[torch.Tensor, torch.Tensor]:
    """dL/dz_t (all of it) and dL/dc_{t-1} through this step, from dL/dmemories_t (through c_t) and
    dL/drepresentations_t."""
    grad_gates, grad_state = pullback(functools.partial(_select_step, cell), (gates, state),
                                      (grad_memories, grad_representations))
    return grad_gates + grad_gates_output, grad_state


class _Steps(NamedTuple):
    """The four element-wise stages of a step, in the order the loops call them."""
    forward_select: Callable[..., Tuple[torch.Tensor, ...]]
    forward_output: Callable[..., torch.Tensor]
    backward_output: Callable[..., Tuple[torch.Tensor, torch.Tensor]]
    backward_select: Callable[..., Tuple[torch.Tensor, torch.Tensor]]


_EAGER_STEPS = _Steps(_forward_select, _forward_output, _backward_output, _backward_select)


def _functional_backward_output(cell: RecurrentCell, new_state: torch.Tensor, gates: torch.Tensor,
                                grad_hidden: torch.Tensor, grad_state_next: torch.Tensor
                                ) -> Tuple[torch.Tensor, torch.Tensor]:
    return _backward_output(cell, new_state, gates, grad_hidden, grad_state_next, _functional_pullback)


def _functional_backward_select(cell: RecurrentCell, gates: torch.Tensor, state: torch.Tensor,
                                grad_memories: torch.Tensor, grad_representations: torch.Tensor,
                                grad_gates_output: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    return _backward_select(cell, gates, state, grad_memories, grad_representations, grad_gates_output,
                            _functional_pullback)


# Compiled variants a stage may need: per cell type, the first step's slices (storage offset 0) and the others,
# with and without inference mode (forward), in every process that mixes several cell types. Beyond this many,
# compiling fails (fullgraph) and the stages run eagerly with a warning, rather than dozens of recompiles.
COMPILED_VARIANTS = 64


@functools.lru_cache(maxsize=None)
def _compiled_steps() -> _Steps:
    """The stages under ``torch.compile``: whole graphs (``fullgraph``), sizes dynamic so that a new batch size
    or sentence length does not recompile. All of them run eagerly, for good, from the first time one fails."""
    logger.info("the recurrent encoders' steps run under torch.compile: each stage compiles on its first use, a "
                "few variants per cell type, once per process")
    functional = (_forward_select, _forward_output, _functional_backward_output, _functional_backward_select)
    return _Steps(*(_falling_back(torch.compile(stage, dynamic=True, fullgraph=True), eager)
                    for stage, eager in zip(functional, _EAGER_STEPS)))


def _falling_back(compiled: Callable[..., Any], eager: Callable[..., Any]) -> Callable[..., Any]:
    def run(*args: Any) -> Any:
        global compile_steps
        if compile_steps is not False:
            try:
                return compiled(*args)
            # compiling failed (no Triton, no C++ compiler, a graph break, too many variants); errors of the
            # computation itself (out of memory, a device error) are not the compiler's and go through
            except (torch._dynamo.exc.TorchDynamoException, torch._dynamo.exc.FailOnRecompileLimitHit) as error:
                compile_steps = False
                cause = getattr(error, "inner_exception", None) or error.__cause__ or error
                warnings.warn(f"torch.compile failed on the recurrent encoders' steps ({type(cause).__name__}: "
                              f"{first_line(cause)}); they run eagerly from now on")
        return eager(*args)
    return run


def _compile_steps_from_environment() -> Optional[bool]:
    value = os.environ.get("JOINT_ERE_COMPILE_STEPS", "").strip()
    if value not in ("", "0", "1"):
        raise ConfigurationError(f"JOINT_ERE_COMPILE_STEPS must be 0 or 1 (or unset), not {value!r}")
    return None if value == "" else value == "1"


def _steps(tensor: torch.Tensor) -> Tuple[_Steps, ContextManager]:
    """The stages for a recurrence over ``tensor``'s device, and the context to run its loop in."""
    compiled = compile_steps if compile_steps is not None else _compile_steps_from_environment()
    if compiled is None:
        compiled = tensor.is_cuda
    if not compiled:
        return _EAGER_STEPS, contextlib.nullcontext()
    return _compiled_steps(), torch._dynamo.config.patch(recompile_limit=COMPILED_VARIANTS)


def _cpu_float32(tensors: Tuple[torch.Tensor, ...]) -> bool:
    return all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors)


def _onednn(*tensors: torch.Tensor) -> bool:
    """Whether oneDNN should run a product of these tensors: CPU float32, outside autocast, in a torch with it, and
    not empty (oneDNN refuses a product over no rows, which torch's own takes)."""
    return (use_onednn and not torch.is_autocast_enabled("cpu") and _cpu_float32(tensors)
            and all(t.numel() > 0 for t in tensors))


def _dense(inputs: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """
    ``inputs @ weight.T (+ bias)`` for 2-d operands (either may be a transposed view). On a CPU in float32 it runs
    through oneDNN's matmul, which is faster than MKL's sgemm for every product of these encoders: on the 2-core
    development machine 33 against 61 ms for 800 x 768 by 768 x 2700, 14 against 24 ms for 2700 x 800 by
    800 x 300 (both while a training run used the other core). Elsewhere plain ``linear``.
    """
    if _onednn(inputs, weight):
        return torch.ops.mkldnn._linear_pointwise(inputs, weight, bias, "none", [], "")
    return torch.nn.functional.linear(inputs, weight, bias)


def _weight_gradient(grad_outputs: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """``grad_outputs.T @ inputs`` (rows: samples), through ``_dense`` with the wider operand as oneDNN's weight.
    (``torch.mm``, which reads the transposes in place, was faster alone but 2-5 % slower in the encoders' whole
    pass, measured in alternating rounds on one and two threads.)"""
    if grad_outputs.size(1) >= inputs.size(1):
        return _dense(inputs.t(), grad_outputs.t()).t()
    return _dense(grad_outputs.t(), inputs.t())


class _Linear(torch.autograd.Function):
    """``_dense`` under autograd: the input projection of all time steps, forward and backward through oneDNN."""

    @staticmethod
    def forward(ctx: Any, inputs: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(inputs, weight)
        return _dense(inputs, weight, bias)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        inputs, weight = ctx.saved_tensors
        grad = grad.contiguous()  # e.g. the expanded gradient of a sum, which oneDNN multiplies very slowly
        return _dense(grad, weight.t()), _weight_gradient(grad, inputs), grad.sum(0)


def _probe_onednn() -> bool:
    try:
        torch.ops.mkldnn._linear_pointwise(torch.ones(1, 1), torch.ones(1, 1), None, "none", [], "")
        return True
    except (AttributeError, RuntimeError, NotImplementedError):  # a torch built without oneDNN
        return False


use_onednn = _probe_onednn()  # tests switch it off to compare both paths


class _StepProduct:
    """
    ``inputs @ weight.T (+ bias)`` for the many small (batch-row) products of a recurrence. On a CPU in float32
    the weight is packed once for oneDNN, which runs these shapes about 1.7x faster than MKL's sgemm (124 against
    209 microseconds for 20 x 300 by 300 x 1500 on the 2-core development machine); elsewhere ``linear``.
    """

    def __init__(self, weight: torch.Tensor, rows: int) -> None:
        self.weight = weight
        self.packed = None
        if _onednn(weight):
            self.packed = torch.ops.mkldnn._reorder_linear_weight(weight.contiguous(), rows)

    def __call__(self, inputs: torch.Tensor, bias: Optional[torch.Tensor] = None) -> torch.Tensor:
        if self.packed is not None:
            return torch.ops.mkldnn._linear_pointwise(inputs, self.packed, bias, "none", [], "")
        return torch.nn.functional.linear(inputs, self.weight, bias)


class _Recurrence(torch.autograd.Function):
    """
    A ``RecurrentCell`` over time, returning the representations tanh(memories) of every step, shaped (length,
    batch, num_memories, hidden). Back-propagation through time is written out: each step's backward is two
    small matrix products and the element-wise derivatives (the C steps, or autograd over the cell's
    specification one step at a time), and the weight gradients of ``hidden_weight`` and ``cell_update`` are
    one large product each after the loop, not one per step.
    """

    @staticmethod
    def forward(ctx: Any, cell: RecurrentCell, projected: torch.Tensor, hidden_weight: torch.Tensor,
                update_weight: torch.Tensor, update_bias: torch.Tensor) -> torch.Tensor:
        projected = projected.contiguous()  # the C steps read rows of it and of the buffers shaped like it
        length, batch, _ = projected.shape
        size = cell.hidden_dim
        recurrent, update = _StepProduct(hidden_weight, batch), _StepProduct(update_weight, batch)
        kernel = cell.kernel() if _fused(projected, hidden_weight) else None
        if kernel is not None:
            hiddens = projected.new_zeros(length + 1, batch, size)  # h_0 .. h_T
            cells = projected.new_zeros(length + 1, batch, size)  # c_0 .. c_T
            activations = torch.empty_like(projected)  # a_t
            memories = projected.new_empty(length, batch, cell.num_memories, size)
            representations = torch.empty_like(memories)  # eq. 10 / 19 of the SRN paper: h_S = tanh(s_S)
            _fused_forward(kernel, projected, recurrent, update, update_bias, hiddens, cells, activations, memories,
                           representations)
        else:
            hiddens, cells, activations, memories, representations = _specified_forward(
                cell, projected, recurrent, update, update_bias)
        ctx.kernel = kernel
        ctx.cell = cell
        ctx.save_for_backward(hidden_weight, update_weight, hiddens, cells, activations, memories, representations)
        return representations

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_representations: torch.Tensor) -> Tuple[Optional[torch.Tensor], ...]:
        hidden_weight, update_weight, hiddens, cells, activations, memories, representations = ctx.saved_tensors
        cell: RecurrentCell = ctx.cell
        length, batch, _ = activations.shape
        recurrent, update = _StepProduct(hidden_weight.t(), batch), _StepProduct(update_weight.t(), batch)
        if ctx.kernel is not None:
            grad_gates = torch.empty_like(activations)
            grad_cells = torch.empty_like(cells[1:])
            _fused_backward(ctx.kernel, grad_representations.contiguous(), representations, recurrent, update, hiddens,
                            cells, activations, grad_gates, grad_cells)
        else:
            grad_gates, grad_cells = _specified_backward(cell, grad_representations, recurrent, update, hiddens, cells,
                                                         activations, memories)
        steps = length * batch  # sizes spelt out: a batch of empty sentences has no elements to infer them from
        flat_gates = grad_gates.view(steps, grad_gates.size(-1))
        grad_hidden_weight = _weight_gradient(flat_gates, hiddens[:-1].reshape(steps, hiddens.size(-1)))
        flat_cells = grad_cells.view(steps, grad_cells.size(-1))
        grad_update_weight = _weight_gradient(flat_cells, memories.view(steps, update_weight.size(1)))
        return None, grad_gates, grad_hidden_weight, grad_update_weight, flat_cells.sum(0)


def _specified_forward(cell: RecurrentCell, projected: torch.Tensor, recurrent: _StepProduct, update: _StepProduct,
                       update_bias: torch.Tensor) -> Tuple[torch.Tensor, ...]:
    """The forward loop of ``_Recurrence`` over the cell's specification (``_steps``): h_0..T, c_0..T, the
    pre-activations z_t (not a_t: the backward stages recompute a_t), memories and representations. The steps'
    outputs are stacked at the end: on CUDA a copy into a buffer at every step would cost a kernel launch each."""
    length, batch, _ = projected.shape
    size = cell.hidden_dim
    steps, limits = _steps(projected)
    hiddens, cells = [projected.new_zeros(batch, size)], [projected.new_zeros(batch, size)]
    gates, memories, representations = [], [], []
    with limits:
        for t in range(length):
            gate, active, memory, representation = steps.forward_select(cell, projected[t], recurrent(hiddens[t]),
                                                                        cells[t])
            cells.append(update(memory.view(batch, -1), update_bias))
            hiddens.append(steps.forward_output(cell, cells[-1], active))
            gates.append(gate), memories.append(memory), representations.append(representation)
    no_memories = projected.new_empty(0, batch, cell.num_memories, size)
    return (torch.stack(hiddens), torch.stack(cells), _stack(gates, torch.empty_like(projected)),
            _stack(memories, no_memories), _stack(representations, no_memories))


def _specified_backward(cell: RecurrentCell, grad_representations: torch.Tensor, recurrent: _StepProduct,
                        update: _StepProduct, hiddens: torch.Tensor, cells: torch.Tensor, gates: torch.Tensor,
                        memories: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """The backward loop of ``_Recurrence`` over the specification: dL/dz_t and dL/dc_t of every step."""
    length, batch, _ = gates.shape
    steps, limits = _steps(gates)
    grad_representations = grad_representations.contiguous()  # one layout, one compiled variant
    grad_hidden = hiddens.new_zeros(batch, cell.hidden_dim)  # dL/dh_t from step t + 1
    grad_state_next = hiddens.new_zeros(batch, cell.hidden_dim)  # dL/dc_t through c_t's use in step t + 1
    grad_gates, grad_cells = [], []  # steps T .. 1
    with limits:
        for t in reversed(range(length)):
            grad_cell, grad_gates_output = steps.backward_output(cell, cells[t + 1], gates[t], grad_hidden,
                                                                 grad_state_next)
            grad_memories = update(grad_cell).view_as(memories[t])  # through c_t = Linear(memories_t)
            grad_gate, grad_state_next = steps.backward_select(cell, gates[t], cells[t], grad_memories,
                                                               grad_representations[t], grad_gates_output)
            grad_hidden = recurrent(grad_gate)
            grad_gates.append(grad_gate), grad_cells.append(grad_cell)
    return (_stack(grad_gates[::-1], torch.empty_like(gates)),
            _stack(grad_cells[::-1], hiddens.new_empty(0, batch, cell.hidden_dim)))


def _stack(tensors: List[torch.Tensor], empty: torch.Tensor) -> torch.Tensor:
    """``torch.stack``, or ``empty`` for a sequence of no steps."""
    return torch.stack(tensors) if tensors else empty


def _fused(*tensors: torch.Tensor) -> bool:
    """Whether the C steps can run: the extension is built, and the tensors are float32 on a CPU."""
    return _cells is not None and use_fused and _cpu_float32(tensors)


def _address(tensor: torch.Tensor) -> Callable[[int], int]:
    """The address of ``tensor[t]`` (a contiguous block) for every t, without making the view."""
    start, stride = tensor.data_ptr(), tensor.stride(0) * tensor.element_size()
    return lambda t: start + t * stride


def _fused_forward(kernel: Tuple[int, int, bytes], projected: torch.Tensor, recurrent: _StepProduct,
                   update: _StepProduct, update_bias: torch.Tensor, hiddens: torch.Tensor, cells: torch.Tensor,
                   activations: torch.Tensor, memories: torch.Tensor, representations: torch.Tensor) -> None:
    """The forward loop of ``_Recurrence`` with each step's element-wise algebra in two C calls."""
    length, batch, _ = projected.shape
    size = hiddens.size(-1)
    projected_at, cell_at, hidden_at = _address(projected), _address(cells), _address(hiddens)
    activations_at, memories_at = _address(activations), _address(memories)
    representations_at = _address(representations)
    for t in range(length):
        gates = recurrent(hiddens[t])
        _cells.forward_select(kernel, batch, size, projected_at(t), gates.data_ptr(), cell_at(t), activations_at(t),
                              memories_at(t), representations_at(t))
        new_cell = update(memories[t].view(batch, -1), update_bias)
        _cells.forward_output(kernel, batch, size, new_cell.data_ptr(), activations_at(t), cell_at(t + 1),
                              hidden_at(t + 1))


def _fused_backward(kernel: Tuple[int, int, bytes], grad_representations: torch.Tensor,
                    representations: torch.Tensor, recurrent: _StepProduct,
                    update: _StepProduct, hiddens: torch.Tensor, cells: torch.Tensor, activations: torch.Tensor,
                    grad_gates: torch.Tensor, grad_cells: torch.Tensor) -> None:
    """The backward loop of ``_Recurrence`` with each step's element-wise derivatives in two C calls."""
    length, batch, _ = activations.shape
    size = hiddens.size(-1)
    grad_hidden = hiddens.new_zeros(batch, size)
    grad_cell_next = hiddens.new_zeros(batch, size)
    cell_at, activations_at = _address(cells), _address(activations)
    grad_representations_at, representations_at = _address(grad_representations), _address(representations)
    grad_gates_at, grad_cells_at = _address(grad_gates), _address(grad_cells)
    for t in reversed(range(length)):
        _cells.backward_output(kernel, batch, size, grad_hidden.data_ptr(), cell_at(t + 1), activations_at(t),
                               grad_cell_next.data_ptr(), grad_cells_at(t), grad_gates_at(t))
        grad_update = update(grad_cells[t])
        _cells.backward_select(kernel, batch, size, grad_representations_at(t), representations_at(t),
                               grad_update.data_ptr(), activations_at(t), cell_at(t), grad_gates_at(t),
                               grad_cell_next.data_ptr())
        grad_hidden = recurrent(grad_gates[t])


class RecurrentTaskEncoder(MultiTaskEncoder):
    """
    Base of the ``srn`` and ``pfn`` encoders: runs ``make_cell()`` forwards (and a second one backwards when
    ``bidirectional``); every representation is ``tanh`` of one of the cell's memories, both directions joined.

    # Parameters

    input_dim, hidden_dim : `int`
    bidirectional : `bool`
    recurrent_dropout : `float`
        DropConnect on the hidden-to-gate weights in training (one mask per batch), as PFN does.
    """

    def __init__(self, num_tasks: int, task_names: Optional[List[str]], input_dim: int, hidden_dim: int,
                 bidirectional: bool, recurrent_dropout: float) -> None:
        super().__init__(num_tasks, task_names)
        _compile_steps_from_environment()  # a bad JOINT_ERE_COMPILE_STEPS fails when the config is read
        self.input_dim = input_dim
        self.hidden_dim = hidden_dim
        self.bidirectional = bidirectional
        self.recurrent_dropout = recurrent_dropout
        self.cells = torch.nn.ModuleList([self.make_cell() for _ in range(2 if bidirectional else 1)])
        for cell in self.cells:
            cell.reset_parameters()

    def make_cell(self) -> RecurrentCell:
        raise NotImplementedError

    def get_input_dim(self) -> int:
        return self.input_dim

    def get_output_dim(self) -> int:
        return self.hidden_dim * len(self.cells)

    def forward(self, inputs: torch.Tensor, mask: torch.Tensor) -> Dict[str, torch.Tensor]:
        lengths = mask.sum(1)
        directions = []
        for direction, cell in enumerate(self.cells):
            if direction == 0:
                directions.append(self._unroll(cell, inputs))
            else:  # each sequence reversed within its own length, so padding stays at the end
                order = reversal_index(lengths, inputs.size(1))
                directions.append(reverse_within_lengths(self._unroll(cell, reverse_within_lengths(inputs, order)),
                                                         order))
        # (batch, length, num_memories, directions * hidden): h_S = tanh(s_S) of every memory, both directions.
        states = (directions[0] if len(directions) == 1 else torch.cat(directions, dim=-1)) * mask[:, :, None, None]
        # unbind, not indexing: its backward writes one gradient tensor, not a zero-filled one per representation.
        return dict(zip(self.representation_names, states.unbind(dim=2)))

    def _unroll(self, cell: RecurrentCell, inputs: torch.Tensor) -> torch.Tensor:
        # The input half of every gate for all steps in one product, time-major so each step reads a block.
        projected = _project(inputs.transpose(0, 1), cell.input_projection)  # (length, batch, gates)
        hidden_weight = cell.hidden_weight
        if self.training and self.recurrent_dropout > 0:
            hidden_weight = torch.nn.functional.dropout(hidden_weight, self.recurrent_dropout)
        # The recurrence runs in (at least) float32 whatever autocast says: its backward multiplies
        # saved states by the weights directly, and a half-precision cell state drifts over long sentences.
        dtype = torch.promote_types(projected.dtype, hidden_weight.dtype)
        with torch.autocast(inputs.device.type, enabled=False):
            representations = _Recurrence.apply(cell, projected.to(dtype), hidden_weight.to(dtype),
                                                cell.cell_update.weight.to(dtype), cell.cell_update.bias.to(dtype))
        return representations.transpose(0, 1)  # (batch, length, num_memories, hidden)


def _project(inputs: torch.Tensor, linear: torch.nn.Linear) -> torch.Tensor:
    """``linear(inputs)`` for (length, batch, features) inputs; through oneDNN where ``_dense`` would use it."""
    if not _onednn(inputs, linear.weight):
        return linear(inputs)
    flat = inputs.reshape(-1, inputs.size(-1))
    return _Linear.apply(flat, linear.weight, linear.bias).view(*inputs.shape[:-1], linear.out_features)
