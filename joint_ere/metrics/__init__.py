from joint_ere.metrics.entity_relation import TASKS, EntityRelationMetrics, prf

__all__ = ["EntityRelationMetrics", "TASKS", "prf"]
