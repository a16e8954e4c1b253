import json
import os
from pathlib import Path
from typing import Any, Dict

import pytest
import torch

import joint_ere  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures" / "data"
SHARED_DATA = ROOT.parent / "shared" / "data"

torch.set_num_threads(1)


def tiny_config(train: Path = FIXTURES / "train.json", dev: Path = FIXTURES / "dev.json", epochs: int = 3,
                **model_overrides: Any) -> Dict[str, Any]:
    """A small, fast config over the fixtures (word embeddings + character CNN)."""
    model = {
        "type": "multi_head_selection",
        "text_field_embedder": {"token_embedders": {
            "tokens": {"type": "embedding", "embedding_dim": 10, "pretrained_file": str(FIXTURES / "glove_tiny.10d.txt")},
            "token_characters": {"type": "character_encoding",
                                 "embedding": {"embedding_dim": 6, "vocab_namespace": "token_characters"},
                                 "encoder": {"type": "cnn", "embedding_dim": 6, "num_filters": 6,
                                             "ngram_filter_sizes": [3]}}}},
        "shared_encoder": {"type": "lstm", "input_size": 16, "hidden_size": 12, "bidirectional": True},
        "ner_encoder": {"type": "pass_through", "input_dim": 24},
        "re_encoder": {"type": "lstm", "input_size": 24, "hidden_size": 12, "bidirectional": True},
        "label_embedding_dim": 6,
        "relation_hidden_dim": 16,
    }
    model.update(model_overrides)
    return {
        "dataset_reader": {"type": "spert_json", "token_indexers": {
            "tokens": {"type": "single_id", "lowercase_tokens": True},
            "token_characters": {"type": "characters", "min_padding_length": 3}}},
        "train_data_path": str(train),
        "validation_data_path": str(dev),
        "model": model,
        "data_loader": {"batch_size": 4, "shuffle": True},
        "trainer": {"optimizer": {"type": "adam", "lr": 0.01}, "num_epochs": epochs,
                    "validation_metric": "+re_strict_micro_f1", "show_progress": False},
    }


@pytest.fixture
def write_config(tmp_path):
    def write(config: Dict[str, Any], name: str = "config.json") -> str:
        path = tmp_path / name
        path.write_text(json.dumps(config))
        return str(path)

    return write


needs_shared_data = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data is not present")


@pytest.fixture(autouse=True)
def _data_env(monkeypatch):
    if SHARED_DATA.is_dir():
        monkeypatch.setenv("JOINT_ERE_DATA", str(SHARED_DATA))
    yield
