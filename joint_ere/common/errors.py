"""The two kinds of user error: a bad config and a bad data record. Both end the command with exit code 1."""
from tango.common.exceptions import ConfigurationError


class DataError(ValueError):
    """A record of a data file that cannot be used; the message names the file and the record."""

    def __init__(self, path: str, record: object, message: str) -> None:
        self.path = str(path)
        self.record = record
        super().__init__(f"{path}, record {record}: {message}" if record is not None else f"{path}: {message}")


__all__ = ["ConfigurationError", "DataError"]
