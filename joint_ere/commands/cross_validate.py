"""``allennlp cross-validate CONFIG -s DIR --folds 10``: one training run per fold, then the mean and the standard
deviation of every metric.

The fold index reaches the config as an ext var, ``ADE_FOLD`` unless ``--fold-var`` names another:
``training_config/ade.jsonnet`` reads ``std.extVar('ADE_FOLD')`` to pick ``ade_split_{fold}_train.json`` and
``..._test.json``. Fold ``i`` is trained into ``DIR/fold_{i}`` exactly as ``allennlp train`` would (its
``config.json`` is the config of that fold). The command can be stopped and run again: a fold with a
``model.tar.gz`` and ``metrics.json`` is done and skipped, a fold with a checkpoint goes on from it (``-r``), a
fold folder without either starts over.

At the end, ``DIR/cv_metrics.json`` holds every fold's metrics and the mean and sample standard deviation
(n - 1) of each number in them, ``DIR/cv_metrics.md`` the same as a Markdown table (precision, recall and F1 in
percent). The numbers summarised are the best epoch's validation metrics (``best_validation_*``; for ADE the
fold's test part), ``test_*`` when the config evaluates on a test set, ``best_epoch`` and ``training_seconds``.
"""
import argparse
import json
import logging
import math
import os
import sys
import time
from typing import Any, Dict, List, Optional

from tqdm import tqdm

from joint_ere.commands.arguments import positive_int
from joint_ere.common.errors import ConfigurationError
from joint_ere.common.files import atomic_output, dump_json, read_json
from joint_ere.common.params import load_config
from joint_ere.training.checkpointer import Checkpointer

logger = logging.getLogger(__name__)

SUMMARISED_PREFIXES = ("best_validation_", "test_")
SUMMARISED_KEYS = ("best_epoch", "training_seconds")


def add_subparser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = commands.add_parser("cross-validate", help="train one model per fold and summarise the folds",
                                 description="Train CONFIG once per fold (the fold index is an ext var) and write "
                                             "the mean and standard deviation of every metric.")
    parser.add_argument("param_path", help="the jsonnet/JSON config; it reads the fold index with std.extVar")
    parser.add_argument("-s", "--serialization-dir", required=True, help="DIR/fold_{i} for each fold, DIR/cv_metrics.*")
    parser.add_argument("--folds", type=positive_int, default=10, help="folds 0 .. N-1 (default 10)")
    parser.add_argument("--fold-var", default="ADE_FOLD", help="the ext var that carries the fold index")
    parser.add_argument("-o", "--overrides", default="", help="a JSON object merged into every fold's config")
    return parser


def run(args: argparse.Namespace) -> None:
    cross_validate(args.param_path, args.serialization_dir, args.folds, args.fold_var, args.overrides)


def fold_is_done(fold_dir: str) -> bool:
    return all(os.path.isfile(os.path.join(fold_dir, name)) for name in ("model.tar.gz", "metrics.json"))


def cross_validate(config_path: str, serialization_dir: str, folds: int, fold_var: str = "ADE_FOLD",
                   overrides: str = "") -> Dict[str, Any]:
    from joint_ere.commands.train import train_model

    configs = [load_config(config_path, overrides, ext_vars={fold_var: str(i)}) for i in range(folds)]
    if folds > 1 and configs[0].as_dict(quiet=True) == configs[1].as_dict(quiet=True):
        raise ConfigurationError(f"{config_path} does not read std.extVar('{fold_var}'): every fold would train "
                                 f"the same model (pass --fold-var with the ext var the config uses)")
    os.makedirs(serialization_dir, exist_ok=True)
    started = time.time()
    with tqdm(total=folds, desc="cross-validation", unit="fold", dynamic_ncols=True, file=sys.stderr) as bar:
        for fold, params in enumerate(configs):
            fold_dir = os.path.join(serialization_dir, f"fold_{fold}")
            if fold_is_done(fold_dir):
                bar.set_postfix_str(f"fold {fold} already done")
                bar.update(1)
                continue
            recover = bool(Checkpointer(fold_dir).epochs()) if os.path.isdir(fold_dir) else False
            force = os.path.isdir(fold_dir) and not recover
            logger.info("cross-validation: fold %d of %d into %s%s", fold + 1, folds, fold_dir,
                        " (resuming from its checkpoint)" if recover else " (starting over)" if force else "")
            train_model(params, fold_dir, recover=recover, force=force)
            bar.update(1)
            bar.set_postfix_str(f"fold {fold}: {_headline(read_json(os.path.join(fold_dir, 'metrics.json')))}")
    per_fold = [read_json(os.path.join(serialization_dir, f"fold_{i}", "metrics.json")) for i in range(folds)]
    summary = summarise(per_fold)
    summary["fold_var"], summary["config"] = fold_var, config_path
    dump_json(summary, os.path.join(serialization_dir, "cv_metrics.json"))
    with atomic_output(os.path.join(serialization_dir, "cv_metrics.md")) as handle:
        handle.write(markdown_table(summary))
    logger.info("cross-validation: %d folds in %s (this run %.0f s); %s", folds, serialization_dir,
                time.time() - started, _headline(summary["mean"]))
    return summary


def summarise(per_fold: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Every fold's summarised numbers, and their mean and sample standard deviation (None for one fold)."""
    folds = [{k: v for k, v in metrics.items() if _summarised(k, v)} for metrics in per_fold]
    keys = [k for k in folds[0] if all(k in f for f in folds)]
    mean: Dict[str, float] = {}
    std: Dict[str, Optional[float]] = {}
    for key in keys:
        values = [float(f[key]) for f in folds]
        mean[key] = sum(values) / len(values)
        std[key] = (math.sqrt(sum((v - mean[key]) ** 2 for v in values) / (len(values) - 1))
                    if len(values) > 1 else None)
    return {"folds": folds, "mean": mean, "std": std, "num_folds": len(folds)}


def _summarised(key: str, value: Any) -> bool:
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    return numeric and (key.startswith(SUMMARISED_PREFIXES) or key in SUMMARISED_KEYS)


def _is_score(key: str) -> bool:
    return key.endswith(("_precision", "_recall", "_f1"))


def _format(key: str, value: Optional[float]) -> str:
    if value is None:
        return "–"
    if _is_score(key):
        return f"{100 * value:.2f}"
    return f"{value:.4g}" if isinstance(value, float) and not float(value).is_integer() else f"{value:.0f}"


def markdown_table(summary: Dict[str, Any]) -> str:
    folds = summary["folds"]
    header = ["metric"] + [f"fold {i}" for i in range(len(folds))] + ["mean ± std"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key, mean in summary["mean"].items():
        std = summary["std"][key]
        cells = [key] + [_format(key, f[key]) for f in folds] + [f"{_format(key, mean)} ± {_format(key, std)}"]
        lines.append("| " + " | ".join(cells) + " |")
    note = "Precision, recall and F1 in percent; std is the sample standard deviation (n - 1) over the folds."
    return "\n".join(lines) + "\n\n" + note + "\n"


def _headline(metrics: Dict[str, Any]) -> str:
    picked = [(k, v) for k, v in metrics.items() if k.endswith("macro_f1") and k.startswith(SUMMARISED_PREFIXES[0])]
    return ", ".join(f"{k[len(SUMMARISED_PREFIXES[0]):]}={100 * v:.2f}" for k, v in picked) or json.dumps(
        {k: metrics[k] for k in list(metrics)[:3]})
