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
from typing import Any, Dict, Optional, Type, TypeVar

import tango.common.from_params as _tango_from_params
import tango.common.params as _tango_params
from tango.common.params import Params

from joint_ere.common.errors import ConfigurationError

T = TypeVar("T")

# Ext vars the shipped configs read; they default to "" so a config can fall back to public URLs.
DEFAULT_EXT_VARS = {"JOINT_ERE_DATA": "", "GLOVE_50D": "", "ADE_FOLD": "0",
                    "TRANSFORMER_MODEL": "bert-base-cased", "TRANSFORMER_DIM": "768"}


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


def load_config(path: str, overrides: str | Dict[str, Any] = "", ext_vars: Optional[Dict[str, str]] = None) -> Params:
    """Evaluates a jsonnet/JSON config with environment variables as ext vars and merges JSON overrides."""
    if not os.path.isfile(path):
        raise ConfigurationError(f"config file not found: {path}")
    env = {**DEFAULT_EXT_VARS, **_tango_params._environment_variables(), **(ext_vars or {})}
    try:
        params = Params.from_file(path, params_overrides=overrides or "", ext_vars=env)
    except RuntimeError as error:  # jsonnet reports syntax and evaluation errors as RuntimeError
        raise ConfigurationError(f"{path}: {error}") from error
    except (ValueError, json.JSONDecodeError) as error:
        raise ConfigurationError(f"{path}: bad overrides: {error}") from error
    return params
