"""``allennlp cross-validate CONFIG -s DIR --folds 10``: one training run per fold, then the mean and the standard
deviation of every metric.

The fold index reaches the config as an ext var, ``ADE_FOLD`` unless ``--fold-var`` names another:
``training_config/ade.jsonnet`` reads ``std.extVar('ADE_FOLD')`` to pick ``ade_split_{fold}_train.json`` and
``..._test.json``. Fold ``i`` is trained into ``DIR/fold_{i}`` exactly as ``allennlp train`` would (its
``config.json`` is the config of that fold). The command can be stopped and run again: a fold with a
``model.tar.gz`` and ``metrics.json`` is done and skipped, a fold with a checkpoint goes on from it (``-r``), a
fold folder without either starts over.

``--parallel N`` trains N folds at once, each as an ``allennlp train`` process of its own (its output in
``DIR/fold_{i}.log``) with an equal share of the CPU's threads (``OMP_NUM_THREADS``, unless it is set). On a
2-core CPU two folds of one thread each finished ADE's ten folds in 70 minutes against 1 h 46 min one after the
other (RESULTS.md; two hand-started chains of ``allennlp train``, which is what ``--parallel 2`` runs): a
BiLSTM's small products keep one core busier than they split over two.

At the end, ``DIR/cv_metrics.json`` holds every fold's metrics and the mean and sample standard deviation
(n - 1) of each number in them, ``DIR/cv_metrics.md`` the same as a Markdown table (precision, recall and F1 in
percent). The numbers summarised are the best epoch's validation metrics (``best_validation_*``; for ADE the
fold's test part), ``test_*`` when the config evaluates on a test set, ``best_epoch`` and ``training_seconds``.

``--compare-to OTHER_DIR`` (another cross-validation over the same folds, e.g. the config without a change) adds
the paired comparison: for every F1, ``best_epoch`` and ``training_seconds``, the per-fold difference (this run
minus the other), its mean and sample standard deviation, and in how many folds this run is higher
(``DIR/cv_comparison.json`` and a second table in ``cv_metrics.md``). On ADE the folds differ by about 3 points of
RE+ F1 while a change moves every fold about alike, so the paired differences show what the means ± std hide. Run
on a finished ``DIR``, the command trains nothing and only writes the summaries.
"""
import argparse
import json
import logging
import math
import os
import subprocess
import sys
import tempfile
import time
from typing import IO, Any, Dict, List, Optional, Tuple

from tqdm import tqdm

from joint_ere.commands.arguments import positive_int
from joint_ere.common.errors import ConfigurationError, TrainingError
from joint_ere.common.files import atomic_output, dump_json, read_json
from joint_ere.common.params import Params, load_config
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
    parser.add_argument("--parallel", type=positive_int, default=1,
                        help="folds trained at once, each in a process of its own with an equal share of the CPU's "
                             "threads (default 1: one after the other, in this process)")
    parser.add_argument("--compare-to", metavar="OTHER_DIR",
                        help="another cross-validation over the same folds: add per-fold differences to it")
    return parser


def run(args: argparse.Namespace) -> None:
    cross_validate(args.param_path, args.serialization_dir, args.folds, args.fold_var, args.overrides, args.parallel,
                   args.compare_to)


def fold_is_done(fold_dir: str) -> bool:
    return all(os.path.isfile(os.path.join(fold_dir, name)) for name in ("model.tar.gz", "metrics.json"))


def _resume_mode(fold_dir: str) -> Tuple[bool, bool]:
    """(recover, force): a fold with a checkpoint goes on from it, a fold folder without one starts over."""
    recover = bool(Checkpointer(fold_dir).epochs()) if os.path.isdir(fold_dir) else False
    return recover, os.path.isdir(fold_dir) and not recover


def cross_validate(config_path: str, serialization_dir: str, folds: int, fold_var: str = "ADE_FOLD",
                   overrides: str = "", parallel: int = 1, compare_to: Optional[str] = None) -> Dict[str, Any]:
    from joint_ere.commands.train import train_model

    baseline = _read_baseline(compare_to, folds) if compare_to else None
    configs = [load_config(config_path, overrides, ext_vars={fold_var: str(i)}) for i in range(folds)]
    if folds > 1 and configs[0].as_dict(quiet=True) == configs[1].as_dict(quiet=True):
        raise ConfigurationError(f"{config_path} does not read std.extVar('{fold_var}'): every fold would train "
                                 f"the same model (pass --fold-var with the ext var the config uses)")
    os.makedirs(serialization_dir, exist_ok=True)
    started = time.time()
    with tqdm(total=folds, desc="cross-validation", unit="fold", dynamic_ncols=True, file=sys.stderr) as bar:
        pending = []
        for fold, params in enumerate(configs):
            if fold_is_done(os.path.join(serialization_dir, f"fold_{fold}")):
                bar.set_postfix_str(f"fold {fold} already done")
                bar.update(1)
            else:
                pending.append((fold, params))
        if parallel > 1 and len(pending) > 1:
            _train_in_processes(pending, serialization_dir, parallel, bar)
        else:
            for fold, params in pending:
                fold_dir = os.path.join(serialization_dir, f"fold_{fold}")
                recover, force = _resume_mode(fold_dir)
                logger.info("cross-validation: fold %d of %d into %s%s", fold + 1, folds, fold_dir,
                            " (resuming from its checkpoint)" if recover else " (starting over)" if force else "")
                train_model(params, fold_dir, recover=recover, force=force)
                _fold_finished(bar, fold, fold_dir)
    per_fold = [read_json(os.path.join(serialization_dir, f"fold_{i}", "metrics.json")) for i in range(folds)]
    summary = summarise(per_fold)
    summary["fold_var"], summary["config"] = fold_var, config_path
    dump_json(summary, os.path.join(serialization_dir, "cv_metrics.json"))
    comparison = None
    if baseline is not None and compare_to is not None:
        comparison = compare(summary, baseline)
        comparison["baseline"] = compare_to
        dump_json(comparison, os.path.join(serialization_dir, "cv_comparison.json"))
    with atomic_output(os.path.join(serialization_dir, "cv_metrics.md")) as handle:
        handle.write(markdown_table(summary))
        if comparison is not None:
            handle.write("\n" + comparison_table(comparison))
    logger.info("cross-validation: %d folds in %s (this run %.0f s); %s", folds, serialization_dir,
                time.time() - started, _headline(summary["mean"]))
    return summary


def _fold_finished(bar: tqdm, fold: int, fold_dir: str) -> None:
    bar.update(1)
    bar.set_postfix_str(f"fold {fold}: {_headline(read_json(os.path.join(fold_dir, 'metrics.json')))}")


def _train_in_processes(pending: List[Tuple[int, Params]], serialization_dir: str, parallel: int, bar: tqdm) -> None:
    """``allennlp train`` for each pending fold, ``parallel`` at a time, on the fold's config as this process
    resolved it (ext var and overrides applied). A failed fold stops the others (each resumes from its last
    checkpoint when the command is run again) and raises, naming the fold and its log."""
    environment = dict(os.environ)
    environment.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // parallel)))
    running: Dict[int, Tuple[subprocess.Popen, IO[str]]] = {}
    queue = list(pending)
    with tempfile.TemporaryDirectory() as configs:
        try:
            while queue or running:
                while queue and len(running) < parallel:
                    fold, params = queue.pop(0)
                    fold_dir = os.path.join(serialization_dir, f"fold_{fold}")
                    config = os.path.join(configs, f"fold_{fold}.json")
                    with open(config, "w", encoding="utf-8") as handle:
                        json.dump(params.as_dict(quiet=True), handle)
                    recover, force = _resume_mode(fold_dir)
                    command = [sys.executable, "-m", "joint_ere", "train", config, "-s", fold_dir]
                    command += ["--recover"] if recover else ["--force"] if force else []
                    log = open(os.path.join(serialization_dir, f"fold_{fold}.log"), "a", encoding="utf-8")
                    logger.info("cross-validation: fold %d in a process of its own (output in %s)", fold, log.name)
                    running[fold] = (subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                                      env=environment), log)
                time.sleep(0.2)
                for fold, (process, log) in list(running.items()):
                    if process.poll() is None:
                        continue
                    log.close()
                    del running[fold]
                    if process.returncode != 0:
                        raise TrainingError(f"cross-validation: fold {fold} failed (exit {process.returncode}): "
                                            f"{_last_line(log.name)} (its output: {log.name})")
                    _fold_finished(bar, fold, os.path.join(serialization_dir, f"fold_{fold}"))
        finally:
            for process, log in running.values():  # an error or Ctrl-C: the other folds stop and resume later
                process.terminate()
                process.wait()
                log.close()


def _last_line(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as handle:
        lines = [line.strip() for line in handle.read().replace("\r", "\n").splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def summarise(per_fold: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Every fold's summarised numbers, and their mean and sample standard deviation (None for one fold)."""
    folds = [{k: v for k, v in metrics.items() if _summarised(k, v)} for metrics in per_fold]
    keys = [k for k in folds[0] if all(k in f for f in folds)]
    mean: Dict[str, float] = {}
    std: Dict[str, Optional[float]] = {}
    for key in keys:
        mean[key], std[key] = _mean_and_std([float(f[key]) for f in folds])
    return {"folds": folds, "mean": mean, "std": std, "num_folds": len(folds)}


def _mean_and_std(values: List[float]) -> Tuple[float, Optional[float]]:
    """The mean and the sample standard deviation (n - 1; None for one value)."""
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else None
    return mean, std


def _summarised(key: str, value: Any) -> bool:
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    return numeric and (key.startswith(SUMMARISED_PREFIXES) or key in SUMMARISED_KEYS)


def _read_baseline(path: str, folds: int) -> Dict[str, Any]:
    """The other run's ``cv_metrics.json``, checked before anything trains."""
    metrics = os.path.join(path, "cv_metrics.json")
    if not os.path.isfile(metrics):
        raise ConfigurationError(f"--compare-to: {metrics} does not exist (run allennlp cross-validate to the "
                                 f"end in {path} first)")
    baseline = read_json(metrics)
    if baseline.get("num_folds") != folds:
        raise ConfigurationError(f"--compare-to: {metrics} has {baseline.get('num_folds')} folds, this run {folds}")
    return baseline


def compare(summary: Dict[str, Any], baseline: Dict[str, Any]) -> Dict[str, Any]:
    """Per-fold differences (``summary`` minus ``baseline``) of every F1, ``best_epoch`` and ``training_seconds``
    both runs have: their mean, sample standard deviation and the number of folds where ``summary`` is higher."""
    compared: Dict[str, Dict[str, Any]] = {}
    for key in summary["mean"]:
        if key not in baseline["mean"] or not (key.endswith("_f1") or key in SUMMARISED_KEYS):
            continue
        differences = [float(ours[key]) - float(theirs[key])
                       for ours, theirs in zip(summary["folds"], baseline["folds"])]
        mean, std = _mean_and_std(differences)
        compared[key] = {"differences": differences, "mean": mean, "std": std,
                         "higher": sum(d > 0 for d in differences), "lower": sum(d < 0 for d in differences)}
    return {"num_folds": summary["num_folds"], "metrics": compared}


def comparison_table(comparison: Dict[str, Any]) -> str:
    folds = comparison["num_folds"]
    header = ["difference"] + [f"fold {i}" for i in range(folds)] + ["mean ± std", "higher / lower"]
    lines = [f"Against {comparison.get('baseline', 'the other run')} (this run minus that one, fold by fold):", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key, row in comparison["metrics"].items():
        cells = ([key] + [_format_difference(key, d) for d in row["differences"]]
                 + [f"{_format_difference(key, row['mean'])} ± {_format(key, row['std'])}",
                    f"{row['higher']} / {row['lower']}"])
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _format_difference(key: str, value: float) -> str:
    text = _format(key, value)
    return text if text.startswith("-") else "+" + text


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
