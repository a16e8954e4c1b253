"""Bounded memory for (batch, rows, columns, hidden) tables at inference: the selection, table and RIN heads."""
from typing import List

CELLS_AT_ONCE = 1 << 24  # table cells x hidden units built at once at inference (64 MB in float32)


def row_blocks(batch: int, rows: int, columns: int, hidden: int, training: bool) -> List[slice]:
    """The rows of a (batch, rows, columns, hidden) table in blocks of at most ``CELLS_AT_ONCE`` values, so a long
    sentence at inference needs bounded memory; in training one block (autograd keeps every block anyway)."""
    if training or batch * rows * columns * hidden <= CELLS_AT_ONCE:
        return [slice(0, rows)]
    block = max(1, CELLS_AT_ONCE // (batch * columns * hidden))
    return [slice(start, start + block) for start in range(0, rows, block)]
