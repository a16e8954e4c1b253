"""One place that loads Hugging Face tokenizers and models, cached per name, with errors naming the config key."""
import functools
from typing import Any

from joint_ere.common.errors import ConfigurationError


@functools.lru_cache(maxsize=8)
def cached_tokenizer(model_name: str) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(model_name)
    except (OSError, ValueError) as error:
        raise ConfigurationError(f"model_name {model_name!r}: no tokenizer could be loaded ({error})") from error


def load_model(model_name: str, load_weights: bool = True) -> Any:
    """The pretrained model, or (``load_weights=False``, when an archive's weights will replace them) only its
    architecture, built from the saved configuration."""
    from transformers import AutoConfig, AutoModel

    try:
        if load_weights:
            return AutoModel.from_pretrained(model_name)
        return AutoModel.from_config(AutoConfig.from_pretrained(model_name))
    except (OSError, ValueError) as error:
        raise ConfigurationError(f"model_name {model_name!r}: no model could be loaded ({error})") from error


def save_for_archive(model_name: str, folder: str) -> None:
    """What prediction needs besides the fine-tuned weights: the tokenizer files and the model configuration."""
    from transformers import AutoConfig

    cached_tokenizer(model_name).save_pretrained(folder)
    AutoConfig.from_pretrained(model_name).save_pretrained(folder)
