from joint_ere.common.errors import ConfigurationError, DataError
from joint_ere.common.params import Params, construct, load_config

__all__ = ["ConfigurationError", "DataError", "Params", "construct", "load_config"]
