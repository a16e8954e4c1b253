"""joint-ere: AllenNLP-style joint named-entity recognition and relation extraction."""
__version__ = "0.1.0"

from joint_ere import common  # noqa: E402,F401  (patches config errors to name key paths)
from joint_ere import data, metrics, models, modules, predictors, training  # noqa: E402,F401
