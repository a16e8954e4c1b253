"""Cascade-SRN with late fusion: EE -> SE -> SOE span extraction over a three-task encoder."""
import copy
import shutil
import json

import pytest
import torch

from joint_ere.commands import main
from joint_ere.common.errors import ConfigurationError
from joint_ere.common.params import construct
from joint_ere.data import DatasetReader, SpertJsonReader, Vocabulary, batch_instances
from joint_ere.models import CascadeSrn, Model
from joint_ere.modules.fusion import EncodedText
from joint_ere.modules.fusion.late import entity_tags
from tests.conftest import FIXTURES, ROOT, needs_shared_data, save_tiny_bert, tiny_config

SRN3 = {"type": "srn", "input_dim": 16, "hidden_dim": 24, "num_tasks": 3}
TAGS = 8  # type_embedding_dim


def fusion(input_size):
    return {"type": "lstm", "input_size": input_size, "hidden_size": 12, "bidirectional": True}


def cascade_config(encoder=SRN3, fused=True, train=FIXTURES / "train.json", dev=FIXTURES / "dev.json", epochs=3,
                   **model_overrides):
    """fixtures/tiny.jsonnet with the cascade in place of multi-head selection."""
    config = tiny_config(train=train, dev=dev, epochs=epochs)
    size = 4 * (encoder.get("hidden_dim") or 2 * encoder["encoder"]["hidden_size"])
    config["model"] = {"type": "cascade_srn", "text_field_embedder": config["model"]["text_field_embedder"],
                       "encoder": copy.deepcopy(encoder), "fusion": {"type": "late", "type_embedding_dim": TAGS},
                       "dropout": 0.0}
    if fused:
        config["model"]["fusion"]["subject_encoder"] = fusion(TAGS + size)
        config["model"]["fusion"]["object_encoder"] = fusion(2 * TAGS + size)
    config["model"].update(model_overrides)
    return config


def read(config):
    return construct(DatasetReader, config["dataset_reader"], "dataset_reader").read(str(FIXTURES / "train.json"))


def build(config):
    config["model"]["text_field_embedder"]["token_embedders"]["tokens"].pop("pretrained_file", None)
    vocab = Vocabulary.from_instances(read(config))
    return construct(Model, config["model"], "model", vocab=vocab), vocab


def train_and_read_metrics(config, tmp_path):
    """Trains ``config`` into ``tmp_path/run`` with ``allennlp train`` and returns its metrics.json."""
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    assert main(["train", str(path), "-s", str(tmp_path / "run")]) == 0
    return json.loads((tmp_path / "run" / "metrics.json").read_text())


def test_overfits_a_few_sentences_and_predicts_from_its_archive(tmp_path):
    config = cascade_config(train=FIXTURES / "train.json", dev=FIXTURES / "train.json", epochs=80)
    metrics = train_and_read_metrics(config, tmp_path)
    assert metrics["best_validation_ner_micro_f1"] == 1.0
    assert metrics["best_validation_re_strict_micro_f1"] == 1.0
    out = tmp_path / "predicted.jsonl"
    assert main(["predict", str(tmp_path / "run" / "model.tar.gz"), str(FIXTURES / "train.json"),
                 "--output-file", str(out), "--silent"]) == 0
    predicted = [json.loads(line) for line in out.read_text().splitlines()]
    gold = json.loads((FIXTURES / "train.json").read_text())

    def named(doc):
        entities = [(e["type"], e["start"], e["end"]) for e in doc["entities"]]
        return sorted(entities), sorted((r["type"], entities[r["head"]], entities[r["tail"]])
                                        for r in doc["relations"])

    assert [named(doc) for doc in predicted] == [named(doc) for doc in gold]


def test_without_fusion_encoders_an_object_score_cannot_see_the_subject():
    """Why the fusion encoders exist: under late fusion, eq. 12 alone scores a token the same for every subject
    that does not cover it; a BiLSTM over h_o carries the subject tag to every token."""
    torch.manual_seed(0)
    for fused in (False, True):
        model, _ = build(cascade_config(fused=fused))
        model.eval()
        states = {name: torch.randn(1, 6, 24) for name in ("e", "s", "o", "es", "eo", "so", "eso")}
        mask = torch.ones(1, 6, dtype=torch.bool)
        text = EncodedText({}, mask, states, encode=None)
        object_states = model.fusion.object_states(text, [[]], [0, 0], [(0, 1), (2, 3)])  # two subjects
        logits = model.object_head(object_states, mask.expand(2, -1))["start"]
        outside_both = logits[:, 3:]  # tokens 3-5 are in neither subject
        assert torch.allclose(outside_both[0], outside_both[1]) != fused


@pytest.mark.parametrize("encoder, message", [
    ({"type": "pfn", "input_dim": 16, "hidden_dim": 24}, "model 'cascade_srn' needs num_tasks = 3, but the "
                                                        "PartitionFilterEncoder encoder (num_tasks = 2"),
    ({"type": "srn", "input_dim": 16, "hidden_dim": 24, "num_tasks": 2}, "needs num_tasks = 3"),
    ({"type": "srn", "input_dim": 16, "hidden_dim": 24, "num_tasks": 3, "task_names": ["e", "r", "x"]},
     "asks for task 'eo', 'es', 'eso', 'o', 's', 'so', which the SelectionRecurrentNetwork encoder"),
])
def test_encoders_that_cannot_serve_the_cascade_are_refused_naming_both(encoder, message):
    with pytest.raises(ConfigurationError, match="model.encoder") as error:
        build(cascade_config(encoder=encoder, fused=False))
    assert message in str(error.value)


def test_a_shared_bilstm_serves_as_the_encoder_ablation():
    shared = {"type": "shared", "num_tasks": 3,
              "encoder": {"type": "lstm", "input_size": 16, "hidden_size": 12, "bidirectional": True}}
    config = cascade_config(encoder=shared)
    model, vocab = build(config)
    instances = read(config)[:4]
    for instance in instances:
        instance.index_fields(vocab)
    output = model(**batch_instances(instances))
    output["loss"].backward()
    assert model.encoder.encoder._module.weight_ih_l0.grad.abs().sum() > 0


def test_bad_settings_name_their_key():
    with pytest.raises(ConfigurationError, match="model.training_subjects: 'all'"):
        build(cascade_config(training_subjects="all"))
    config = cascade_config()
    config["model"]["fusion"]["object_encoder"]["input_size"] = 7
    with pytest.raises(ConfigurationError, match="model.fusion.object_encoder: input dimension is 7"):
        build(config)


def test_entity_tags_let_the_earliest_longest_entity_keep_overlapping_tokens():
    tags = entity_tags([[(1, 3, 1), (0, 2, 0), (4, 5, 2)], []], 6, torch.device("cpu"))
    assert tags.tolist() == [[1, 1, 2, 0, 3, 0], [0] * 6]


def test_relations_need_both_arguments_among_the_predicted_entities():
    model, vocab = build(cascade_config())
    types = vocab.get_index_to_token_vocabulary("entity_labels")
    relation_types = vocab.get_index_to_token_vocabulary("relation_labels")
    predictions = [{"entities": [(0, 2, 0, 0.9), (0, 2, 1, 0.95), (3, 4, 2, 0.8)],  # one span, two types
                    "relations": [((0, 2), (3, 4), 1, 0.7),  # kept
                                  ((0, 2), (5, 6), 0, 0.9),  # the object is no predicted entity: dropped
                                  ((3, 4), (3, 4), 0, 0.9)]}]  # a relation of an entity to itself: dropped
    documents = model.make_output_human_readable({"predictions": predictions,
                                                  "mask": torch.ones(1, 6, dtype=torch.bool)})
    document = documents[0]
    assert [(e.type, e.start, e.end) for e in document.entities] == [(types[1], 0, 2), (types[2], 3, 4)]
    assert [(r.type, r.head, r.tail, r.score) for r in document.relations] == [(relation_types[1], 0, 1, 0.7)]


def test_type_by_ee_adds_a_missing_argument_with_ees_most_probable_type():
    entities = [[(0, 2, 1, 0.9)], [(1, 2, 0, 0.8)]]
    relations = [[((0, 2), (3, 5), 0, 0.7), ((3, 5), (0, 2), 1, 0.6)], [((1, 2), (1, 2), 0, 0.5)]]
    match = torch.full((2, 6, 6, 3), -5.0)
    match[0, 3, 4] = torch.tensor([0.0, -1.0, 2.0])  # the span (3, 5): type 2 with p = sigmoid(2)
    CascadeSrn._type_missing_arguments(entities, relations, match)
    assert entities[0][:1] == [(0, 2, 1, 0.9)] and entities[0][1][:3] == (3, 5, 2)  # added once, for two relations
    assert entities[0][1][3] == pytest.approx(torch.sigmoid(torch.tensor(2.0)).item())
    assert entities[1] == [(1, 2, 0, 0.8)]  # nothing was missing
    with pytest.raises(ConfigurationError, match="model.missing_arguments: 'keep'"):
        build(cascade_config(missing_arguments="keep"))


CASCADE_CONFIGS = ["scierc_cascade_late.jsonnet", "scierc_cascade_late_bilstm.jsonnet",
                   "scierc_cascade_late_gold_subjects.jsonnet", "scierc_cascade_late_bisrn.jsonnet",
                   "scierc_cascade_late_ee_alone.jsonnet", "scierc_cascade_early.jsonnet",
                   "scierc_cascade_early_subject_markers.jsonnet", "scierc_cascade_early_bilstm.jsonnet",
                   "scierc_cascade_early_bisrn.jsonnet", "scierc_cascade_early_gold_subjects.jsonnet",
                   "scierc_cascade_early_ee_alone.jsonnet",
                   "conll04_cascade_late.jsonnet"]


@pytest.mark.parametrize("name", CASCADE_CONFIGS)
def test_shipped_cascade_configs_build_their_model(name, tiny_bert):
    from joint_ere.common import load_config

    params = load_config(str(ROOT / "training_config" / name),
                         ext_vars={"TRANSFORMER_MODEL": tiny_bert, "TRANSFORMER_DIM": "16"}).as_dict()
    vocab = Vocabulary.from_instances(SpertJsonReader().read(str(FIXTURES / "train.json")))
    model = construct(Model, params["model"], "model", vocab=vocab)
    assert isinstance(model, CascadeSrn)


@needs_shared_data
@pytest.mark.parametrize("scierc_format", ["spert", "dygie"])
def test_scierc_cascade_reads_either_format(scierc_format, tiny_bert, tmp_path, capsys):
    from joint_ere.commands.train import train_model
    from joint_ere.common import load_config

    path = tmp_path / "overlay.jsonnet"
    path.write_text(f"(import '{ROOT / 'training_config' / 'scierc_cascade_late.jsonnet'}') + "
                    f"{{scierc_format:: '{scierc_format}'}}")
    params = load_config(str(path), ext_vars={"TRANSFORMER_MODEL": tiny_bert, "TRANSFORMER_DIM": "16"})
    assert params["dataset_reader"]["type"] == {"spert": "spert_json", "dygie": "dygie"}[scierc_format]
    assert train_model(params, str(tmp_path / "never-written"), dry_run=True) is None
    statistics = json.loads(capsys.readouterr().out)["datasets"]
    assert [(s["sentences"], sum(s["relations"].values())) for s in statistics] == [(1861, 3219), (275, 455)]


# -- early fusion -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fixture_bert(tmp_path_factory):
    """A tiny random BERT whose vocabulary holds every word of the fixtures (lowercased)."""
    return fixture_words_bert(tmp_path_factory.mktemp("fixture_bert"))


def fixture_words_bert(folder):
    words = sorted({token.lower() for path in (FIXTURES / "train.json", FIXTURES / "dev.json")
                    for record in json.loads(path.read_text()) for token in record["tokens"]})
    return save_tiny_bert(folder, ["[PAD]", "[UNK]", "[CLS]", "[SEP]"] + words)


def early_config(bert, markers="entity_and_subject", epochs=3, train=FIXTURES / "train.json",
                 dev=FIXTURES / "dev.json"):
    config = tiny_config(train=train, dev=dev, epochs=epochs)
    transformer = {"type": "pretrained_transformer_mismatched", "model_name": bert}
    config["dataset_reader"]["token_indexers"] = {"bert": transformer}
    config["model"] = {"type": "cascade_srn", "dropout": 0.0,
                       "text_field_embedder": {"token_embedders": {"bert": {**transformer, "pooling": "first"}}},
                       "encoder": dict(SRN3), "fusion": {"type": "early", "markers": markers}}
    config["trainer"]["optimizer"] = {"type": "adam", "lr": 0.003}
    return config


@pytest.mark.parametrize("markers", ["entity_and_subject", "subject"])
def test_early_fusion_overfits_and_its_archive_predicts_without_the_transformer_folder(markers, tmp_path):
    bert = fixture_words_bert(tmp_path / "bert")  # its own copy: the test deletes it
    metrics = train_and_read_metrics(early_config(bert, markers, epochs=60, dev=FIXTURES / "train.json"), tmp_path)
    assert metrics["best_validation_ner_micro_f1"] == 1.0
    assert metrics["best_validation_re_strict_micro_f1"] == 1.0

    shutil.rmtree(bert)  # the archive alone: tokenizer, configuration, and the markers' trained rows
    out = tmp_path / "evaluated.json"
    assert main(["evaluate", str(tmp_path / "run" / "model.tar.gz"), str(FIXTURES / "train.json"),
                 "--output-file", str(out)]) == 0
    evaluated = json.loads(out.read_text())
    assert evaluated["ner_micro_f1"] == 1.0 and evaluated["re_strict_micro_f1"] == 1.0


class CountingEncoder(torch.nn.Module):
    """Wraps a model's encoder and records the batch size of every call."""

    def __init__(self, encoder):
        super().__init__()
        self.inner = encoder
        self.calls = []

    def forward(self, inputs, mask):
        self.calls.append(inputs.size(0))
        return self.inner(inputs, mask)


@pytest.mark.parametrize("markers, training_passes", [("entity_and_subject", 3), ("subject", 2)])
def test_early_fusion_encodes_every_marked_sequence_of_a_batch_together(markers, training_passes, fixture_bert):
    config = early_config(fixture_bert, markers)
    model, vocab = build_transformer_model(config)
    instances = read(config)
    for instance in instances:
        instance.index_fields(vocab)
    batch = batch_instances(instances)
    counting = CountingEncoder(model.encoder)
    model._modules["encoder"] = counting
    model.train()
    model(**batch)
    gold_entities = sum(len(instance.document.entities) for instance in instances)
    # text, then text* (one per sentence), then text** (one per sentence and gold entity): one pass each
    expected = [len(instances)] * (training_passes - 1) + [gold_entities]
    assert counting.calls == expected

    model.eval()
    model.fusion.inference_batch_size = 2
    model.subject_head.thresholds = (0.0, 0.0, 0.0)  # every span a subject: the most sequences there can be
    counting.calls.clear()
    with torch.no_grad():
        model(tokens=batch["tokens"], metadata=batch["metadata"])  # no gold: the cascade alone
    sentences = len(instances)
    subjects = sum(len(instance) * (len(instance) + 1) // 2 for instance in instances)
    assert counting.calls[0] == sentences  # the plain text, then text* and text** in passes of 2 sequences
    assert sum(counting.calls[1:]) == subjects + (0 if markers == "subject" else sentences)
    assert max(counting.calls[1:]) == 2


def build_transformer_model(config):
    vocab = Vocabulary.from_instances(read(config))
    return construct(Model, config["model"], "model", vocab=vocab), vocab


def test_early_fusion_needs_one_transformer_embedder():
    config = cascade_config(fused=False)
    config["model"]["fusion"] = {"type": "early"}
    with pytest.raises(ConfigurationError, match="model.fusion: early fusion writes its markers as") as error:
        build(config)
    assert "tokens: Embedding" in str(error.value) and "token_characters: TokenCharactersEncoder" in str(error.value)
    config["model"]["fusion"] = {"type": "early", "markers": "entity"}
    with pytest.raises(ConfigurationError, match="model.fusion.markers: 'entity' is not one of"):
        build(config)


def test_early_fusion_refuses_a_frozen_transformer_and_a_tokenizer_that_moved_its_markers(fixture_bert):
    config = early_config(fixture_bert)
    config["model"]["text_field_embedder"]["token_embedders"]["bert"]["train_parameters"] = False
    with pytest.raises(ConfigurationError, match="token_embedders.bert.train_parameters is false"):
        build_transformer_model(config)
    model, _ = build_transformer_model(early_config(fixture_bert))
    state = model.state_dict()
    state["fusion.marker_ids"] = state["fusion.marker_ids"] + 1  # as if the tokenizer had grown since training
    with pytest.raises(ConfigurationError, match="the archive's text markers had wordpiece ids"):
        model.load_state_dict(state)
    del state["fusion.marker_ids"]  # weights saved before the ids were: loaded as they are
    model.load_state_dict(state)


def test_se_and_soe_of_one_batch_share_the_entity_tags(monkeypatch):
    import joint_ere.modules.fusion.late as late

    calls = []
    original = late.entity_tags
    monkeypatch.setattr(late, "entity_tags", lambda *args: calls.append(args) or original(*args))
    model, _ = build(cascade_config())
    states = {name: torch.randn(1, 6, 24) for name in ("e", "s", "o", "es", "eo", "so", "eso")}
    text = EncodedText({}, torch.ones(1, 6, dtype=torch.bool), states, encode=None)
    entities = [[(0, 2, 1)]]
    model.fusion.subject_states(text, entities)
    model.fusion.object_states(text, entities, [0], [(0, 2)])
    model.fusion.subject_states(text, [[(3, 4, 0)]])  # other entities: built again
    assert len(calls) == 2
