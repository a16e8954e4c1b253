"""
AllenNLP's ``lstm`` Seq2Seq and Seq2Vec encoders (same parameters, same state-dict names, so archives load
either way), with a faster CPU path.

AllenNLP runs ``torch.nn.LSTM`` over a PackedSequence, which on the CPU steps through time with a shrinking
batch outside oneDNN's fused LSTM. Here, on the CPU, each direction of each layer runs over the padded batch
instead: the forward direction as it is (padding comes after every real word, so it cannot reach one), the
backward direction over each sentence reversed within its own length (``reverse_within_lengths``; padding stays at
the end) and reversed back. The outputs at real positions are the packed LSTM's, and padding positions are zero
as after ``pad_packed_sequence``. Where a batch mixes very different lengths (the long tail of a sorted
prediction batch, a long word among short ones), its rows run in groups of similar length, each trimmed to its
longest row (``length_groups``). A BiLSTM of 100 units over 64 sentences of 20-30 words: forward + backward
26 against 55 ms on one thread (``benchmarks/lstm.py``; RESULTS.md, "CPU training speed"). On CUDA the packed
cuDNN LSTM stays: it is fast and reads lengths itself. ``packed_reference`` runs the packed path anywhere (the
tests compare both).

``inference_dtype`` (set by ``--use-amp``, ``use_reduced_precision``): bfloat16 runs the CPU path's LSTMs in
bfloat16 when no gradient is needed (oneDNN uses AMX where the CPU has it: 2.5 times faster on one thread of the
development VM); the output is float32 again.
"""
from typing import List, Optional, Tuple

import torch
from allennlp_light.modules import Seq2SeqEncoder, Seq2VecEncoder
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from joint_ere.common.devices import onednn_bfloat16
from joint_ere.common.errors import ConfigurationError
from joint_ere.common.sequences import reversal_index, reverse_within_lengths


class _Lstm(torch.nn.Module):
    """``_module``, a batch-first ``torch.nn.LSTM``, and ``encode`` (batch, length, input) → every position of the
    last layer (batch, length, directions × hidden)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 dropout: float = 0.0, bidirectional: bool = False, stateful: bool = False) -> None:
        super().__init__()
        if stateful:
            raise ConfigurationError("lstm: stateful encoders are not supported (sentences are independent here)")
        self._module = torch.nn.LSTM(input_size, hidden_size, num_layers, bias=bias, batch_first=True,
                                     dropout=dropout, bidirectional=bidirectional)
        self.packed_reference = False
        self.inference_dtype: Optional[torch.dtype] = None

    def get_input_dim(self) -> int:
        return self._module.input_size

    def is_bidirectional(self) -> bool:
        return self._module.bidirectional

    def get_output_dim(self) -> int:
        return self._module.hidden_size * (2 if self._module.bidirectional else 1)

    def encode(self, inputs: torch.Tensor, mask: torch.Tensor, hidden_state: Optional[torch.Tensor] = None
               ) -> torch.Tensor:
        if hidden_state is not None:
            raise ConfigurationError("lstm: an initial hidden state is not supported")
        lengths = mask.sum(1)
        if inputs.is_cuda or self.packed_reference:
            return self._packed(inputs, lengths)
        reduced = self.inference_dtype is not None and not torch.is_grad_enabled()
        if reduced:
            return self._padded(inputs, lengths, self.inference_dtype).to(inputs.dtype)
        autocast = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None
        if inputs.dtype == torch.float16 or autocast == torch.float16 or (
                autocast == torch.bfloat16 and not onednn_bfloat16()):
            # oneDNN has a float16 LSTM only on CPUs with AVX512-FP16 or AMX-FP16, and under autocast a bfloat16
            # one only from AVX-512 up (elsewhere it fails to create the primitive): float32, outside autocast
            with torch.autocast("cpu", enabled=False):
                return self._padded(inputs, lengths, torch.float32).to(inputs.dtype)
        return self._padded(inputs, lengths, None).to(inputs.dtype)  # a bfloat16 autocast: back to the input's type

    def _packed(self, inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        valid = lengths > 0  # PackedSequence refuses empty rows; they stay zero
        if not valid.any():
            return inputs.new_zeros(*inputs.shape[:2], self.get_output_dim())
        packed = pack_padded_sequence(inputs[valid], lengths[valid].cpu(), batch_first=True, enforce_sorted=False)
        encoded, _ = pad_packed_sequence(self._module(packed)[0], batch_first=True)
        # under autocast the LSTM answers in float16 / bfloat16: the output takes its dtype
        output = encoded.new_zeros(*inputs.shape[:2], self.get_output_dim())
        output[valid, : encoded.size(1)] = encoded
        return output

    def _padded(self, inputs: torch.Tensor, lengths: torch.Tensor, dtype: Optional[torch.dtype]) -> torch.Tensor:
        """Rows of similar length run together (``length_groups``), each group trimmed to its longest row."""
        module = self._module
        directions = 2 if module.bidirectional else 1
        flops = 8 * module.hidden_size * (module.input_size + module.hidden_size) * module.num_layers * directions
        groups = length_groups(lengths.tolist(), min_saving=max(1, GROUP_COST_FLOPS // flops))
        if len(groups) == 1:
            width = min(groups[0][1], inputs.size(1))
            if width == inputs.size(1):  # the usual case: nothing to trim, nothing to copy
                return self._padded_group(inputs, lengths, dtype)
            trimmed = self._padded_group(inputs[:, :width], lengths, dtype)
            return torch.nn.functional.pad(trimmed, (0, 0, 0, inputs.size(1) - width))
        output = None
        for rows, width in groups:
            index = torch.tensor(rows, device=inputs.device)
            part = self._padded_group(inputs[index, :width], lengths[index], dtype)
            if output is None:  # the groups' dtype, which a bfloat16 autocast makes bfloat16 whatever the input's
                output = inputs.new_zeros(*inputs.shape[:2], self.get_output_dim(), dtype=part.dtype)
            output[index, :width] = part
        return output

    def _padded_group(self, inputs: torch.Tensor, lengths: torch.Tensor, dtype: Optional[torch.dtype]
                      ) -> torch.Tensor:
        module = self._module
        # Time-major throughout: oneDNN's LSTM runs on (length, batch, features), so a batch-first layer would be
        # transposed into a copy and back at every layer and direction; here once in, once out.
        reverse = reversal_index(lengths, inputs.size(1), time_major=True) if module.bidirectional else None
        layer_input = (inputs.to(dtype) if dtype is not None else inputs).transpose(0, 1).contiguous()
        for layer in range(module.num_layers):
            outputs = [self._direction(layer_input, layer, "")]
            if reverse is not None:
                backward = self._direction(reverse_within_lengths(layer_input, reverse), layer, "_reverse")
                outputs.append(reverse_within_lengths(backward, reverse))
            layer_input = torch.cat(outputs, -1) if len(outputs) > 1 else outputs[0]
            if layer + 1 < module.num_layers and module.dropout > 0:  # between layers, as torch.nn.LSTM
                layer_input = torch.nn.functional.dropout(layer_input, module.dropout, self.training)
        positions = torch.arange(inputs.size(1), device=inputs.device)
        valid = (positions.unsqueeze(1) < lengths).unsqueeze(-1).to(layer_input.dtype)  # (length, batch, 1)
        return (layer_input * valid).transpose(0, 1).contiguous()

    def _direction(self, inputs: torch.Tensor, layer: int, suffix: str) -> torch.Tensor:
        """One layer, one direction, left to right over the padded batch (oneDNN's fused LSTM on the CPU)."""
        module = self._module
        names = ["weight_ih", "weight_hh"] + (["bias_ih", "bias_hh"] if module.bias else [])
        weights: List[torch.Tensor] = [getattr(module, f"{name}_l{layer}{suffix}").to(inputs.dtype) for name in names]
        zeros = inputs.new_zeros(1, inputs.size(1), module.hidden_size)  # time-major: (length, batch, ...)
        return torch.lstm(inputs, (zeros, zeros), weights, module.bias, 1, 0.0, self.training, False, False)[0]


# The padded LSTM arithmetic (FLOPs over all layers and directions) that one more group must save: a group adds
# oneDNN calls, copies and, above all, a fixed cost per time step (about 4 us against 1.4 us per row and step for a
# 200 -> 100 layer on the development VM). Chosen by measurement: 4e8 predicts CoNLL04 dev 5% faster than one
# group per batch (8e7: 2%; 4e7: 9% slower); RESULTS.md, "Prediction in streams".
GROUP_COST_FLOPS = 400_000_000


def length_groups(lengths: List[int], min_saving: int) -> List[Tuple[List[int], int]]:
    """Splits a padded batch into groups of rows of similar length: ``(rows, width)`` pairs, ``width`` the
    group's longest row (at least 1), every row in exactly one group.

    Rows are taken longest first; a group is closed before row i when padding the rows left only to row i's
    length instead of the group's width saves at least ``min_saving`` positions. A batch of equal lengths stays
    one group; a long tail (one 111-word sentence among 40-word ones, a 20-letter word among 5-letter ones) gets
    its own.
    """
    order = sorted(range(len(lengths)), key=lambda row: -lengths[row])
    groups: List[Tuple[List[int], int]] = []
    start = 0
    for position in range(1, len(order) + 1):
        if position < len(order):
            saving = (len(order) - position) * (lengths[order[start]] - lengths[order[position]])
            if saving < min_saving:
                continue
        groups.append((order[start:position], max(lengths[order[start]], 1)))
        start = position
    return groups or [([], 1)]


@Seq2SeqEncoder.register("lstm", exist_ok=True)
class LstmSeq2SeqEncoder(_Lstm, Seq2SeqEncoder):
    """
    ``{"type": "lstm", "input_size": ..., "hidden_size": ..., "num_layers": 1, "bidirectional": false,
    "dropout": 0.0, "bias": true}``: every position's hidden state of the last layer, zero at padding.
    """

    def forward(self, inputs: torch.Tensor, mask: torch.Tensor,
                hidden_state: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.encode(inputs, mask, hidden_state)


@Seq2VecEncoder.register("lstm", exist_ok=True)
class LstmSeq2VecEncoder(_Lstm, Seq2VecEncoder):
    """
    The last layer's final state: the forward direction's after the last real position, the backward direction's
    after position 0 (AllenNLP's ``lstm`` Seq2Vec encoder); zero for an empty sequence.
    """

    def forward(self, inputs: torch.Tensor, mask: torch.Tensor,
                hidden_state: Optional[torch.Tensor] = None) -> torch.Tensor:
        encoded = self.encode(inputs, mask, hidden_state)
        hidden = self._module.hidden_size
        last = (mask.sum(1) - 1).clamp(min=0)
        rows = torch.arange(encoded.size(0), device=encoded.device)
        final = encoded[rows, last, :hidden]  # zero for an empty row: its outputs are all masked
        if not self._module.bidirectional:
            return final
        return torch.cat([final, encoded[:, 0, hidden:]], -1)
