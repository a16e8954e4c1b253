"""``allennlp evaluate ARCHIVE INPUT``: metrics (and optionally predictions) of a trained model on a file."""
import argparse
import contextlib
import json
import logging
import sys
from typing import Any, Dict, Optional, TextIO

import torch

from joint_ere.archival import load_archive
from joint_ere.commands.arguments import positive_int
from joint_ere.common.files import atomic_output, check_writable, dump_json
from joint_ere.data.data_loader import DataLoader
from joint_ere.models.model import Model
from joint_ere.training.evaluation import evaluate

logger = logging.getLogger(__name__)


def add_subparser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = commands.add_parser("evaluate", help="evaluate a trained model on a labelled file",
                                 description="Evaluate a model archive on a labelled data file.")
    parser.add_argument("archive_file", help="model.tar.gz from allennlp train")
    parser.add_argument("input_file", help="labelled data (path or URL), read with the archive's reader")
    parser.add_argument("--output-file", help="write the metrics here as JSON")
    parser.add_argument("--predictions-output-file", help="write the predicted documents here as JSON lines")
    parser.add_argument("--cuda-device", type=int, default=-1)
    parser.add_argument("--batch-size", type=positive_int, default=64)
    parser.add_argument("-o", "--overrides", default="", help="a JSON object merged into the archived config")
    parser.add_argument("--use-amp", action="store_true",
                        help="run transformer embedders in bfloat16 (CPU) / float16 (GPU), and lstm encoders in "
                             "bfloat16 on a CPU; the rest stays float32")
    parser.add_argument("--per-type", action="store_true", help="also report P/R/F1 per entity and relation type")
    return parser


def evaluate_instances(model: Model, loader: DataLoader, device: torch.device, predictions: Optional[TextIO] = None,
                       per_type: bool = False, show_progress: bool = True) -> Dict[str, float]:
    loader.set_target_device(device)
    if loader.vocab is None:
        loader.index_with(model.vocab)

    def write(output: Dict[str, Any]) -> None:
        for doc in output.get("documents") or model.make_output_human_readable(output):
            predictions.write(json.dumps(doc.to_json(), ensure_ascii=False) + "\n")

    return evaluate(model, loader, on_output=None if predictions is None else write, per_type=per_type,
                    show_progress=show_progress)


def run(args: argparse.Namespace) -> None:
    for key, path in (("--output-file", args.output_file), ("--predictions-output-file", args.predictions_output_file)):
        if path:
            check_writable(path, key)
    archive = load_archive(args.archive_file, cuda_device=args.cuda_device, overrides=args.overrides,
                           use_amp=args.use_amp)
    instances = archive.validation_dataset_reader.read(args.input_file)
    loader = DataLoader(instances, batch_size=args.batch_size)
    device = next(archive.model.parameters()).device
    with contextlib.ExitStack() as stack:
        predictions = (stack.enter_context(atomic_output(args.predictions_output_file))
                       if args.predictions_output_file else None)
        metrics = evaluate_instances(archive.model, loader, device, predictions, per_type=args.per_type)
    print(json.dumps(metrics, indent=2), file=sys.stdout)
    if args.output_file:
        dump_json(metrics, args.output_file)
