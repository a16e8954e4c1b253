"""
``allennlp train CONFIG -s DIR``: build everything from the config, train, save ``model.tar.gz``.

``torchrun --nproc_per_node N -m joint_ere train CONFIG -s DIR`` trains on N processes (README, "Several
GPUs"): every process reads the data and builds the model; rank 0 alone writes DIR.
"""
import argparse
import json
import logging
import os
import random
import shutil
import time
from collections import Counter
from typing import Any, Dict, List, Optional

import numpy
import torch
from tango.common import Params

from joint_ere.common import distributed
from joint_ere.common.errors import ConfigurationError, DataError
from joint_ere.common.files import dump_json, read_json
from joint_ere.common.params import construct, load_config
from joint_ere.data.data_loader import DataLoader
from joint_ere.data.instance import Instance
from joint_ere.data.readers import DatasetReader
from joint_ere.data.vocabulary import Vocabulary
from joint_ere.models.model import Model
from joint_ere.training.trainer import Trainer

logger = logging.getLogger(__name__)


def add_subparser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = commands.add_parser("train", help="train a model", description="Train a model from a config file.")
    parser.add_argument("param_path", help="the jsonnet/JSON config")
    parser.add_argument("-s", "--serialization-dir", required=True, help="where to write the model and logs")
    parser.add_argument("-r", "--recover", action="store_true", help="resume from the last checkpoint in -s")
    parser.add_argument("-f", "--force", action="store_true", help="overwrite -s if it exists")
    parser.add_argument("-o", "--overrides", default="", help="a JSON object merged into the config")
    parser.add_argument("--dry-run", action="store_true", help="build the vocabulary and print dataset statistics")
    return parser


def run(args: argparse.Namespace) -> None:
    params = load_config(args.param_path, args.overrides)
    try:
        train_model(params, args.serialization_dir, recover=args.recover, force=args.force, dry_run=args.dry_run)
    finally:
        distributed.shutdown()


def _join_torchrun(config: Dict[str, Any]) -> None:
    """Under torchrun: join the process group (NCCL for a CUDA trainer, gloo on the CPU); ranks other than 0 log
    only warnings, so the console shows one run."""
    if not distributed.launched_by_torchrun():
        return
    device = (config.get("trainer") or {}).get("cuda_device", -1)
    distributed.init_from_environment(cuda=device not in (None, -1, "cpu"))
    if not distributed.is_primary():
        logging.getLogger("joint_ere").setLevel(logging.WARNING)


def _seed(params: Params) -> None:
    random.seed(params.pop_int("random_seed", 13370))
    numpy.random.seed(params.pop_int("numpy_seed", 1337))
    torch.manual_seed(params.pop_int("pytorch_seed", 133))


def _check_serialization_dir(path: str, recover: bool, force: bool, dry_run: bool) -> None:
    if recover and force:
        raise ConfigurationError("use either --recover or --force, not both")
    if os.path.exists(path) and not os.path.isdir(path):
        raise ConfigurationError(f"serialization directory {path} is a file")
    if not dry_run:
        _check_can_create(path)
    exists = os.path.isdir(path) and bool(os.listdir(path))
    if recover and not exists:
        raise ConfigurationError(f"--recover: {path} holds no earlier run")
    if exists and not recover and not force:
        raise ConfigurationError(f"serialization directory {path} already exists and is not empty; "
                                 f"use --recover to continue it or --force to start over")


def _check_can_create(path: str) -> None:
    """The nearest existing folder above ``path`` (where makedirs will create it) must be a writable folder."""
    existing = os.path.abspath(path)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise ConfigurationError(f"serialization directory {path}: {existing} is a file")
    if not os.access(existing, os.W_OK):
        raise ConfigurationError(f"serialization directory {path}: {existing} is not writable")


def dataset_statistics(name: str, instances: List[Instance]) -> Dict[str, Any]:
    entities, relations = Counter(), Counter()
    tokens = 0
    for instance in instances:
        tokens += len(instance)
        entities.update(e.type for e in instance.document.entities)
        relations.update(r.type for r in instance.document.relations)
    return {"split": name, "sentences": len(instances), "tokens": tokens,
            "max_length": max((len(i) for i in instances), default=0),
            "entities": dict(sorted(entities.items())), "relations": dict(sorted(relations.items()))}


def train_model(params: Params, serialization_dir: str, recover: bool = False, force: bool = False,
                dry_run: bool = False) -> Optional[Model]:
    """Everything that can fail on bad input happens before ``serialization_dir`` is touched."""
    config = params.duplicate().as_dict(quiet=True)
    _join_torchrun(config)
    _check_serialization_dir(serialization_dir, recover, force, dry_run)
    _seed(params)

    reader = construct(DatasetReader, params.pop("dataset_reader", {}), "dataset_reader")
    validation_reader_params = params.pop("validation_dataset_reader", None)
    validation_reader = (construct(DatasetReader, validation_reader_params, "validation_dataset_reader")
                         if validation_reader_params else reader)
    train_path = params.pop("train_data_path", None)
    if not train_path:
        raise ConfigurationError("train_data_path: missing required key")
    validation_path = params.pop("validation_data_path", None)
    test_path = params.pop("test_data_path", None)
    evaluate_on_test = params.pop_bool("evaluate_on_test", False)

    datasets = {"train": reader.read(train_path)}
    if validation_path:
        datasets["validation"] = validation_reader.read(validation_path)
    if test_path and evaluate_on_test:
        datasets["test"] = validation_reader.read(test_path)
    if not datasets["train"]:
        raise ConfigurationError(f"train_data_path: {train_path} holds no sentences")

    vocab_params = params.pop("vocabulary", {})
    vocab_params = vocab_params.as_dict(quiet=True) if isinstance(vocab_params, Params) else dict(vocab_params)
    for_vocab = vocab_params.pop("datasets_for_vocab_creation", list(datasets))
    unknown = [name for name in for_vocab if name not in datasets]
    if unknown:
        raise ConfigurationError(f"vocabulary.datasets_for_vocab_creation: no dataset named {unknown}")
    instances = [inst for name in for_vocab for inst in datasets[name]]
    saved_vocab = os.path.join(serialization_dir, "vocabulary")
    if recover and os.path.isdir(saved_vocab):  # the checkpoint's weights are indexed by this vocabulary
        vocab = Vocabulary.from_files(saved_vocab)
    else:
        vocab = construct(Vocabulary, vocab_params, "vocabulary", instances=instances)

    statistics = [dataset_statistics(name, data) for name, data in datasets.items()]
    for stats in statistics:
        logger.info("%s", json.dumps(stats))
    logger.info("%s", vocab)

    model_params = params.pop("model", None)
    data_loader_params = params.pop("data_loader", None)
    validation_loader_params = params.pop("validation_data_loader", None)
    trainer_params = params.pop("trainer", None)
    params.assert_empty("the top level of the config")
    if dry_run:
        print(json.dumps({"datasets": statistics,
                          "vocabulary": {ns: vocab.get_vocab_size(ns) for ns in vocab.namespaces}}, indent=2))
        return None

    model = construct(Model, model_params, "model", vocab=vocab)
    _check_indexers_match(reader, model)
    loader_config = _as_dict(data_loader_params)
    data_loader = construct(DataLoader, loader_config, "data_loader", instances=datasets["train"])
    validation_loader = None
    if "validation" in datasets:
        validation_loader = _validation_loader(validation_loader_params, loader_config, datasets["validation"])
    for loader in (data_loader, validation_loader):
        if loader is not None:
            loader.index_with(vocab)
    trainer = construct(Trainer, trainer_params, "trainer", model=model, serialization_dir=serialization_dir,
                        data_loader=data_loader, validation_data_loader=validation_loader)
    if distributed.world_size() > 1:
        # every rank starts from rank 0's weights (DistributedDataParallel copied them); dropout differs by rank
        torch.manual_seed(torch.initial_seed() + distributed.rank())
        distributed.barrier()  # every rank has checked DIR before rank 0 writes to it
        if not distributed.is_primary():
            return _train_as_secondary(trainer, recover, serialization_dir, config)

    # Only now, with the whole config checked, is anything written.
    if force and os.path.exists(serialization_dir):
        shutil.rmtree(serialization_dir)
    os.makedirs(serialization_dir, exist_ok=True)
    log_handler = _log_to_file(serialization_dir)
    if distributed.world_size() > 1:
        logger.info("training on %d processes (%s); rank 0 writes %s", distributed.world_size(),
                    torch.distributed.get_backend(), serialization_dir)
    try:
        if recover:
            _restore(trainer, serialization_dir, config)
        dump_json(config, os.path.join(serialization_dir, "config.json"))
        vocab.save_to_files(os.path.join(serialization_dir, "vocabulary"))
        started = time.time()
        metrics = trainer.train()
        from joint_ere.archival import archive_model

        archive_model(serialization_dir)
        if "test" in datasets:
            from joint_ere.commands.evaluate import evaluate_instances

            loader = _validation_loader(validation_loader_params, loader_config, datasets["test"])
            for key, value in evaluate_instances(model, loader, trainer.device).items():
                metrics[f"test_{key}"] = value
        metrics["training_wall_seconds_this_run"] = round(time.time() - started, 2)
        dump_json(metrics, os.path.join(serialization_dir, "metrics.json"))
        logger.info("best epoch %s; metrics in %s", metrics.get("best_epoch"),
                    os.path.join(serialization_dir, "metrics.json"))
    finally:
        logging.getLogger().removeHandler(log_handler)
        log_handler.close()
    return model


def _train_as_secondary(trainer: Trainer, recover: bool, serialization_dir: str, config: Dict[str, Any]) -> Model:
    """A rank other than 0: it trains and validates its shards in step with rank 0, and writes nothing."""
    if recover:
        _restore(trainer, serialization_dir, config)
    trainer.train()
    return trainer.model


def _restore(trainer: Trainer, serialization_dir: str, config: Dict[str, Any]) -> None:
    """``-r``: the newest checkpoint of ``serialization_dir`` into ``trainer`` (every rank; rank 0 warns)."""
    saved, now = _saved_config(serialization_dir), json.loads(json.dumps(config))  # as config.json has it
    warn = logger.warning if distributed.is_primary() else logger.debug
    if saved is not None and saved != now:
        warn("the config differs from the one %s was trained with", serialization_dir)
    if not trainer.restore_checkpoint(optimizer_change=_optimizer_change(saved, now)):
        warn("no checkpoint in %s: training from the start", serialization_dir)


def _as_dict(params: Any) -> Optional[Dict[str, Any]]:
    return params.as_dict(quiet=True) if isinstance(params, Params) else params


def _validation_loader(params: Any, train_loader_config: Optional[Dict[str, Any]],
                       instances: List[Instance]) -> DataLoader:
    """``validation_data_loader`` if given, else the training loader's settings without shuffling."""
    if params is not None:
        return construct(DataLoader, _as_dict(params), "validation_data_loader", instances=instances)
    loader = construct(DataLoader, dict(train_loader_config or {}), "data_loader", instances=instances)
    loader.shuffle = False
    if loader.batch_sampler is not None:
        loader.batch_sampler.shuffle = False
    return loader


def _check_indexers_match(reader: DatasetReader, model: Model) -> None:
    embedder = getattr(model, "text_field_embedder", None)
    names = set(getattr(embedder, "token_embedders", {}) or {})
    if names and names != set(reader.token_indexers):
        raise ConfigurationError(f"model.text_field_embedder.token_embedders {sorted(names)} must match "
                                 f"dataset_reader.token_indexers {sorted(reader.token_indexers)}")


def _log_to_file(serialization_dir: str) -> logging.Handler:
    handler = logging.FileHandler(os.path.join(serialization_dir, "out.log"))
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    logging.getLogger().addHandler(handler)
    package_logger = logging.getLogger("joint_ere")
    if package_logger.getEffectiveLevel() > logging.INFO:
        package_logger.setLevel(logging.INFO)
    return handler


def _optimizer_change(saved: Optional[Dict[str, Any]], now: Dict[str, Any]) -> Optional[str]:
    """How ``trainer.optimizer`` of a resumed run differs from the saved one: None, "settings" (lr, betas, ...)
    or "optimizer" (another type, other parameter groups: the checkpoint's optimizer state does not apply)."""
    if saved is None:
        return None
    old, new = ((config.get("trainer") or {}).get("optimizer") or {} for config in (saved, now))
    if old == new:
        return None
    same = all(old.get(key, default) == new.get(key, default)
               for key, default in (("type", "adam"), ("parameter_groups", None)))
    return "settings" if same else "optimizer"


def _saved_config(serialization_dir: str) -> Optional[Dict[str, Any]]:
    """The config an earlier run in ``serialization_dir`` was trained with, if it wrote one."""
    path = os.path.join(serialization_dir, "config.json")
    if not os.path.exists(path):
        return None
    try:
        return read_json(path)
    except DataError as error:
        raise ConfigurationError(f"--recover: {path} is broken ({error})") from None
