"""Dropout for the large (batch x tokens x tokens x hidden) tables of the table-filling model."""
import torch

# Below this many elements plain dropout is as fast (the saving is in the random-number generator).
_LARGE = 1 << 16


class TableDropout(torch.nn.Dropout):
    """
    ``torch.nn.Dropout`` that draws its mask from 16-bit slices of 64-bit random words on a CPU. CPU dropout
    draws one 32-bit number from the Mersenne Twister per element, which made dropout on the two (B, T, T, 300)
    tables of ``table_filling`` about a fifth of a training step; a 64-bit word gives four elements' bits
    (a 16 x 50 x 50 x 300 table: 142 ms for ``F.dropout``, about 50 ms this way, on the development machine).
    The drop probability is ``p`` rounded to a multiple of 1 / 65536, and kept elements are scaled by one over
    the keep probability, as usual. Elsewhere (GPU, small tensors, evaluation) it is ``torch.nn.Dropout``.
    """

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0 or inputs.device.type != "cpu" or inputs.numel() < _LARGE:
            return super().forward(inputs)
        count, dropped = inputs.numel(), round(self.p * 65536)
        if dropped == 65536:
            return inputs * 0
        words = torch.randint(-(1 << 63), (1 << 63) - 1, ((count + 3) // 4,), dtype=torch.int64)
        bits = words.view(torch.int16)[:count].view(inputs.shape)  # uniform over [-32768, 32767]
        keep = bits >= dropped - 32768  # probability 1 - dropped / 65536
        return inputs * keep.to(inputs.dtype).mul_(65536 / (65536 - dropped))
