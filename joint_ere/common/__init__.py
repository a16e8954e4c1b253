from joint_ere.common.errors import ConfigurationError, DataError, TrainingError
from joint_ere.common.params import Params, construct, load_config

__all__ = ["ConfigurationError", "DataError", "TrainingError", "Params", "construct", "load_config"]
