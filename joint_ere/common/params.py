"""
Config loading (jsonnet + environment variables + JSON overrides) and construction with errors that name the
key path, e.g. ``unknown key(s) model.shared_encoder.hidden_sizee``.

Construction is tango's ``FromParams``; its own messages name the class but not where in the config the class
sits, so two of its functions are wrapped once, here, to prefix the path that ``Params.history`` records.
"""
import contextvars
import copy
import json
import os
from typing import Any, Dict, List, Optional, Type, TypeVar, Union

import tango.common.from_params as _tango_from_params
from tango.common.params import Params

from joint_ere.common.errors import ConfigurationError, DataError, first_line
from joint_ere.common.files import read_text

T = TypeVar("T")

# Ext vars the shipped configs read; they default to "" so a config can fall back to public URLs.
DEFAULT_EXT_VARS = {"JOINT_ERE_DATA": "", "GLOVE_50D": "", "ADE_FOLD": "0",
                    "TRANSFORMER_MODEL": "bert-base-cased", "TRANSFORMER_DIM": "768"}


# The top-level keys of a config (AllenNLP's); ``train`` reads each, ``load_archive`` checks overrides against them.
CONFIG_KEYS = ("dataset_reader", "validation_dataset_reader", "train_data_path", "validation_data_path",
               "test_data_path", "evaluate_on_test", "vocabulary", "model", "data_loader", "validation_data_loader",
               "trainer", "random_seed", "numpy_seed", "pytorch_seed")


class KeyPathError(ConfigurationError):
    """A ConfigurationError whose message already starts with the key path; outer frames leave it alone."""


def _path_error(path: str, error: Exception) -> KeyPathError:
    message = str(error) if not isinstance(error, KeyError) else f"{error.args[0]}"
    return KeyPathError(f"{path}: {message}" if path else message)


def _assert_empty(self: Params, name: str) -> None:
    if self.params:
        keys = ", ".join(f"{self.history}{key}" for key in self.params)
        raise KeyPathError(f"unknown key(s) {keys} (not a parameter of {name})")


_original_pop_and_construct_arg = _tango_from_params.pop_and_construct_arg


# tango hands ``extras`` (e.g. ``vocab``) only to the outermost constructor; AllenNLP users expect nested
# ones (an Embedding inside a character encoder) to receive them too, so they are passed down here.
_inherited_extras: contextvars.ContextVar[Dict[str, Any]] = contextvars.ContextVar("extras", default={})


def _pop_and_construct_arg(class_name, argument_name, annotation, default, params, extras):
    path = f"{params.history}{argument_name}"
    extras = {**_inherited_extras.get(), **extras}
    if argument_name not in params and argument_name not in extras and default is _tango_from_params._NO_DEFAULT:
        raise KeyPathError(f"{path}: missing required key (needed by {class_name})")
    token = _inherited_extras.set(extras)
    try:
        return _original_pop_and_construct_arg(class_name, argument_name, annotation, default, params, extras)
    except KeyPathError:
        raise
    except (ConfigurationError, TypeError, ValueError, KeyError, ImportError) as error:
        raise _path_error(path, error) from error
    finally:
        _inherited_extras.reset(token)


if not getattr(_tango_from_params, "_joint_ere_patched", False):
    Params.assert_empty = _assert_empty  # type: ignore[method-assign]
    _tango_from_params.pop_and_construct_arg = _pop_and_construct_arg
    _tango_from_params._joint_ere_patched = True


def construct(cls: Type[T], params: Any, key: str, **extras: Any) -> T:
    """``cls.from_params`` for the top-level config key ``key``, with errors that name the key path."""
    if params is None:
        raise KeyPathError(f"{key}: missing required key")
    if isinstance(params, dict):
        params = Params(copy.deepcopy(params), history=f"{key}.")
    try:
        return cls.from_params(params, **extras)  # type: ignore[attr-defined]
    except KeyPathError:
        raise
    except (ConfigurationError, TypeError, ValueError, KeyError, ImportError) as error:
        raise _path_error(key, error) from error


def parse_overrides(overrides: Union[str, Dict[str, Any], None], ext_vars: Dict[str, str]) -> Dict[str, Any]:
    """``-o``'s text (JSON, or jsonnet with the same ext vars as configs) as a dict."""
    if not overrides:
        return {}
    if isinstance(overrides, str):
        import _jsonnet

        try:
            overrides = json.loads(_jsonnet.evaluate_snippet("overrides", overrides, ext_vars=ext_vars))
        except RuntimeError as error:
            raise ConfigurationError(f"-o/--overrides is not valid JSON: {first_line(error)}") from None
    if not isinstance(overrides, dict):
        raise ConfigurationError(f"-o/--overrides must be a JSON object, not {type(overrides).__name__}")
    return overrides


def unflatten(overrides: Dict[str, Any]) -> Dict[str, Any]:
    """``{"trainer.num_epochs": 1}`` -> ``{"trainer": {"num_epochs": 1}}``; dotted and nested forms may be mixed
    at any depth (AllenNLP unflattens the top level only; nothing in a config has a dot in its key)."""
    nested: Dict[str, Any] = {}
    for key, value in overrides.items():
        value = unflatten(value) if isinstance(value, dict) else value
        if not key or "" in key.split("."):
            raise ConfigurationError(f"-o/--overrides: {key!r} is not a key (an empty name)")
        *parents, last = key.split(".")
        current = nested
        for depth, part in enumerate(parents):
            current = current.setdefault(part, {})
            if not isinstance(current, dict):
                raise ConfigurationError(f"-o/--overrides: {'.'.join(parents[:depth + 1])} is given a value "
                                         f"and also keys below it")
        if isinstance(value, dict) and isinstance(current.get(last), dict):
            current[last] = merge(value, current[last], f"{key}.")
        elif last in current:
            raise ConfigurationError(f"-o/--overrides: {key} is given a value and also keys below it")
        else:
            current[last] = value
    return nested


def merge(preferred: Dict[str, Any], fallback: Dict[str, Any], path: str = "") -> Dict[str, Any]:
    """
    AllenNLP's ``with_fallback``: objects merge key by key (recursively), anything else in ``preferred``
    replaces what ``fallback`` has. An object merged into a list overrides its elements by index
    (``{"0": {...}}``), so ``-o '{"model.layers.0.dim": 5}'`` changes one element of a list.
    """
    merged = copy.deepcopy(fallback)
    for key, value in preferred.items():
        merged[key] = _merged(value, merged.get(key), f"{path}{key}.")
    return merged


def _merged(value: Any, old: Any, path: str) -> Any:
    if isinstance(value, dict) and isinstance(old, dict):
        return merge(value, old, path)
    if isinstance(value, dict) and isinstance(old, list):
        return _merge_into_list(value, old, path)
    return copy.deepcopy(value)


def _merge_into_list(preferred: Dict[str, Any], fallback: List[Any], path: str) -> List[Any]:
    merged = copy.deepcopy(fallback)
    for key, value in preferred.items():
        if not key.lstrip("-").isdigit() or not -len(merged) <= int(key) < len(merged):
            raise ConfigurationError(f"-o/--overrides: {path}{key}: {path[:-1]} is a list of {len(merged)} "
                                     f"elements; override an element by its index")
        merged[int(key)] = _merged(value, merged[int(key)], f"{path}{key}.")
    return merged


def with_overrides(config: Dict[str, Any], overrides: Union[str, Dict[str, Any], None],
                   ext_vars: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    """``config`` with ``-o`` merged in the way AllenNLP merges it."""
    return merge(unflatten(parse_overrides(overrides, environment(ext_vars))), config)


def environment(ext_vars: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """The ext vars a config sees: the defaults, then the environment, then ``ext_vars``."""
    return {**DEFAULT_EXT_VARS, **{k: v for k, v in os.environ.items() if _encodable(v)}, **(ext_vars or {})}


def _encodable(value: str) -> bool:
    """Environment values undecodable by the OS arrive as surrogates, which jsonnet cannot take."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def load_config(path: str, overrides: Union[str, Dict[str, Any], None] = "",
                ext_vars: Optional[Dict[str, str]] = None) -> Params:
    """Evaluates a jsonnet/JSON config with environment variables as ext vars and merges ``-o`` overrides."""
    import _jsonnet

    if not os.path.isfile(path):
        raise ConfigurationError(f"config file not found: {path}")
    env = environment(ext_vars)
    try:
        text = read_text(path)
        config = json.loads(_jsonnet.evaluate_snippet(path, text, ext_vars=env,
                                                      jpathdir=[os.path.dirname(os.path.abspath(path))]))
    except DataError as error:
        raise ConfigurationError(str(error)) from None
    except RuntimeError as error:  # jsonnet reports syntax and evaluation errors as RuntimeError
        raise ConfigurationError(f"{path}: {str(error).strip()}") from None
    if not isinstance(config, dict):
        raise ConfigurationError(f"{path}: a config must be an object, not {type(config).__name__}")
    return Params(with_overrides(config, overrides, env))
