from typing import Iterable

from joint_ere.data.document import Document
from joint_ere.data.readers.dataset_reader import DatasetReader, load_json_records


@DatasetReader.register("spert_json")
class SpertJsonReader(DatasetReader):
    """
    Reads SpERT JSON (ADE, CoNLL04 and SciERC sentence files): one JSON list of
    ``{"tokens", "entities", "relations"}`` records, or the same records as JSON lines.
    Records without ``entities`` are read as unlabelled text (for prediction).
    """

    def _read(self, file_path: str) -> Iterable[Document]:
        for index, record in enumerate(load_json_records(file_path)):
            yield Document.from_json(record, path=file_path, index=index)
