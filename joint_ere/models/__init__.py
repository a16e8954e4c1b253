from joint_ere.models.cascade_srn import CascadeSrn
from joint_ere.models.model import Model
from joint_ere.models.multi_head_selection import MultiHeadSelection
from joint_ere.models.rin import RecurrentInteractionNetwork
from joint_ere.models.table_filling import TableFilling

__all__ = ["CascadeSrn", "Model", "MultiHeadSelection", "RecurrentInteractionNetwork", "TableFilling"]
