import copy
import json
import random

import pytest
import torch

from joint_ere.commands.train import train_model
from joint_ere.common import Params
from joint_ere.common.errors import ConfigurationError
from joint_ere.common.params import construct
from joint_ere.data import SpertJsonReader, Vocabulary
from joint_ere.data.document import Document
from joint_ere.models import Model
from tests.conftest import FIXTURES, tiny_config

ENCODERS = {
    "pfn": {"type": "pfn", "input_dim": 16, "hidden_dim": 24},
    "srn": {"type": "srn", "input_dim": 16, "hidden_dim": 24, "num_tasks": 2},
    "srn_bidirectional": {"type": "srn", "input_dim": 16, "hidden_dim": 12, "num_tasks": 2, "bidirectional": True},
    "shared_bilstm": {"type": "shared", "encoder": {"type": "lstm", "input_size": 16, "hidden_size": 12,
                                                    "bidirectional": True}},
}


def table_config(encoder, **overrides):
    """fixtures/tiny.jsonnet with the table-filling model in place of multi-head selection."""
    config = tiny_config(**overrides)
    model = config["model"]
    config["model"] = {"type": "table_filling", "text_field_embedder": model["text_field_embedder"],
                       "encoder": copy.deepcopy(encoder), "hidden_dim": 24, "dropout": 0.0}
    return config


def build(encoder):
    config = table_config(encoder)
    config["model"]["text_field_embedder"]["token_embedders"]["tokens"].pop("pretrained_file")
    vocab = Vocabulary.from_instances(SpertJsonReader().read(str(FIXTURES / "train.json")))
    return construct(Model, config["model"], "model", vocab=vocab), vocab


def test_targets_mark_spans_and_first_words():
    model, _ = build(ENCODERS["pfn"])
    entities = torch.tensor([[[0, 2, 0], [3, 5, 1], [6, 7, 2]]])
    relations = torch.tensor([[[0, 1, 1], [2, 1, 0], [-1, -1, -1]]])
    entity_target, relation_target = model._targets(entities, relations, 8)
    assert entity_target.sum() == 3
    assert entity_target[0, 0, 1, 0] == 1 and entity_target[0, 3, 4, 1] == 1 and entity_target[0, 6, 6, 2] == 1
    assert relation_target.sum() == 2
    assert relation_target[0, 0, 3, 1] == 1 and relation_target[0, 6, 3, 0] == 1


def test_decoding_thresholds_both_tables():
    model, vocab = build(ENCODERS["pfn"])
    types = vocab.get_index_to_token_vocabulary("entity_labels")
    relation_types = vocab.get_index_to_token_vocabulary("relation_labels")
    length, big = 5, 10.0
    entity_logits = torch.full((1, length, length, len(types)), -big)
    relation_logits = torch.full((1, length, length, len(relation_types)), -big)
    entity_logits[0, 0, 1, 0] = big  # words 0-1, type 0
    entity_logits[0, 3, 3, 1] = big  # word 3, type 1
    entity_logits[0, 2, 1, 1] = big  # start after end: not a span
    entity_logits[0, 4, 4, 0] = big  # beyond the sentence's 4 words
    relation_logits[0, 0, 3, 1] = big  # from the entity starting at 0 to the one starting at 3
    relation_logits[0, 3, 2, 0] = big  # no entity starts at 2
    mask = torch.tensor([[True] * 4 + [False]])
    spans = (mask.unsqueeze(2) & mask.unsqueeze(1)) & torch.ones(length, length, dtype=torch.bool).triu()
    source = Document(["a", "b", "c", "d"], [], [], {})
    documents = model.make_output_human_readable({"entity_logits": entity_logits, "relation_logits": relation_logits,
                                                  "span_mask": spans, "mask": mask, "metadata": [source]})
    document = documents[0]
    assert [(e.type, e.start, e.end) for e in document.entities] == [(types[0], 0, 2), (types[1], 3, 4)]
    assert [(r.type, r.head, r.tail) for r in document.relations] == [(relation_types[1], 0, 1)]
    assert document.entities[0].score == pytest.approx(torch.sigmoid(torch.tensor(big)).item())


@pytest.mark.parametrize("encoder", ENCODERS)
def test_overfits_a_few_sentences_to_f1_one_with_any_encoder(tmp_path, encoder):
    random.seed(0)
    torch.manual_seed(0)
    config = table_config(ENCODERS[encoder], train=FIXTURES / "train.json", dev=FIXTURES / "train.json", epochs=60)
    config["trainer"]["optimizer"]["lr"] = 0.005
    config["trainer"]["validation_metric"] = "+re_strict_micro_f1"
    config["trainer"]["patience"] = None
    train_model(Params(config), str(tmp_path / "run"))
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    for name in ["ner_micro_f1", "ner_macro_f1", "re_strict_micro_f1", "re_strict_macro_f1"]:
        assert metrics[f"validation_{name}"] == 1.0, name


def test_encoder_that_does_not_fit_the_model_fails_at_config_time():
    with pytest.raises(ConfigurationError, match=r"model.encoder: model 'table_filling' needs num_tasks = 2, but "
                                                 r"the SelectionRecurrentNetwork encoder \(num_tasks = 3"):
        build({"type": "srn", "input_dim": 16, "hidden_dim": 8, "num_tasks": 3})
    with pytest.raises(ConfigurationError, match=r"asks for task 'ner', which the PartitionFilterEncoder"):
        config = table_config(ENCODERS["pfn"])
        config["model"]["entity_task"] = "ner"
        config["model"]["text_field_embedder"]["token_embedders"]["tokens"].pop("pretrained_file")
        vocab = Vocabulary.from_instances(SpertJsonReader().read(str(FIXTURES / "train.json")))
        construct(Model, config["model"], "model", vocab=vocab)
    with pytest.raises(ConfigurationError, match=r"model.encoder: input dimension is 20, but the text_field_embedder"):
        build({"type": "pfn", "input_dim": 20, "hidden_dim": 8})


def test_table_head_in_row_blocks_equals_the_whole_table(monkeypatch):
    from joint_ere.common import blocks
    from joint_ere.modules.heads import TableHead

    torch.manual_seed(0)
    head = TableHead(6, 6, 8, 3, dropout=0.0).eval()
    task, shared = torch.randn(2, 11, 6), torch.randn(2, 11, 6)
    mask = torch.ones(2, 11, dtype=torch.bool)
    whole = head(task, shared, mask)["logits"]
    monkeypatch.setattr(blocks, "CELLS_AT_ONCE", 2 * 11 * 8 * 3)  # blocks of 3 rows
    assert torch.allclose(head(task, shared, mask)["logits"], whole, atol=1e-6)


def test_table_head_loss_and_decoding_read_only_the_valid_cells():
    from joint_ere.modules.heads import TableHead

    mask = torch.tensor([[True, True, True], [True, True, False]])
    spans, pairs = TableHead(4, 4, 8, 2, 0.0, upper_triangular=True), TableHead(4, 4, 8, 2, 0.0)
    assert spans.cells(mask)[1].tolist() == [[True, True, False], [False, True, False], [False, False, False]]
    assert pairs.cells(mask)[1].tolist() == [[True, True, False], [True, True, False], [False, False, False]]
    task = torch.randn(2, 3, 4)
    gold = torch.zeros(2, 3, 3, 2)
    gold[0, 0, 2, 1] = 1.0
    output = spans(task, task, mask, gold)
    logits = output["logits"]
    # by hand: the summed cross-entropy of the 6 + 3 cells with i <= j of real words, both labels, over 2 sentences
    expected = sum(torch.nn.functional.binary_cross_entropy_with_logits(logits[b, i, j], gold[b, i, j],
                                                                        reduction="sum")
                   for b, length in ((0, 3), (1, 2)) for i in range(length) for j in range(i, length)) / 2
    assert torch.allclose(output["loss"], expected)
    gold[0, 2, 0, 0] = gold[1, 2, 2, 1] = 1.0  # a lower-triangle cell and a padding cell: not read
    assert torch.allclose(spans(task, task, mask, gold)["loss"], expected)
    table = torch.full((2, 3, 3, 2), -5.0)
    table[0, 0, 2, 1] = table[1, 0, 1, 0] = 2.0  # valid
    table[0, 1, 0, 0] = table[1, 2, 2, 1] = 2.0  # below the diagonal; padding
    found, probabilities = TableHead.decode(table, spans.cells(mask), 0.5)
    assert found == [[0, 0, 2, 1], [1, 0, 1, 0]]
    assert probabilities[1, 2, 2, 1] == 0 and torch.isclose(probabilities[0, 0, 2, 1], torch.sigmoid(torch.tensor(2.0)))


def test_a_sentence_of_2000_words_predicts_in_blocks_what_the_whole_table_gives(monkeypatch):
    from joint_ere.common import blocks
    from joint_ere.data import DatasetReader
    from joint_ere.modules.heads import table
    from joint_ere.predictors import Predictor

    model, _ = build(ENCODERS["pfn"])
    reader = construct(DatasetReader, {"type": "spert_json", "token_indexers": {
        "tokens": {"type": "single_id", "lowercase_tokens": True},
        "token_characters": {"type": "characters", "min_padding_length": 3}}}, "dataset_reader")
    words = (["john", "smith", "works", "for", "acme", "."] * 340)[:2000]
    row_blocks, used, tables = table.row_blocks, [], []
    monkeypatch.setattr(table, "row_blocks", lambda *args: used.append(row_blocks(*args)) or used[-1])
    readable = model.make_output_human_readable
    monkeypatch.setattr(model, "make_output_human_readable", lambda output: tables.append(
        (output["entity_logits"].clone(), output["relation_logits"].clone())) or readable(output))

    document = Predictor(model, reader).predict_documents([Document(words)])[0]
    assert max(len(b) for b in used) > 1  # the tables were built a block of rows at a time
    monkeypatch.setattr(blocks, "CELLS_AT_ONCE", 1 << 40)
    used.clear()
    whole = Predictor(model, reader).predict_documents([Document(words)])[0]
    assert max(len(b) for b in used) == 1
    assert document.tokens == words and document.to_json() == whole.to_json()
    for blocked, at_once in zip(*tables):  # every cell of both tables, not only the few over the threshold
        assert blocked.shape[1:3] == (2000, 2000)
        torch.testing.assert_close(blocked, at_once, rtol=1e-5, atol=1e-5)
