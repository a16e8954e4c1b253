from joint_ere.predictors.predictor import Predictor, parse_input

__all__ = ["Predictor", "parse_input"]
