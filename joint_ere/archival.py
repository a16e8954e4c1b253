"""``model.tar.gz``: config.json, weights.th, vocabulary/ and meta.json; ``load_archive`` reads it back."""
import io
import json
import logging
import os
import pickle
import shutil
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from typing import Any, Dict, Optional, Union

import torch
from tango.common import Params

from joint_ere.common.devices import resolve_device
from joint_ere.common.errors import ConfigurationError, DataError, first_line
from joint_ere.common.files import atomic_save, read_json
from joint_ere.common.params import CONFIG_KEYS, construct, with_overrides
from joint_ere.data.readers import DatasetReader
from joint_ere.data.vocabulary import Vocabulary
from joint_ere.models.model import Model
from joint_ere.modules.transformer_embedder import use_reduced_precision

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "weights.th"
META_NAME = "meta.json"
VOCAB_DIR = "vocabulary"

logger = logging.getLogger(__name__)


@dataclass
class Archive:
    model: Model
    config: Params
    dataset_reader: DatasetReader
    validation_dataset_reader: DatasetReader


TRANSFORMERS_DIR = "transformers"
TRANSFORMER_TYPE = "pretrained_transformer_mismatched"


def archive_model(serialization_dir: str, weights: str = "best.th", archive_path: Optional[str] = None) -> str:
    """Writes ``model.tar.gz``. Models on a Hugging Face encoder also get its tokenizer files and configuration
    (``transformers/<i>/``), so the archive predicts where neither the hub nor the original folder exists."""
    from joint_ere import __version__

    archive_path = archive_path or os.path.join(serialization_dir, "model.tar.gz")
    with open(os.path.join(serialization_dir, CONFIG_NAME), encoding="utf-8") as handle:
        names = sorted(_transformer_names(json.load(handle)))
    transformers = {name: f"{TRANSFORMERS_DIR}/{i}" for i, name in enumerate(names)}

    def write(temporary: str) -> None:
        with tempfile.TemporaryDirectory() as staging, tarfile.open(temporary, "w:gz") as tar:
            tar.add(os.path.join(serialization_dir, CONFIG_NAME), arcname=CONFIG_NAME)
            tar.add(os.path.join(serialization_dir, weights), arcname=WEIGHTS_NAME)
            tar.add(os.path.join(serialization_dir, VOCAB_DIR), arcname=VOCAB_DIR)
            for name, folder in transformers.items():
                from joint_ere.common.transformers import save_for_archive

                save_for_archive(name, os.path.join(staging, folder))
                tar.add(os.path.join(staging, folder), arcname=folder)
            meta = json.dumps({"version": __version__, "weights": weights, "transformers": transformers}).encode()
            info = tarfile.TarInfo(META_NAME)
            info.size = len(meta)
            tar.addfile(info, io.BytesIO(meta))

    atomic_save(archive_path, write)
    return archive_path


def _transformer_names(config: Any) -> set:
    if isinstance(config, dict):
        found = {config["model_name"]} if config.get("type") == TRANSFORMER_TYPE and "model_name" in config else set()
        return found.union(*(_transformer_names(v) for v in config.values()))
    if isinstance(config, list):
        return set().union(*(_transformer_names(v) for v in config))
    return set()


def _for_loading(config: Any, folders: Dict[str, str], model_side: bool) -> Any:
    """The archived config as ``load_archive`` builds it: transformer ``model_name``s point at the archive's
    copies; on the model side, pretrained files and weights are skipped (the archive's weights replace them)."""
    if isinstance(config, dict):
        out = {k: _for_loading(v, folders, model_side) for k, v in config.items()
               if not (model_side and k == "pretrained_file")}
        if out.get("type") == TRANSFORMER_TYPE and out.get("model_name") in folders:
            out["model_name"] = folders[out["model_name"]]
            if model_side:
                out["load_weights"] = False
        return out
    if isinstance(config, list):
        return [_for_loading(v, folders, model_side) for v in config]
    return config


def safe_extract(archive_path: str, target: str) -> None:
    """Extracts every member, refusing any that would land outside ``target`` (absolute paths, ``..``, links)."""
    root = os.path.realpath(target)
    try:
        with tarfile.open(archive_path, "r:*") as tar:
            _extract_members(archive_path, tar, root)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as error:
        raise ConfigurationError(f"{archive_path}: not a readable model archive ({type(error).__name__}: "
                                 f"{error}); give the model.tar.gz that allennlp train wrote") from None


def _extract_members(archive_path: str, tar: tarfile.TarFile, root: str) -> None:
    members = tar.getmembers()
    for member in members:
        destination = os.path.realpath(os.path.join(root, member.name))
        if os.path.commonpath([root, destination]) != root:
            raise ConfigurationError(f"{archive_path}: member {member.name!r} would be written outside the "
                                     f"extraction folder; refusing to extract")
        if member.issym() or member.islnk() or member.isdev():
            raise ConfigurationError(f"{archive_path}: member {member.name!r} is a link or device; refusing")
    tar.extractall(root, members=members, filter="data")


def _read_json(archive_file: str, folder: str, name: str) -> Any:
    path = os.path.join(folder, name)
    if not os.path.isfile(path):
        raise ConfigurationError(f"{archive_file}: no {name} inside; give the model.tar.gz that allennlp train wrote")
    try:
        return read_json(path)
    except DataError as error:
        raise ConfigurationError(f"{archive_file}: {name} is broken ({error})") from None


def load_archive(archive_file: str, cuda_device: Union[int, str, None] = -1,
                 overrides: Union[str, Dict[str, Any]] = "", use_amp: bool = False) -> Archive:
    """The model (weights loaded with ``weights_only=True``), its config and dataset readers. ``use_amp`` runs
    the model's transformer embedders in reduced precision (``use_reduced_precision``)."""
    if not os.path.exists(archive_file):
        raise ConfigurationError(f"archive not found: {archive_file}")
    temp_dir = None if os.path.isdir(archive_file) else tempfile.mkdtemp(prefix="joint_ere_archive_")
    try:
        folder = temp_dir or archive_file
        if temp_dir:
            safe_extract(archive_file, temp_dir)
        raw = _read_json(archive_file, folder, CONFIG_NAME)
        if not isinstance(raw, dict) or not isinstance(raw.get("model"), dict):
            raise ConfigurationError(f"{archive_file}: {CONFIG_NAME} holds no model config")
        raw = with_overrides(raw, overrides)
        unknown = sorted(set(raw) - set(CONFIG_KEYS))
        if unknown:
            raise ConfigurationError(f"-o/--overrides: unknown key(s) {', '.join(unknown)} (a config's keys are "
                                     f"{', '.join(CONFIG_KEYS)})")
        config = Params(raw)
        meta_path = os.path.join(folder, META_NAME)
        meta: Dict[str, Any] = _read_json(archive_file, folder, META_NAME) if os.path.exists(meta_path) else {}
        transformers = meta.get("transformers") or {} if isinstance(meta, dict) else None
        if not isinstance(transformers, dict) or not all(isinstance(v, str) for v in transformers.values()):
            raise ConfigurationError(f"{archive_file}: {META_NAME} is broken (expected an object whose "
                                     f"\"transformers\" maps model names to folders)")
        archived = {name: os.path.join(folder, sub) for name, sub in transformers.items()}
        try:
            vocab = Vocabulary.from_files(os.path.join(folder, VOCAB_DIR))
        except (ConfigurationError, DataError, OSError) as error:
            reason = str(error).replace(folder + os.sep, "")  # the archive's member, not the temporary folder
            raise ConfigurationError(f"{archive_file}: the vocabulary cannot be read ({reason})") from None
        model = construct(Model, _for_loading(raw["model"], archived, model_side=True), "model", vocab=vocab)
        weights = os.path.join(folder, WEIGHTS_NAME if os.path.exists(os.path.join(folder, WEIGHTS_NAME)) else "best.th")
        device = resolve_device(cuda_device, key="--cuda-device")
        try:
            model.load_state_dict(torch.load(weights, map_location=device, weights_only=True))
        except (RuntimeError, OSError, EOFError, TypeError, pickle.UnpicklingError) as error:
            raise ConfigurationError(f"{archive_file}: the weights cannot be loaded into the configured model "
                                     f"({first_line(error)})") from None
        model.to(device).eval()
        if use_amp and not use_reduced_precision(model, device):
            logger.warning("--use-amp: the model has no transformer embedder (nor, on a CPU, an lstm encoder); "
                           "it runs in float32")
        reader = construct(DatasetReader, _for_loading(raw.get("dataset_reader") or {}, archived, False),
                           "dataset_reader")
        validation = raw.get("validation_dataset_reader")
        validation_reader = (construct(DatasetReader, _for_loading(validation, archived, False),
                                       "validation_dataset_reader") if validation else reader)
        return Archive(model, config, reader, validation_reader)
    finally:
        if temp_dir:
            shutil.rmtree(temp_dir, ignore_errors=True)
