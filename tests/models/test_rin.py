"""RIN: the interaction module against a direct computation, and a model that overfits WebNLG*-style records."""
import json

import pytest
import torch

from joint_ere.commands import main
from joint_ere.common.errors import ConfigurationError
from joint_ere.common.params import construct
from joint_ere.data import DatasetReader, Vocabulary, batch_instances
from joint_ere.models import Model, RecurrentInteractionNetwork
from joint_ere.models.rin import InteractionUpdate
from tests.conftest import FIXTURES

PARTIAL = FIXTURES / "casrel_partial.json"


def rin_config(rounds=2, epochs=3, data=PARTIAL):
    return {
        "dataset_reader": {"type": "casrel_triples", "match": "partial",
                           "token_indexers": {"tokens": {"type": "single_id", "lowercase_tokens": True},
                                              "token_characters": {"type": "characters", "min_padding_length": 3}}},
        "train_data_path": str(data), "validation_data_path": str(data),
        "model": {
            "type": "rin",
            "text_field_embedder": {"token_embedders": {
                "tokens": {"type": "embedding", "embedding_dim": 10},
                "token_characters": {"type": "character_encoding",
                                     "embedding": {"embedding_dim": 6, "vocab_namespace": "token_characters"},
                                     "encoder": {"type": "cnn", "embedding_dim": 6, "num_filters": 6,
                                                 "ngram_filter_sizes": [3]}}}},
            "encoder": {"type": "lstm", "input_size": 16, "hidden_size": 12, "bidirectional": True},
            "feature_dim": 16, "relation_hidden_dim": 16, "interaction_dim": 8, "rounds": rounds, "dropout": 0.0,
        },
        "data_loader": {"batch_size": 2, "shuffle": True},
        "trainer": {"optimizer": {"type": "adam", "lr": 0.01}, "num_epochs": epochs,
                    "validation_metric": "+re_partial_micro_f1", "show_progress": False},
    }


def build(config):
    reader = construct(DatasetReader, config["dataset_reader"], "dataset_reader")
    instances = reader.read(config["train_data_path"])
    vocab = Vocabulary.from_instances(instances)
    for instance in instances:
        instance.index_fields(vocab)
    return construct(Model, config["model"], "model", vocab=vocab), instances


def test_relation_max_is_the_largest_probability_over_real_objects(monkeypatch):
    from joint_ere.common import blocks

    model, _ = build(rin_config())
    model.eval()
    torch.manual_seed(0)
    head, tail = torch.randn(2, 5, 16), torch.randn(2, 5, 16)
    mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
    table = torch.sigmoid(model.relation_head.score(head, tail))  # (B, i, j, R)
    expected = torch.stack([table[0].amax(dim=1), torch.cat([table[1, :, :3].amax(dim=1)], dim=0)])
    torch.testing.assert_close(model.relation_max(head, tail, mask), expected)
    monkeypatch.setattr(blocks, "CELLS_AT_ONCE", 2 * 5 * 16 * 2)  # two rows a block at inference
    torch.testing.assert_close(model.relation_max(head, tail, mask), expected)


def test_relation_max_gradients_equal_those_of_the_max_over_probabilities():
    model, _ = build(rin_config())
    model.train()
    torch.manual_seed(1)
    head, tail = torch.randn(2, 5, 16, requires_grad=True), torch.randn(2, 5, 16, requires_grad=True)
    mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
    weights = torch.randn(2, 5, model.num_relations)
    (model.relation_max(head, tail, mask) * weights).sum().backward()
    ours = head.grad.clone(), tail.grad.clone()
    head.grad = tail.grad = None
    table = torch.sigmoid(model.relation_head.score(head, tail)).masked_fill(~mask[:, None, :, None], 0.0)
    (table.amax(dim=2) * weights).sum().backward()
    torch.testing.assert_close(ours, (head.grad, tail.grad))


def test_cells_are_every_real_pair_above_the_threshold_sentence_by_sentence(monkeypatch):
    from joint_ere.common import blocks

    model, _ = build(rin_config())
    model.eval()
    torch.manual_seed(2)
    head, tail = torch.randn(3, 6, 16), torch.randn(3, 6, 16)
    mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2, [False] * 6])
    probabilities = torch.sigmoid(model.relation_head.score(head, tail))
    model.relation_threshold = 0.02  # the untrained scorer's probabilities lie around 0.01 (its bias is -4.6)
    expected = [[(i, j, r, probabilities[b, i, j, r].item()) for i in range(6) for j in range(6)
                 for r in range(model.num_relations)
                 if mask[b, i] and mask[b, j] and probabilities[b, i, j, r] > model.relation_threshold]
                for b in range(3)]
    assert sum(map(len, expected)) > 5 and expected[2] == []
    assert sum(map(len, expected)) < 0.9 * mask[:2].sum(1).pow(2).sum() * model.num_relations
    def same(found):  # the cells exactly, their probabilities to float32 rounding
        assert [[cell[:3] for cell in row] for row in found] == [[cell[:3] for cell in row] for row in expected]
        assert [cell[3] for row in found for cell in row] == pytest.approx(
            [cell[3] for row in expected for cell in row], rel=1e-6)

    same(model._cells(head, tail, mask))
    monkeypatch.setattr(blocks, "CELLS_AT_ONCE", 3 * 6 * 16)  # one row a block
    same(model._cells(head, tail, mask))


def test_the_update_is_the_slides_gated_recurrence():
    torch.manual_seed(0)
    update = InteractionUpdate(num_relations=3, num_tags=5, encoder_dim=4, feature_dim=6, interaction_dim=2)
    features, relation_max = torch.randn(2, 7, 6), torch.rand(2, 7, 3)
    tags, encoded = torch.softmax(torch.randn(2, 7, 5), -1), torch.randn(2, 7, 4)

    def linear(layer, x):
        return x @ layer.weight.T + layer.bias

    x = torch.relu(linear(update.interaction, torch.cat([relation_max, tags, encoded], -1)))
    z = torch.sigmoid(linear(update.update_gate, torch.cat([features, x], -1)))
    u = torch.sigmoid(linear(update.reset_gate, torch.cat([features, x], -1)))
    candidate = torch.tanh(linear(update.candidate, torch.cat([u * features, x], -1)))
    torch.testing.assert_close(update(features, relation_max, tags, encoded), (1 - z) * features + z * candidate)


def test_zero_rounds_is_the_baseline_without_interaction():
    model, instances = build(rin_config(rounds=0))
    model(**batch_instances(instances))["loss"].backward()
    assert all(p.grad is None for p in model.update.parameters())
    assert model.relation_features.weight.grad.abs().sum() > 0
    with pytest.raises(ConfigurationError, match="model.rounds must be 0 or more"):
        build({**rin_config(), "model": {**rin_config()["model"], "rounds": -1}})


def test_rin_overfits_partial_match_records_and_predicts_from_its_archive(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(rin_config(rounds=2, epochs=120)))
    assert main(["train", str(path), "-s", str(tmp_path / "run")]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["best_validation_re_partial_micro_f1"] == 1.0
    assert metrics["best_validation_ner_micro_f1"] == 1.0
    assert "best_validation_re_strict_micro_f1" not in metrics  # one entity type: RE+ would be RE
    out = tmp_path / "predicted.jsonl"
    records = [{"tokens": r["text"].split()} for r in json.loads(PARTIAL.read_text())]
    (tmp_path / "input.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    assert main(["predict", str(tmp_path / "run" / "model.tar.gz"), str(tmp_path / "input.jsonl"),
                 "--output-file", str(out), "--silent"]) == 0
    predicted = [json.loads(line) for line in out.read_text().splitlines()]
    first = predicted[0]
    named = sorted((first["tokens"][first["entities"][r["head"]]["start"]], r["type"],
                    first["tokens"][first["entities"][r["tail"]]["start"]]) for r in first["relations"])
    assert named == [("Bean", "birthPlace", "Texas"), ("Wheeler", "isPartOf", "Texas")]


def test_an_argument_ner_missed_becomes_a_one_token_entity():
    model, instances = build(rin_config())
    model.eval()
    output = model(**batch_instances(instances[:1]))
    output["tag_logits"] = torch.zeros_like(output["tag_logits"])
    output["tag_logits"][..., 0] = 5.0  # every token O: NER finds nothing
    cells = [(1, 7, 0, 0.9), (7, 7, 1, 0.8)]  # Bean -> Texas, and Texas -> Texas (one word, both arguments)
    model._cells = lambda head, tail, mask: [cells]
    document = model.make_output_human_readable(output)[0]
    assert [(e.start, e.end, e.type) for e in document.entities] == [(1, 2, "Entity"), (7, 8, "Entity")]
    assert [(r.head, r.tail, r.score) for r in document.relations] == [(0, 1, 0.9), (1, 1, 0.8)]
    assert isinstance(model, RecurrentInteractionNetwork)


@pytest.mark.parametrize("name", ["webnlg_star_rin", "webnlg_star_rin_k0", "webnlg_star_rin_k1", "webnlg_star_rin_k5",
                                  "webnlg_rin", "nyt_star_rin", "nyt_rin"])
def test_shipped_rin_configs_build_their_model(name):
    from joint_ere.common import load_config
    from tests.conftest import ROOT

    params = load_config(str(ROOT / "training_config" / f"{name}.jsonnet")).as_dict()
    assert params["dataset_reader"]["type"] == "casrel_triples"
    assert params["trainer"]["validation_metric"] == (
        "+re_partial_micro_f1" if params["dataset_reader"]["match"] == "partial" else "+re_micro_f1")
    params["model"]["text_field_embedder"]["token_embedders"]["tokens"].pop("pretrained_file")
    reader = construct(DatasetReader, params["dataset_reader"], "dataset_reader")
    vocab = Vocabulary.from_instances(reader.read(str(PARTIAL)))
    model = construct(Model, params["model"], "model", vocab=vocab)
    assert model.rounds == {"k0": 0, "k1": 1, "k5": 5}.get(name.rsplit("_", 1)[-1], 3)


def test_the_transformer_rin_config_trains_rin_over_the_named_transformer(tiny_bert):
    from joint_ere.common import load_config
    from tests.conftest import ROOT

    params = load_config(str(ROOT / "training_config" / "webnlg_star_rin_transformer.jsonnet"),
                         ext_vars={"TRANSFORMER_MODEL": tiny_bert, "TRANSFORMER_DIM": "16"}).as_dict()
    assert params["dataset_reader"]["token_indexers"] == {
        "transformer": {"type": "pretrained_transformer_mismatched", "model_name": tiny_bert}}
    assert params["trainer"]["validation_metric"] == "+re_partial_micro_f1"
    assert params["trainer"]["optimizer"]["type"] == "adamw"
    reader = construct(DatasetReader, params["dataset_reader"], "dataset_reader")
    instances = reader.read(str(PARTIAL))
    vocab = Vocabulary.from_instances(instances)
    model = construct(Model, params["model"], "model", vocab=vocab)
    assert model.rounds == 3 and model.encoder.get_input_dim() == 16
    for instance in instances:
        instance.index_fields(vocab)
    loss = model(**batch_instances(instances))["loss"]
    loss.backward()
    assert torch.isfinite(loss)
    transformer = model.text_field_embedder.token_embedders["transformer"]
    assert any(p.grad is not None for p in transformer.parameters())


@pytest.mark.parametrize("encoder", [{"type": "pfn", "input_dim": 16, "hidden_dim": 8},
                                     {"type": "srn", "input_dim": 16, "hidden_dim": 8, "num_tasks": 2}])
def test_a_two_task_encoder_gives_the_projections_partitioned_states(encoder):
    config = rin_config()
    config["model"].pop("encoder")
    config["model"]["task_encoder"] = encoder
    model, instances = build(config)
    assert model.entity_features.in_features == 16 and model.update.interaction.in_features == 24 + 5 + 6
    model(**batch_instances(instances))["loss"].backward()
    assert all(p.grad is not None for p in model.task_encoder.parameters() if p.requires_grad)


def test_encoder_settings_are_checked():
    config = rin_config()
    config["model"]["task_encoder"] = {"type": "pfn", "input_dim": 16, "hidden_dim": 8}
    with pytest.raises(ConfigurationError, match="give exactly one of encoder and task_encoder"):
        build(config)
    config["model"].pop("encoder")
    config["model"]["task_encoder"] = {"type": "srn", "input_dim": 16, "hidden_dim": 8, "num_tasks": 3}
    with pytest.raises(ConfigurationError, match="model.task_encoder: model 'rin' needs num_tasks = 2"):
        build(config)


def test_evaluation_decodes_inside_the_trainers_autocast():
    """Decoding reads forward's half-precision states, so the loop scores a batch in forward's autocast."""
    from joint_ere.training.evaluation import evaluate

    torch.manual_seed(0)
    model, instances = build(rin_config())
    batches = [batch_instances(instances[:2]), batch_instances(instances[2:])]
    full = evaluate(model, batches, show_progress=False)
    half = evaluate(model, batches, precision=lambda: torch.autocast("cpu", dtype=torch.float16),
                    show_progress=False)
    assert set(half) == set(full) and "re_partial_micro_f1" in half
    assert abs(half["loss"] - full["loss"]) < 1e-2 * abs(full["loss"])
