"""Decoder heads that models share: each ``forward(states, mask, gold) -> {logits..., "loss"}`` plus ``decode``."""
from joint_ere.modules.heads.selection import SelectionHead
from joint_ere.modules.heads.span_extraction import SpanExtractionHead
from joint_ere.modules.heads.table import TableHead

__all__ = ["SelectionHead", "SpanExtractionHead", "TableHead"]
