import json
from typing import Any, Dict, List, Optional, Union

import torch
from tango.common import Registrable

from joint_ere.common.errors import ConfigurationError
from joint_ere.data.data_loader import batch_instances, move_to_device
from joint_ere.data.document import Document
from joint_ere.data.readers import DatasetReader
from joint_ere.models.model import Model


class Predictor(Registrable):
    """JSON in, JSON out: ``{"tokens": [...]}`` records become predicted documents (DESIGN.md's schema)."""

    default_implementation = "document"

    def __init__(self, model: Model, dataset_reader: DatasetReader) -> None:
        self.model = model
        self.dataset_reader = dataset_reader

    @classmethod
    def from_path(cls, archive_path: str, cuda_device: Union[int, str] = -1, predictor_name: Optional[str] = None,
                  overrides: Union[str, Dict[str, Any]] = "", use_amp: bool = False) -> "Predictor":
        """AllenNLP's entry point: ``Predictor.from_path("runs/x/model.tar.gz").predict_json({"tokens": [...]})``."""
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

    def predict_json(self, record: Dict[str, Any]) -> Dict[str, Any]:
        return self.predict_batch_json([record])[0]

    def predict_batch_json(self, records: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        # Gold labels in the input are not the model's business; every other field is kept in the output.
        unlabelled = [{k: v for k, v in r.items() if k not in ("entities", "relations")} if isinstance(r, dict) else r
                      for r in records]
        documents = [Document.from_json(r, path="<input>", index=i) for i, r in enumerate(unlabelled)]
        return [doc.to_json() for doc in self.predict_documents(documents)]

    def predict_documents(self, documents: List[Document]) -> List[Document]:
        if not documents:
            return []
        instances = [self.dataset_reader.text_to_instance(Document(d.tokens, meta=d.meta)) for d in documents]
        for instance in instances:
            instance.index_fields(self.model.vocab)
        device = next(self.model.parameters()).device
        batch = move_to_device(batch_instances(instances), device)
        batch.pop("entities"), batch.pop("relations")
        self.model.eval()
        with torch.inference_mode():
            output = self.model(**batch)
        return self.model.make_output_human_readable(output)

    @staticmethod
    def dump_line(output: Dict[str, Any]) -> str:
        return json.dumps(output, ensure_ascii=False) + "\n"


Predictor.register("document")(Predictor)
