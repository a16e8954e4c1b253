from joint_ere.predictors.predictor import Predictor

__all__ = ["Predictor"]
