import json
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
    """``fixtures/tiny.jsonnet`` (word embeddings + character CNN) with absolute paths and a few keys changed."""
    from joint_ere.common import load_config

    config = load_config(str(ROOT / "fixtures" / "tiny.jsonnet")).as_dict()
    config["train_data_path"], config["validation_data_path"] = str(train), str(dev)
    config["model"]["text_field_embedder"]["token_embedders"]["tokens"]["pretrained_file"] = str(
        FIXTURES / "glove_tiny.10d.txt")
    config["model"].update(model_overrides)
    config["trainer"]["num_epochs"] = epochs
    return config


def train_interrupted_then_resumed(config_path: Path, serialization_dir: Path, monkeypatch: Any,
                                   epoch: int = 2) -> None:
    """``allennlp train`` stopped by Ctrl-C as epoch ``epoch`` (0-based) begins, which leaves no archive, then
    ``-r``: for comparing a resumed run with an uninterrupted one."""
    from joint_ere.commands import main
    from joint_ere.training.trainer import GradientDescentTrainer

    original = GradientDescentTrainer._train_epoch

    def interrupted(self: GradientDescentTrainer, current: int) -> Dict[str, float]:
        if current == epoch:
            raise KeyboardInterrupt
        return original(self, current)

    monkeypatch.setattr(GradientDescentTrainer, "_train_epoch", interrupted)
    assert main(["train", str(config_path), "-s", str(serialization_dir)]) == 130
    assert not (serialization_dir / "model.tar.gz").exists()
    monkeypatch.setattr(GradientDescentTrainer, "_train_epoch", original)
    assert main(["train", str(config_path), "-s", str(serialization_dir), "-r"]) == 0


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


@pytest.fixture(scope="session")
def quickstart_archive(tmp_path_factory) -> Path:
    """The README's quick-start model (about 15 s of training), trained once per test session."""
    import os

    from joint_ere.commands import main

    run = tmp_path_factory.mktemp("quickstart") / "run"
    cwd = os.getcwd()
    os.chdir(ROOT)  # the config names its data relative to the repository root
    try:
        assert main(["train", "training_config/quickstart.jsonnet", "-s", str(run)]) == 0
    finally:
        os.chdir(cwd)
    return run / "model.tar.gz"


WORDPIECES = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "john", "smith", "works", "for", "acme", "in",
              "boston", ".", ",", "un", "##aff", "##able", "zu", "##rich", "a", "b", "c"]


def save_tiny_bert(folder, wordpieces) -> str:
    """A random 2-layer BERT over ``wordpieces`` (lowercasing), saved in ``folder`` like a hub model."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(wordpieces) + "\n")
    tokenizer = BertTokenizerFast(str(folder / "vocab.txt"), do_lower_case=True)
    tokenizer.save_pretrained(str(folder))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(wordpieces), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64)
    BertModel(config).eval().save_pretrained(str(folder))
    return str(folder)


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    """A random 2-layer BERT with a hand-written vocabulary, saved like a hub model."""
    return save_tiny_bert(tmp_path_factory.mktemp("tiny_bert"), WORDPIECES)
