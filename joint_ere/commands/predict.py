"""``allennlp predict ARCHIVE INPUT``: raw text or tokenised records in, predicted documents out, one JSON object
per line.

Inputs (``--input-format auto`` tells them apart by the file's first character that is not a space):

- JSON lines or a JSON list of records, each either ``{"tokens": [...]}`` (DESIGN.md's schema, e.g. a SpERT
  file) or ``{"text": "..."}``; the other keys of a record are kept in its output;
- plain text, one document per line (empty lines are skipped).

A text is split into sentences and tokens (``joint_ere.data.text``); its output has character offsets relative
to the text. Every record is read and checked before the model is loaded: a bad one stops the command, naming
the file and the record, with nothing written.
"""
import argparse
import contextlib
import sys
from typing import Any, List, Tuple

from tqdm import tqdm

from joint_ere.archival import load_archive
from joint_ere.commands.arguments import positive_int
from joint_ere.common.errors import DataError
from joint_ere.common.files import atomic_output, check_writable, read_text
from joint_ere.data.readers import load_json_records, resolve_path
from joint_ere.predictors import Predictor, parse_input
from joint_ere.predictors.predictor import sentence_count


def add_subparser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = commands.add_parser("predict", help="predict entities and relations",
                                 description="Run a model archive over raw text or tokenised JSON records.")
    parser.add_argument("archive_file", help="model.tar.gz from allennlp train")
    parser.add_argument("input_file", help='plain text (one document per line), or JSON lines / a JSON list of '
                                           '{"text": ...} or {"tokens": [...]} records')
    parser.add_argument("--input-format", choices=("auto", "json", "text"), default="auto",
                        help="auto: JSON when the file starts with '{' or '[', plain text otherwise")
    parser.add_argument("--output-file", help="write predictions here (JSON lines)")
    parser.add_argument("--batch-size", type=positive_int, default=64, help="sentences per batch")
    parser.add_argument("--cuda-device", type=int, default=-1)
    parser.add_argument("--predictor", default=None, help="a registered Predictor (default: document)")
    parser.add_argument("--silent", action="store_true", help="do not print predictions to stdout")
    parser.add_argument("-o", "--overrides", default="", help="a JSON object merged into the archived config")
    parser.add_argument("--use-amp", action="store_true",
                        help="run transformer embedders in bfloat16 (CPU) / float16 (GPU), and lstm encoders in "
                             "bfloat16 on a CPU; the rest stays float32")
    parser.add_argument("--streams", type=int, default=None,
                        help="batches predicted at once on a CPU, each on its share of torch's threads (0: one per "
                             "thread; default: the model's choice, see Predictor)")
    return parser


def read_inputs(path: str, input_format: str = "auto") -> List[Tuple[object, Any]]:
    """``(where, record)`` pairs: the record's index in a JSON file, ``"line N"`` in a plain-text file."""
    text = read_text(path)
    if not text.strip():
        raise DataError(path, None, "the file is empty")
    if input_format == "json" or (input_format == "auto" and text.lstrip()[:1] in ("{", "[")):
        return list(enumerate(load_json_records(path, text)))
    lines = text.split("\n")  # not splitlines(): U+2028 inside a line is text, not a line break
    return [(f"line {number}", line[:-1] if line.endswith("\r") else line)
            for number, line in enumerate(lines, start=1) if line.strip()]


def run(args: argparse.Namespace) -> None:
    if args.output_file:
        check_writable(args.output_file, "--output-file")
    path = resolve_path(args.input_file)
    records = read_inputs(path, args.input_format)
    # Parsing needs no model: a bad record stops the command before the archive is even loaded.
    inputs = [parse_input(record, path, where) for where, record in records]
    archive = load_archive(args.archive_file, cuda_device=args.cuda_device, overrides=args.overrides,
                           use_amp=args.use_amp)
    predictor = Predictor.from_archive(archive, args.predictor)
    predictor.batch_size = args.batch_size
    predictor.streams = args.streams
    total = sentence_count(inputs)
    with tqdm(total=total, desc="predicting sentences", disable=args.silent and not args.output_file,
              dynamic_ncols=True, file=sys.stderr) as bar:
        outputs = predictor.predict_inputs(inputs, progress=bar.update)
    with contextlib.ExitStack() as stack:
        handle = stack.enter_context(atomic_output(args.output_file)) if args.output_file else None
        for output in outputs:
            line = Predictor.dump_line(output)
            if handle:
                handle.write(line)
            if not args.silent:
                sys.stdout.write(line)
