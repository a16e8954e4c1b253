from joint_ere.modules.encoders.lstm import LstmSeq2SeqEncoder, LstmSeq2VecEncoder
from joint_ere.modules.encoders.multi_task_encoder import MultiTaskEncoder, SharedStatesEncoder, task_subsets
from joint_ere.modules.encoders.pfn import PartitionFilterEncoder
from joint_ere.modules.encoders.srn import SelectionRecurrentNetwork

__all__ = ["LstmSeq2SeqEncoder", "LstmSeq2VecEncoder", "MultiTaskEncoder", "PartitionFilterEncoder",
           "SelectionRecurrentNetwork", "SharedStatesEncoder", "task_subsets"]
