"""Argument types shared by the subcommands."""
import argparse


def positive_int(text: str) -> int:
    """An argparse type: ``--batch-size 0`` is refused by argparse (exit 2, the usage line), not met later."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value
