"""Cascade-SRN's two ways of passing entities and subjects to the later turns (§3.4)."""
from joint_ere.modules.fusion.early import EarlyFusion
from joint_ere.modules.fusion.fusion import (ENTITY_TASKS, OBJECT_TASKS, SUBJECT_TASKS, EncodedText, Fusion,
                                             join)
from joint_ere.modules.fusion.late import LateFusion

__all__ = ["ENTITY_TASKS", "EarlyFusion", "EncodedText", "Fusion", "LateFusion", "OBJECT_TASKS", "SUBJECT_TASKS",
           "join"]
