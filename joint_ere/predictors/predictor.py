import builtins
import concurrent.futures
import contextlib
import json
import threading
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Union

import torch
from tango.common import Registrable

from joint_ere.common.errors import ConfigurationError, DataError
from joint_ere.data.data_loader import batch_instances, move_to_device
from joint_ere.data.document import Document
from joint_ere.data.readers import DatasetReader
from joint_ere.data.text import TextDocument, TextSplitter, default_text_splitter
from joint_ere.models.model import Model

PredictionInput = Union[Document, TextDocument]


def sentence_count(inputs: Sequence[PredictionInput]) -> int:
    """How many sentences ``inputs`` send through the model (a text has several, a tokenised record one)."""
    return sum(len(item.sentences) if isinstance(item, TextDocument) else 1 for item in inputs)


class Predictor(Registrable):
    """
    JSON in, JSON out. An input is raw text (a string, or ``{"text": ...}``) or a pre-tokenised record
    (``{"tokens": [...]}``, DESIGN.md's schema):

        predictor = Predictor.from_path("runs/conll04/model.tar.gz")
        predictor.predict("John Smith works for Acme Corp. in Boston.")

    A text comes back as one record: its ``text``, ``tokens`` with ``token_offsets``, ``sentences`` (token and
    character ranges), ``entities`` with ``char_start``/``char_end``/``text`` and ``relations``; offsets are
    relative to the whole text. A tokenised record comes back with ``entities`` and ``relations`` added.
    Sentences are predicted in batches of ``batch_size``, sorted by length.

    On a CPU, ``streams`` batches go through the model at once, each on a thread of its own with an equal share
    of torch's threads; 0 is one stream per torch thread, 1 one batch at a time on all of them, and ``None``
    (the default) the model's ``prediction_streams``. A recurrent model's small matrix products keep one core
    busy far better than they split over two: on the 2-core development VM the Crone model predicts CoNLL04 dev
    1.3 times as fast in two streams of one thread as in one stream of two, while RIN, whose relation tables are
    large products, is slower in two (RESULTS.md, "Prediction in streams"). On a GPU batches run one after the
    other.
    """

    default_implementation = "document"

    def __init__(self, model: Model, dataset_reader: DatasetReader, text_splitter: Optional[TextSplitter] = None,
                 batch_size: int = 64, streams: Optional[int] = None) -> None:
        self.model = model
        self.dataset_reader = dataset_reader
        self._text_splitter = text_splitter
        self.batch_size = batch_size
        self.streams = streams
        self._indexing = threading.Lock()  # tokenizers and vocabularies are not promised to be thread-safe

    @property
    def text_splitter(self) -> TextSplitter:
        return self._text_splitter if self._text_splitter is not None else default_text_splitter()

    @classmethod
    def from_path(cls, archive_path: str, cuda_device: Union[int, str] = -1, predictor_name: Optional[str] = None,
                  overrides: Union[str, Dict[str, Any]] = "", use_amp: bool = False) -> "Predictor":
        """AllenNLP's entry point: ``Predictor.from_path("runs/x/model.tar.gz").predict("Some text.")``."""
        from joint_ere.archival import load_archive

        archive = load_archive(archive_path, cuda_device=cuda_device, overrides=overrides, use_amp=use_amp)
        return cls.from_archive(archive, predictor_name)

    @classmethod
    def from_archive(cls, archive: Any, predictor_name: Optional[str] = None) -> "Predictor":
        name = predictor_name or cls.default_implementation
        if name not in cls.list_available():  # by_name would try to import ``name`` as a module
            raise ConfigurationError(f"--predictor {name!r} is not a registered Predictor; the registered ones are "
                                     f"{', '.join(sorted(cls.list_available()))}")
        predictor_class = cls.by_name(name)
        return predictor_class(archive.model, archive.validation_dataset_reader)

    # -- the public API: raw text or records in, dicts out ------------------------------------------------------

    def predict(self, text: Union[str, Dict[str, Any]]) -> Dict[str, Any]:
        return self.predict_batch([text])[0]

    def predict_batch(self, inputs: Sequence[Union[str, Dict[str, Any]]]) -> List[Dict[str, Any]]:
        return self.predict_inputs([self.parse_input(record, "<input>", i) for i, record in enumerate(inputs)])

    def predict_json(self, record: Union[str, Dict[str, Any]]) -> Dict[str, Any]:
        return self.predict(record)

    def predict_batch_json(self, records: Sequence[Union[str, Dict[str, Any]]]) -> List[Dict[str, Any]]:
        return self.predict_batch(records)

    # -- the pieces --------------------------------------------------------------------------------------------

    def parse_input(self, record: Any, path: str = "<input>", index: object = 0) -> PredictionInput:
        return parse_input(record, path, index, self._text_splitter)

    def predict_inputs(self, inputs: Sequence[PredictionInput],
                       progress: Optional[Callable[[int], None]] = None) -> List[Dict[str, Any]]:
        """Every sentence of every input in batches sorted by length; results in input order."""
        sentences: List[Document] = []
        for item in inputs:
            sentences.extend(item.sentence_documents() if isinstance(item, TextDocument) else [item])
        predicted = self.predict_sorted(sentences, progress)
        outputs, position = [], 0
        for item in inputs:
            if isinstance(item, TextDocument):
                count = len(item.sentences)
                outputs.append(item.merge(predicted[position: position + count]))
            else:
                count = 1
                outputs.append(predicted[position].to_json())
            position += count
        return outputs

    def predict_sorted(self, documents: Sequence[Document],
                       progress: Optional[Callable[[int], None]] = None) -> List[Document]:
        """Sorting by length keeps padding small; the predictions come back in the order of ``documents``."""
        order = sorted(range(len(documents)), key=lambda i: len(documents[i].tokens))
        chunks = [order[start: start + self.batch_size] for start in range(0, len(order), self.batch_size)]
        results: List[Optional[Document]] = [None] * len(documents)
        with self.stream_pool(len(chunks)) as pool:
            batches = pool.map(lambda chunk: self.predict_documents([documents[i] for i in chunk]), chunks)
            for chunk, predicted in zip(chunks, batches):
                for i, doc in zip(chunk, predicted):
                    results[i] = doc
                if progress is not None:
                    progress(len(chunk))
        return results  # type: ignore[return-value]

    @contextlib.contextmanager
    def stream_pool(self, batches: int) -> Iterator[Any]:
        """``map`` over batches: a pool of ``streams`` threads on a CPU, sharing torch's threads out among them
        while it runs; the builtin ``map`` otherwise."""
        threads = torch.get_num_threads()
        wanted = self.streams if self.streams is not None else self.model.prediction_streams
        streams = min(wanted or threads, threads, batches)
        if streams < 2 or next(self.model.parameters()).device.type != "cpu":
            yield builtins
            return
        torch.set_num_threads(threads // streams)
        try:
            with concurrent.futures.ThreadPoolExecutor(streams, thread_name_prefix="predict") as pool:
                yield pool
        finally:
            torch.set_num_threads(threads)

    def model_inputs(self, documents: List[Document]) -> Dict[str, Any]:
        """The batch the model's forward takes for ``documents`` (their tokens only, no gold), on its device."""
        with self._indexing:
            instances = [self.dataset_reader.text_to_instance(Document(d.tokens, meta=d.meta)) for d in documents]
            for instance in instances:
                instance.index_fields(self.model.vocab)
        batch = move_to_device(batch_instances(instances), next(self.model.parameters()).device)
        batch.pop("entities"), batch.pop("relations")
        return batch

    def predict_documents(self, documents: List[Document]) -> List[Document]:
        """One batch through the model."""
        if not documents:
            return []
        batch = self.model_inputs(documents)
        self.model.eval()
        with torch.inference_mode():
            output = self.model(**batch)
        return self.model.make_output_human_readable(output)

    @staticmethod
    def dump_line(output: Dict[str, Any]) -> str:
        return json.dumps(output, ensure_ascii=False) + "\n"


Predictor.register("document")(Predictor)


def parse_input(record: Any, path: str = "<input>", index: object = 0,
                text_splitter: Optional[TextSplitter] = None) -> PredictionInput:
    """A text (``"..."`` or ``{"text": ...}``) or a tokenised record (``{"tokens": [...]}``); anything else is a
    DataError naming ``path`` and ``index``."""
    if isinstance(record, str) or (isinstance(record, dict) and "text" in record and "tokens" not in record):
        return (text_splitter or default_text_splitter()).document(record, path, index)
    if isinstance(record, dict) and "tokens" in record:
        # Gold labels in the input are not the model's business; every other field is kept in the output.
        unlabelled = {k: v for k, v in record.items() if k not in ("entities", "relations")}
        return Document.from_json(unlabelled, path=path, index=index)
    found = type(record).__name__ if not isinstance(record, dict) else f"keys {sorted(record)}"
    raise DataError(path, index, f'expected a text, {{"text": ...}} or {{"tokens": [...]}}, found {found}')
