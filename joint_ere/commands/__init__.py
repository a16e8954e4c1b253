"""The ``allennlp`` command: ``train``, ``evaluate``, ``predict``, ``serve`` and ``cross-validate`` (one file each)."""
import argparse
import importlib
import logging
import sys
from typing import List, Optional

from joint_ere.common.errors import ConfigurationError, DataError, TrainingError
from joint_ere.commands import cross_validate, evaluate, predict, serve, train

SUBCOMMANDS = {"train": train, "evaluate": evaluate, "predict": predict, "serve": serve,
               "cross-validate": cross_validate}


def import_packages(names: List[str]) -> None:
    for name in names or []:
        try:
            importlib.import_module(name)
        except ImportError as error:
            raise ConfigurationError(f"--include-package {name}: {error}") from error


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="allennlp", description="joint-ere: joint entity and relation extraction")
    from joint_ere import __version__

    parser.add_argument("--version", action="version", version=f"joint-ere {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in SUBCOMMANDS.items():
        sub = module.add_subparser(commands)
        sub.add_argument("--include-package", action="append", default=[], metavar="PACKAGE",
                         help="import this module first, so its registered classes can be used")
        sub.set_defaults(func=module.run)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    import joint_ere  # noqa: F401  (registers every built-in class)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    for noisy in ("tango", "cached_path", "filelock", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        import_packages(args.include_package)
        args.func(args)
    except (ConfigurationError, DataError, TrainingError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0
