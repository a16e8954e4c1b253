import json
from typing import Dict, Iterable, List, Optional

from tango.common import Registrable

from joint_ere.common.errors import DataError
from joint_ere.common.files import read_text, resolve_path
from joint_ere.data.document import Document
from joint_ere.data.instance import Instance
from joint_ere.data.token_indexers import SingleIdTokenIndexer, TokenIndexer


class DatasetReader(Registrable):
    """
    Turns a file (local path or URL, cached) into ``Document``s and documents into ``Instance``s.

    # Parameters

    token_indexers : `Dict[str, TokenIndexer]`, optional (default = `{"tokens": single_id}`)
        How words become ids; the keys are the names the text field embedder uses.
    max_instances : `int`, optional
        Read at most this many documents (for quick experiments).
    """

    default_implementation = "spert_json"

    def __init__(self, token_indexers: Optional[Dict[str, TokenIndexer]] = None,
                 max_instances: Optional[int] = None) -> None:
        self.token_indexers = token_indexers or {"tokens": SingleIdTokenIndexer()}
        self.max_instances = max_instances

    def read(self, file_path: str) -> List[Instance]:
        documents = self.read_documents(file_path)
        if self.max_instances is not None:
            documents = documents[: self.max_instances]
        return [self.text_to_instance(doc) for doc in documents]

    def read_documents(self, file_path: str) -> List[Document]:
        return list(self._read(resolve_path(file_path)))

    def _read(self, file_path: str) -> Iterable[Document]:
        raise NotImplementedError

    def text_to_instance(self, document: Document) -> Instance:
        return Instance(document, self.token_indexers)


def load_json_records(file_path: str, text: Optional[str] = None) -> List[object]:
    """A JSON list (SpERT) or JSON lines; every way the file can be broken is a DataError naming the file and
    the line or record: bytes that are not UTF-8, a syntax error, a truncated end, an empty file, no records.
    ``text``: the file's content when the caller has read it already."""
    text = read_text(file_path) if text is None else text
    if not text.strip():
        raise DataError(file_path, None, "the file is empty")
    if text.lstrip().startswith("["):
        records = _parse_json(file_path, text, None)
        if not isinstance(records, list):  # e.g. "[1] [2]" is not caught by the parser as a list
            raise DataError(file_path, None, "expected a JSON list of records")
    else:
        records = []
        # split on "\n" only: str.splitlines() also splits inside strings holding U+2028 or U+0085
        lines = text.split("\n")
        for number, line in enumerate(lines, start=1):
            if line.strip():
                records.append(_parse_json(file_path, line, number, last_line_unterminated=number == len(lines)))
    if not records:
        raise DataError(file_path, None, "the file holds no records")
    return records


def _parse_json(file_path: str, text: str, line: Optional[int], last_line_unterminated: bool = False) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        # the parser stopped at the end of the text, or in a string that the text never closes
        ends_early = error.pos >= len(text.rstrip()) or error.msg.startswith("Unterminated string")
        hint = " (the file ends in the middle of a record: truncated?)" if ends_early and (
            line is None or last_line_unterminated) else ""
        where = f"line {error.lineno} column {error.colno}" if line is None else f"line {line}"
        raise DataError(file_path, where, f"malformed JSON: {error.msg}{hint}") from None
    except RecursionError:
        where = None if line is None else f"line {line}"
        raise DataError(file_path, where, "JSON nested too deeply to be a record") from None
