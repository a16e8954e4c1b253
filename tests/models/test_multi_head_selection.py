import json
import random

import pytest
import torch
from allennlp_light.modules import ConditionalRandomField
from allennlp_light.modules.conditional_random_field.conditional_random_field import allowed_transitions

from joint_ere.commands.train import train_model
from joint_ere.common import Params
from joint_ere.data import Vocabulary
from joint_ere.modules.tagging import CrfTagDecoder, PerTypeTagScheme, SoftmaxTagDecoder, TagScheme
from tests.conftest import FIXTURES, tiny_config


@pytest.mark.parametrize("encoding", ["BIO", "BIOUL"])
def test_spans_to_tags_and_back(encoding):
    scheme = TagScheme(["Peop", "Org"], encoding)
    entities = torch.tensor([[[0, 2, 0], [3, 4, 1], [5, 8, 1]], [[1, 2, 0], [-1, -1, -1], [-1, -1, -1]]])
    tags = scheme.spans_to_tags(entities, 9)
    names = [[scheme.tags[t] for t in row] for row in tags.tolist()]
    if encoding == "BIO":
        assert names[0] == ["B-Peop", "I-Peop", "O", "B-Org", "O", "B-Org", "I-Org", "I-Org", "O"]
    else:
        assert names[0] == ["B-Peop", "L-Peop", "O", "U-Org", "O", "B-Org", "I-Org", "L-Org", "O"]
    assert scheme.tags_to_spans(tags[0].tolist()) == [(0, 2, 0), (3, 4, 1), (5, 8, 1)]
    assert scheme.tags_to_spans(tags[1].tolist()) == [(1, 2, 0)]


def test_overlapping_gold_entities_keep_the_first_and_longest():
    scheme = TagScheme(["A"], "BIO")
    tags = scheme.spans_to_tags(torch.tensor([[[1, 3, 0], [0, 4, 0], [2, 3, 0]]]), 5)
    assert scheme.tags_to_spans(tags[0].tolist()) == [(0, 4, 0)]


def test_lenient_decoding_of_invalid_sequences():
    scheme = TagScheme(["A", "B"], "BIO")
    i_a, i_b, b_a = scheme.tag_id("I", 0), scheme.tag_id("I", 1), scheme.tag_id("B", 0)
    assert scheme.tags_to_spans([i_a, i_a, i_b, 0, b_a]) == [(0, 2, 0), (2, 3, 1), (4, 5, 0)]


def test_per_type_tags_let_entities_of_different_types_overlap():
    """"lithium intoxication" (an adverse effect) holds "lithium" (a drug): one sequence per type tags both; two
    entities of one type still exclude each other (the first and longest stays)."""
    scheme = PerTypeTagScheme(["Drug", "AE"], "BIO")
    entities = torch.tensor([[[2, 4, 1], [2, 3, 0], [5, 6, 0], [5, 7, 0]],
                             [[0, 1, -1], [1, 3, 1], [-1, -1, -1], [-1, -1, -1]]])  # an unknown type, padding
    tags = scheme.spans_to_tags(entities, 8)
    assert tags.shape == (2, 8, 2)
    assert tags[1, :, 0].tolist() == [0] * 8 and tags[1, :, 1].tolist() == [0, 1, 2, 0, 0, 0, 0, 0]
    tags = tags[:1]
    names = [[scheme.sequence_tags[t] for t in column] for column in tags[0].t().tolist()]
    assert names[0] == ["O", "O", "B-entity", "O", "O", "B-entity", "I-entity", "O"]  # drugs: 5-7 beats 5-6
    assert names[1] == ["O", "O", "B-entity", "I-entity", "O", "O", "O", "O"]  # adverse effects
    probabilities = torch.nn.functional.one_hot(tags, 3).float()
    spans, found = scheme.decode_entities(tags, probabilities, [8], {0: "Drug", 1: "AE"})
    assert spans == [[(2, 3, 0), (2, 4, 1), (5, 7, 0)]]
    assert [(e.type, e.start, e.end, e.score) for e in found[0]] == [("Drug", 2, 3, 1.0), ("AE", 2, 4, 1.0),
                                                                     ("Drug", 5, 7, 1.0)]
    embedding = torch.nn.Embedding(len(scheme), 4)
    assert len(scheme) == 6  # O, B, I for each of the two types
    expected = embedding(tags[..., 0]) + embedding(tags[..., 1] + 3)
    torch.testing.assert_close(scheme.embed(embedding, tags), expected)


@pytest.mark.parametrize("decoder_class", [CrfTagDecoder, SoftmaxTagDecoder])
def test_a_per_type_decoder_is_one_decoder_over_every_types_sequence(decoder_class):
    """Loss and best tags of the (B, T, K, tags) logits are the one-sequence decoder's, type by type."""
    torch.manual_seed(0)
    vocab = Vocabulary()
    for label in ("Drug", "AE", "Other"):
        vocab.add_token_to_namespace(label, "entity_labels")
    decoder = decoder_class(6, vocab, per_type=True)
    if decoder_class is CrfTagDecoder:
        for parameter in (decoder.crf.transitions, decoder.crf.start_transitions, decoder.crf.end_transitions):
            torch.nn.init.normal_(parameter)
    logits = decoder(torch.randn(4, 7, 6))
    assert logits.shape == (4, 7, 3, 3)
    mask = torch.arange(7) < torch.tensor([7, 3, 1, 5]).unsqueeze(1)
    tags = torch.randint(0, 3, (4, 7, 3)) * mask.unsqueeze(-1)
    decoder.per_type = False  # the same decoder over one type's sequences at a time
    expected_loss = sum(decoder.loss(logits[:, :, k], tags[:, :, k], mask) for k in range(3))
    expected_tags = torch.stack([decoder.decode(logits[:, :, k], mask) for k in range(3)], dim=2)
    decoder.per_type = True
    torch.testing.assert_close(decoder.loss(logits, tags, mask), expected_loss)
    assert torch.equal(decoder.decode(logits, mask), expected_tags)


def test_batched_viterbi_matches_allennlp_light():
    torch.manual_seed(0)
    labels = ["O", "B-A", "I-A", "B-B", "I-B"]
    crf = ConditionalRandomField(5, allowed_transitions("BIO", dict(enumerate(labels))))
    torch.nn.init.normal_(crf.transitions)
    torch.nn.init.normal_(crf.start_transitions)
    torch.nn.init.normal_(crf.end_transitions)
    logits = torch.randn(6, 9, 5)
    mask = torch.zeros(6, 9, dtype=torch.bool)
    for row, length in enumerate([9, 1, 4, 7, 2, 9]):
        mask[row, :length] = True
    expected = [tags for tags, _ in crf.viterbi_tags(logits, mask)]
    decoder = CrfTagDecoder.__new__(CrfTagDecoder)
    torch.nn.Module.__init__(decoder)
    decoder.crf, decoder.per_type = crf, False
    got = decoder.decode(logits, mask)
    for row, tags in enumerate(expected):
        assert got[row, : len(tags)].tolist() == tags
        assert (got[row, len(tags):] == 0).all()


def untrained_model():
    from joint_ere.common.params import construct
    from joint_ere.data import SpertJsonReader
    from joint_ere.models import Model

    config = tiny_config()
    instances = SpertJsonReader().read(str(FIXTURES / "train.json"))
    vocab = Vocabulary.from_instances(instances)
    config["model"]["text_field_embedder"]["token_embedders"].pop("token_characters")
    config["model"]["text_field_embedder"]["token_embedders"]["tokens"].pop("pretrained_file")
    config["model"]["shared_encoder"]["input_size"] = 10
    return construct(Model, config["model"], "model", vocab=vocab)


def test_relation_targets_use_last_tokens():
    entities = torch.tensor([[[0, 2, 0], [3, 5, 1], [6, 7, 2]]])
    relations = torch.tensor([[[0, 1, 1], [1, 2, 0], [-1, -1, -1]]])
    cells = untrained_model().relation_head.gold_cells(entities, relations)
    assert cells.tolist()[:2] == [[0, 1, 4, 1], [0, 4, 6, 0]] and cells[2, 3] == -1  # the padding slot: skipped


def test_long_sentences_are_scored_in_row_blocks_with_the_same_result(monkeypatch):
    """At inference the (T, T, hidden) relation table is built a few rows at a time, and the entity pairs of a
    batch a block at a time: same loss, same relations."""
    from joint_ere.common import blocks

    model = untrained_model().eval()
    torch.manual_seed(0)
    head, tail = torch.randn(2, 9, 16), torch.randn(2, 9, 16)
    mask = torch.tensor([[True] * 9, [True] * 6 + [False] * 3])
    gold = torch.tensor([[0, 1, 4, 1], [0, 8, 2, 0], [1, 5, 0, 2]])
    spans = [[(0, 2, 0), (3, 5, 1), (5, 6, 0), (7, 9, 1)], [(0, 2, 0), (3, 5, 1)]]
    selection = model.relation_head
    torch.nn.init.zeros_(selection.scorer.bias)  # an untrained model: some pairs above 0.5, some below
    whole_loss = selection.loss(head, tail, gold, mask)
    whole_relations = selection.entity_relations(head, tail, spans, 0.5)
    # the same, pair by pair
    for row, row_spans in enumerate(spans):
        expected = []
        for i, (_, head_end, _) in enumerate(row_spans):
            for j, (_, tail_end, _) in enumerate(row_spans):
                scores = selection.scorer(torch.relu(head[row, head_end - 1] + tail[row, tail_end - 1]))
                expected += [(i, j, r, p) for r, p in enumerate(torch.sigmoid(scores).tolist()) if p > 0.5 and i != j]
        assert [r[:3] for r in whole_relations[row]] == [r[:3] for r in expected]
        torch.testing.assert_close([r[3] for r in whole_relations[row]], [r[3] for r in expected])
    assert whole_relations[0] and whole_relations[1]
    monkeypatch.setattr(blocks, "CELLS_AT_ONCE", 4 * 16 * 2)
    assert len(blocks.row_blocks(2, 9, 9, 16, training=False)) == 9  # the loss: one token row a block
    assert len(blocks.row_blocks(2, 4, 4, 16, training=False)) == 4  # decoding: one head entity a block
    torch.testing.assert_close(selection.loss(head, tail, gold, mask), whole_loss)
    blocked = selection.entity_relations(head, tail, spans, 0.5)
    assert [[r[:3] for r in row] for row in blocked] == [[r[:3] for r in row] for row in whole_relations]
    torch.testing.assert_close([[r[3] for r in row] for row in blocked],
                               [[r[3] for r in row] for row in whole_relations])
    assert selection.entity_relations(head, tail, [[], []], 0.5) == [[], []]
    # one sentence with many entities among sentences with few: scored sentence by sentence, same result
    many = [[(k, k + 1, 0) for k in range(9)], [(0, 1, 0)], [(0, 1, 0)], [(2, 3, 1)], [], []]
    batch_of_six = torch.randn(6, 9, 16), torch.randn(6, 9, 16)
    one_by_one = [selection.entity_relations(h[None], t[None], [s], 0.5)[0] for h, t, s in zip(*batch_of_six, many)]
    assert selection.entity_relations(*batch_of_six, many, 0.5) == one_by_one


def overfit_config(tmp_path, decoder):
    config = tiny_config(train=FIXTURES / "train.json", dev=FIXTURES / "train.json", epochs=100,
                         ner_decoder=decoder, dropout=0.0)
    config["trainer"]["validation_metric"] = "+re_strict_micro_f1"
    config["trainer"]["patience"] = None
    return config


@pytest.mark.parametrize("decoder", [{"type": "crf", "label_encoding": "BIO"},
                                     {"type": "softmax", "label_encoding": "BIOUL"}])
def test_overfits_a_few_sentences_to_f1_one(tmp_path, decoder):
    random.seed(0)
    torch.manual_seed(0)
    config = overfit_config(tmp_path, decoder)
    train_model(Params(config), str(tmp_path / "run"))
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())  # the last epoch's
    assert metrics["validation_ner_micro_f1"] == 1.0
    assert metrics["validation_ner_macro_f1"] == 1.0
    assert metrics["validation_re_strict_micro_f1"] == 1.0
    assert metrics["validation_re_strict_macro_f1"] == 1.0


def test_the_frozen_transformer_ade_config_adds_fixed_features_to_glove_and_characters(tiny_bert, monkeypatch):
    from joint_ere.common import load_config
    from joint_ere.common.params import construct
    from joint_ere.data import DatasetReader, batch_instances
    from joint_ere.models import Model
    from tests.conftest import ROOT

    monkeypatch.setenv("GLOVE_50D", str(FIXTURES / "glove_tiny.10d.txt"))
    params = load_config(str(ROOT / "training_config" / "ade_frozen_transformer.jsonnet"),
                         ext_vars={"TRANSFORMER_MODEL": tiny_bert, "TRANSFORMER_DIM": "16"}).as_dict()
    assert sorted(params["dataset_reader"]["token_indexers"]) == ["token_characters", "tokens", "transformer"]
    assert params["trainer"]["num_epochs"] == 50  # the rest is ade.jsonnet
    assert "adversarial" not in params["trainer"]  # measured without it
    embedders = params["model"]["text_field_embedder"]["token_embedders"]
    embedders["tokens"].pop("pretrained_file")  # 10-d fixture vectors would not fit the config's 50
    reader = construct(DatasetReader, params["dataset_reader"], "dataset_reader")
    instances = reader.read(str(FIXTURES / "train.json"))
    vocab = Vocabulary.from_instances(instances)
    model = construct(Model, params["model"], "model", vocab=vocab).train()
    assert model.shared_encoder.get_input_dim() == 50 + 50 + 16
    transformer = model.text_field_embedder.token_embedders["transformer"]
    assert not transformer.transformer.training
    for instance in instances:
        instance.index_fields(vocab)
    model(**batch_instances(instances))["loss"].backward()
    assert all(p.grad is None for p in transformer.transformer.parameters())
    assert transformer.scalar_mix.gamma.grad is not None


NESTED = [  # ADE-like: a drug inside an adverse effect, and the effect's relation to that drug
    {"tokens": ["He", "developed", "lithium", "intoxication", "."],
     "entities": [{"type": "AE", "start": 2, "end": 4}, {"type": "Drug", "start": 2, "end": 3}],
     "relations": [{"type": "Adverse_Effect", "head": 0, "tail": 1}]},
    {"tokens": ["Severe", "rash", "after", "penicillin", "."],
     "entities": [{"type": "AE", "start": 0, "end": 2}, {"type": "Drug", "start": 3, "end": 4}],
     "relations": [{"type": "Adverse_Effect", "head": 0, "tail": 1}]},
    {"tokens": ["Acute", "cisplatin", "nephrotoxicity", "was", "seen", "."],
     "entities": [{"type": "AE", "start": 0, "end": 3}, {"type": "Drug", "start": 1, "end": 2}],
     "relations": [{"type": "Adverse_Effect", "head": 0, "tail": 1}]},
    {"tokens": ["Aspirin", "caused", "bleeding", "."],
     "entities": [{"type": "Drug", "start": 0, "end": 1}, {"type": "AE", "start": 2, "end": 3}],
     "relations": [{"type": "Adverse_Effect", "head": 1, "tail": 0}]},
]


def test_per_type_tagging_learns_nested_entities_and_their_relations(tmp_path):
    """With one tag sequence per type the model fits nested entities and the relations between them (F1 = 1.0;
    one sequence for all types cannot even tag the drugs inside adverse effects), and its archive predicts them."""
    from joint_ere.predictors import Predictor

    random.seed(0)
    torch.manual_seed(0)
    data = tmp_path / "nested.json"
    data.write_text(json.dumps(NESTED))
    config = tiny_config(train=data, dev=data, epochs=120, dropout=0.0,
                         ner_decoder={"type": "crf", "label_encoding": "BIO", "per_type": True})
    config["trainer"].update({"validation_metric": "+re_strict_micro_f1", "patience": None})
    train_model(Params(config), str(tmp_path / "run"))
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["best_validation_ner_micro_f1"] == 1.0
    assert metrics["best_validation_re_strict_micro_f1"] == 1.0
    predictor = Predictor.from_path(str(tmp_path / "run" / "model.tar.gz"), cuda_device=-1)
    predicted = predictor.predict_json({"tokens": NESTED[0]["tokens"]})
    assert sorted((e["type"], e["start"], e["end"]) for e in predicted["entities"]) == [("AE", 2, 4), ("Drug", 2, 3)]
    assert [(r["type"], predicted["entities"][r["head"]]["type"]) for r in predicted["relations"]] == \
        [("Adverse_Effect", "AE")]
    single = TagScheme(["AE", "Drug"], "BIO")  # one sequence: the drug inside the effect is lost
    assert single.tags_to_spans(single.spans_to_tags(torch.tensor([[[2, 4, 0], [2, 3, 1]]]), 5)[0].tolist()) == \
        [(2, 4, 0)]
