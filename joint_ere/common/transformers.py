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


def load_model(model_name: str) -> Any:
    from transformers import AutoModel

    try:
        return AutoModel.from_pretrained(model_name)
    except (OSError, ValueError) as error:
        raise ConfigurationError(f"model_name {model_name!r}: no model could be loaded ({error})") from error
