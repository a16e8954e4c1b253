"""The user errors: a bad config, a bad data record, a training run that cannot go on. Each ends the command with
`error: ...` and exit code 1."""
from tango.common.exceptions import ConfigurationError


class DataError(ValueError):
    """A record of a data file that cannot be used; the message names the file and the record: ``record`` is the
    record's index, or a place in words (``"line 3"``), or None for the file as a whole."""

    def __init__(self, path: str, record: object, message: str) -> None:
        self.path = str(path)
        self.record = record
        where = "" if record is None else f", {record}" if isinstance(record, str) else f", record {record}"
        super().__init__(f"{path}{where}: {message}")


class OutputError(ConfigurationError):
    """An output file that cannot be written (no such folder, no permission, a full disk)."""


class TrainingError(RuntimeError):
    """Training cannot go on (a loss that is NaN or infinite); the message says where and what was kept."""


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (torch and jsonnet write several), or its type if it has none."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


__all__ = ["ConfigurationError", "DataError", "OutputError", "TrainingError", "first_line"]


def check_dimensions(key: str, got: int, what: str, expected: int) -> None:
    """A config error naming ``key`` when a module's input size does not match what feeds it."""
    if got != expected:
        raise ConfigurationError(f"{key}: input dimension is {got}, but {what} has dimension {expected}")
