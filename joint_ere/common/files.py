"""
Reading and writing files the one way the project does it: text is UTF-8 and an undecodable byte is a
``DataError`` naming the file, line and byte offset; every output goes to a temporary file that is renamed into
place only when it is complete, so a failed command leaves nothing half-written.
"""
import contextlib
import gzip
import json
import os
import zlib
from typing import IO, Any, Callable, Iterator

from joint_ere.common.errors import ConfigurationError, DataError, OutputError

BOM = "\ufeff"


def undecodable(path: str, line: int, offset: int, error: UnicodeDecodeError) -> DataError:
    """The DataError for bytes that are not UTF-8, at ``line`` and absolute byte ``offset`` of the file."""
    return DataError(path, None, f"line {line}, byte offset {offset}: not UTF-8 text "
                                 f"(byte 0x{error.object[error.start]:02x}: {error.reason})")


def unreadable(path: str, error: Exception) -> DataError:
    """A file that cannot be opened or decompressed (a truncated ``.gz``, a folder, no permission)."""
    reason = error.strerror if isinstance(error, OSError) and error.strerror else f"{type(error).__name__}: {error}"
    return DataError(path, None, f"cannot be read ({reason})")


def read_text(path: str) -> str:
    """The whole file as text (``.gz`` decompressed); a UTF-8 byte-order mark is dropped."""
    try:
        with (gzip.open if path.endswith(".gz") else open)(path, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError, zlib.error) as error:
        raise unreadable(path, error) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise undecodable(path, data.count(b"\n", 0, error.start) + 1, error.start, error) from None
    return text[1:] if text.startswith(BOM) else text


def unwritable(path: str, error: OSError) -> OutputError:
    return OutputError(f"{path}: cannot be written ({error.strerror or type(error).__name__})")


def _discard(temporary: str) -> None:
    if os.path.isfile(temporary):
        os.remove(temporary)


@contextlib.contextmanager
def atomic_output(path: str, mode: str = "w") -> Iterator[IO[Any]]:
    """Opens ``path + ".tmp"`` for writing and renames it to ``path`` when the block ends without an error;
    on any error (or Ctrl-C) the temporary file is removed and ``path`` is left as it was. A failing write,
    flush or rename of the file itself is an ``OutputError`` naming ``path``."""
    temporary = path + ".tmp"
    try:
        handle = open(temporary, mode, encoding=None if "b" in mode else "utf-8")
    except OSError as error:
        raise unwritable(path, error) from None
    try:
        try:
            yield handle
            handle.close()  # flushes: a full disk shows here
            os.replace(temporary, path)
        except OSError as error:
            if error.filename not in (None, temporary, path):
                raise  # not this file's error
            raise unwritable(path, error) from None
    except BaseException:
        handle.close()
        _discard(temporary)
        raise


def atomic_save(path: str, write: Callable[[str], None]) -> None:
    """``write(temporary_path)`` then a rename: for writers that take a path (``torch.save``, ``tarfile``)."""
    temporary = path + ".tmp"
    try:
        write(temporary)
        os.replace(temporary, path)
    except OSError as error:
        _discard(temporary)
        if error.filename not in (None, temporary, path):
            raise
        raise unwritable(path, error) from None
    except BaseException:
        _discard(temporary)
        raise


def read_json(path: str) -> Any:
    """A JSON file (that the project wrote: configs, metrics, meta); broken JSON is a DataError naming the line."""
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as error:
        raise DataError(path, f"line {error.lineno} column {error.colno}", f"malformed JSON: {error.msg}") from None


def dump_json(data: Any, path: str) -> None:
    """Writes JSON through a temporary file, so a reader never sees half a file."""
    with atomic_output(path) as handle:
        json.dump(data, handle, indent=2)


def check_writable(path: str, key: str) -> None:
    """Fails early, before any work, when ``path`` is a folder or its folder does not exist or is read-only."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise OutputError(f"{key} {path}: is a directory")
    if not os.path.isdir(folder):
        raise OutputError(f"{key} {path}: the directory {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise OutputError(f"{key} {path}: the directory {folder} is not writable")


def resolve_path(file_path: str) -> str:
    """A local path, or a URL downloaded once into the cache (tango's ``cached_path``)."""
    if file_path is None or file_path == "":
        raise ConfigurationError("no data path given")
    if not isinstance(file_path, (str, os.PathLike)):
        raise ConfigurationError(f"a data path must be a string, not {type(file_path).__name__} ({file_path!r})")
    if "://" in str(file_path):
        from cached_path import cached_path

        try:
            return str(cached_path(file_path))
        except Exception as error:  # network errors differ by scheme
            raise DataError(file_path, None, f"could not download ({type(error).__name__}); offline, point "
                                             f"JOINT_ERE_DATA at a local copy or override the path with -o") from error
    if os.path.isdir(file_path):
        raise DataError(file_path, None, "is a directory, not a data file")
    if not os.path.isfile(file_path):
        raise DataError(file_path, None, "data file not found")
    return str(file_path)
