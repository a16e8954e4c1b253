import json
import os
from typing import Dict, Iterable, List, Optional

from tango.common import Registrable

from joint_ere.common.errors import ConfigurationError, DataError
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


def resolve_path(file_path: str) -> str:
    """A local path, or a URL downloaded once into the cache (tango's ``cached_path``)."""
    if file_path is None or file_path == "":
        raise ConfigurationError("no data path given")
    if "://" in str(file_path):
        from cached_path import cached_path

        try:
            return str(cached_path(file_path))
        except Exception as error:  # network errors differ by scheme
            raise DataError(file_path, None, f"could not download ({type(error).__name__}); offline, point "
                                             f"JOINT_ERE_DATA at a local copy or override the path with -o") from error
    if not os.path.isfile(file_path):
        raise DataError(file_path, None, "data file not found")
    return str(file_path)


def load_json_records(file_path: str) -> List[object]:
    """A JSON list (SpERT) or JSON lines; a syntax error names the file and the line/record."""
    with open(file_path, encoding="utf-8") as handle:
        text = handle.read()
    if text.lstrip().startswith("["):
        try:
            records = json.loads(text)
        except json.JSONDecodeError as error:
            raise DataError(file_path, f"at line {error.lineno} column {error.colno}",
                            f"malformed JSON: {error.msg}") from None
        return records
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            raise DataError(file_path, f"on line {number}", f"malformed JSON: {error.msg}") from None
    return records
