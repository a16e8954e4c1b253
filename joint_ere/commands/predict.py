"""``allennlp predict ARCHIVE INPUT``: JSON lines of ``{"tokens": [...]}`` (or a SpERT JSON file) in,
predicted documents out, one JSON object per line."""
import argparse
import contextlib
import sys
from typing import List, Optional

from tqdm import tqdm

from joint_ere.archival import load_archive
from joint_ere.commands.arguments import positive_int
from joint_ere.common.files import atomic_output, check_writable
from joint_ere.data.document import Document
from joint_ere.data.readers import load_json_records, resolve_path
from joint_ere.predictors import Predictor


def add_subparser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = commands.add_parser("predict", help="predict entities and relations",
                                 description="Run a model archive over JSON lines or a SpERT JSON file.")
    parser.add_argument("archive_file", help="model.tar.gz from allennlp train")
    parser.add_argument("input_file", help='JSON lines of {"tokens": [...]} or a SpERT JSON list')
    parser.add_argument("--output-file", help="write predictions here (JSON lines)")
    parser.add_argument("--batch-size", type=positive_int, default=64)
    parser.add_argument("--cuda-device", type=int, default=-1)
    parser.add_argument("--predictor", default=None, help="a registered Predictor (default: document)")
    parser.add_argument("--silent", action="store_true", help="do not print predictions to stdout")
    parser.add_argument("-o", "--overrides", default="", help="a JSON object merged into the archived config")
    parser.add_argument("--use-amp", action="store_true",
                        help="run transformer embedders in bfloat16 (CPU) / float16 (GPU); the rest stays float32")
    return parser


def run(args: argparse.Namespace) -> None:
    if args.output_file:
        check_writable(args.output_file, "--output-file")
    path = resolve_path(args.input_file)
    # Read and check every record first: a bad record stops the command before anything is written.
    documents = [Document.from_json(record, path=path, index=index)
                 for index, record in enumerate(load_json_records(path))]
    archive = load_archive(args.archive_file, cuda_device=args.cuda_device, overrides=args.overrides,
                           use_amp=args.use_amp)
    predictor = Predictor.from_archive(archive, args.predictor)
    # Sorting by length keeps padding small; outputs are written back in input order.
    order = sorted(range(len(documents)), key=lambda i: len(documents[i].tokens))
    results: List[Optional[Document]] = [None] * len(documents)
    with tqdm(total=len(documents), desc="predicting", disable=args.silent and not args.output_file,
              dynamic_ncols=True, file=sys.stderr) as bar:
        for start in range(0, len(order), args.batch_size):
            chunk = order[start: start + args.batch_size]
            for i, doc in zip(chunk, predictor.predict_documents([documents[i] for i in chunk])):
                results[i] = doc
            bar.update(len(chunk))
    with contextlib.ExitStack() as stack:
        handle = stack.enter_context(atomic_output(args.output_file)) if args.output_file else None
        for doc in results:
            line = Predictor.dump_line(doc.to_json())
            if handle:
                handle.write(line)
            if not args.silent:
                sys.stdout.write(line)
