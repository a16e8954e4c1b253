from joint_ere.models.model import Model
from joint_ere.models.multi_head_selection import MultiHeadSelection

__all__ = ["Model", "MultiHeadSelection"]
