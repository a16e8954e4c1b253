"""``allennlp serve ARCHIVE``: the model behind HTTP (``joint_ere/server/app.py``), on localhost unless
``--host`` says otherwise. ``POST /predict`` with ``{"text": "..."}``; the page at ``/`` draws the answer."""
import argparse
import logging

from joint_ere.archival import load_archive
from joint_ere.commands.arguments import positive_int
from joint_ere.common.errors import ConfigurationError
from joint_ere.predictors import Predictor

logger = logging.getLogger(__name__)


def add_subparser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = commands.add_parser("serve", help="serve a model over HTTP, with a page to try it",
                                 description="Serve a model archive: POST /predict, GET /health, GET / (a page), "
                                             "GET /docs (OpenAPI).")
    parser.add_argument("archive_file", help="model.tar.gz from allennlp train")
    parser.add_argument("--host", default="127.0.0.1", help="the address to listen on (default: localhost only)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--cuda-device", type=int, default=-1)
    parser.add_argument("--predictor", default=None, help="a registered Predictor (default: document)")
    parser.add_argument("--max-batch-size", type=positive_int, default=64,
                        help="sentences gathered from concurrent requests into one model call")
    parser.add_argument("--max-wait-ms", type=float, default=5.0,
                        help="how long the first request of a batch waits for others")
    parser.add_argument("--max-body-bytes", type=positive_int, default=1_000_000,
                        help="larger request bodies are refused with 413")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="torch threads for the model (default: one fewer than the CPU cores, leaving one core "
                             "to handle the requests)")
    parser.add_argument("-o", "--overrides", default="", help="a JSON object merged into the archived config")
    parser.add_argument("--use-amp", action="store_true",
                        help="run transformer embedders in bfloat16 (CPU) / float16 (GPU), and lstm encoders in "
                             "bfloat16 on a CPU; the rest stays float32")
    return parser


def run(args: argparse.Namespace) -> None:
    if not 0 <= args.port <= 65535:
        raise ConfigurationError(f"--port {args.port} is not a TCP port")
    if args.max_wait_ms < 0:
        raise ConfigurationError(f"--max-wait-ms must not be negative, not {args.max_wait_ms}")
    import os

    import torch
    import uvicorn

    from joint_ere.server import build_app

    # This process only reads requests and tokenises; the model's process gets the other cores (on 2 cores, 1
    # model thread served 1.7 times more requests per second than 2: RESULTS.md, "Serving").
    torch.set_num_threads(1)
    threads = args.threads or max(1, (os.cpu_count() or 2) - 1)
    # This process reads the requests (its copy of the model, on the CPU, only checks the archive and names the
    # labels); the model predicts in a process of its own, so that the two do not share one GIL.
    archive = load_archive(args.archive_file, cuda_device=-1, overrides=args.overrides)
    predictor = Predictor.from_archive(archive, args.predictor)
    model_process = {"archive_file": args.archive_file, "cuda_device": args.cuda_device, "overrides": args.overrides,
                     "use_amp": args.use_amp, "predictor_name": args.predictor, "batch_size": args.max_batch_size,
                     "threads": threads, "packages": args.include_package}
    app = build_app(predictor, max_batch_size=args.max_batch_size, max_wait_ms=args.max_wait_ms,
                    max_body_bytes=args.max_body_bytes, model_process=model_process)
    logger.info("serving %s on http://%s:%d/ (the page), /predict, /health, /docs", args.archive_file, args.host,
                args.port)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
