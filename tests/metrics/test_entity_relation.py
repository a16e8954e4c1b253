import pytest

from joint_ere.data import Document, Entity, Relation
from joint_ere.metrics import EntityRelationMetrics

TOKENS = ["John", "Smith", "works", "for", "Acme", "in", "Boston", "."]


def doc(entities, relations=()):
    return Document(TOKENS, [Entity(t, s, e) for t, s, e in entities], [Relation(t, h, tl) for t, h, tl in relations])


GOLD = doc([("Peop", 0, 2), ("Org", 4, 5), ("Loc", 6, 7)], [("Work_For", 0, 1), ("OrgBased_In", 1, 2)])


def test_perfect_prediction_scores_one():
    metric = EntityRelationMetrics()
    metric([GOLD], [GOLD])
    values = metric.get_metric()
    for task in ("ner", "re", "re_strict"):
        assert values[f"{task}_micro_f1"] == 1.0
        assert values[f"{task}_macro_f1"] == 1.0


def test_hand_computed_values():
    # NER: Peop right; "Acme" typed Loc (wrong type); Boston right; one spurious Org at "John".
    predicted = doc([("Peop", 0, 2), ("Loc", 4, 5), ("Loc", 6, 7), ("Org", 0, 1)],
                    [("Work_For", 0, 1), ("OrgBased_In", 1, 2), ("Work_For", 3, 2)])
    metric = EntityRelationMetrics()
    metric([predicted], [GOLD])
    v = metric.get_metric(per_type=True)
    # ner: tp=2 (Peop, Loc Boston), fp=2 (Loc Acme, Org John), fn=1 (Org Acme)
    assert v["ner_micro_precision"] == pytest.approx(2 / 4)
    assert v["ner_micro_recall"] == pytest.approx(2 / 3)
    assert v["ner_micro_f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    # per type: Peop 1/1/1; Loc p=1/2 r=1 f=2/3; Org p=0 r=0 f=0 -> macro f1 = (1 + 2/3 + 0) / 3
    assert v["ner_Loc_f1"] == pytest.approx(2 / 3)
    assert v["ner_Org_f1"] == 0.0
    assert v["ner_macro_f1"] == pytest.approx((1 + 2 / 3 + 0) / 3)
    # RE boundaries ignore entity types: both gold relations are found; one spurious Work_For.
    assert v["re_micro_precision"] == pytest.approx(2 / 3)
    assert v["re_micro_recall"] == 1.0
    assert v["re_Work_For_f1"] == pytest.approx(2 * 0.5 * 1 / 1.5)
    assert v["re_OrgBased_In_f1"] == 1.0
    # RE+ also needs both entity types: the Work_For tail and the OrgBased_In head are typed Loc, not Org.
    assert v["re_strict_micro_precision"] == 0.0
    assert v["re_strict_micro_recall"] == 0.0
    assert v["re_strict_micro_f1"] == 0.0


def test_counts_accumulate_and_reset():
    metric = EntityRelationMetrics()
    metric([GOLD], [GOLD])
    metric([doc([])], [GOLD])
    v = metric.get_metric(reset=True)
    assert v["ner_micro_precision"] == 1.0
    assert v["ner_micro_recall"] == pytest.approx(0.5)
    assert metric.get_metric()["ner_micro_f1"] == 0.0


def test_duplicates_count_once_and_unknown_gold_type_is_a_miss():
    predicted = doc([("Peop", 0, 2), ("Peop", 0, 2)])
    gold = doc([("Peop", 0, 2), ("NeverSeen", 4, 5)])
    metric = EntityRelationMetrics()
    metric([predicted], [gold])
    v = metric.get_metric(per_type=True)
    assert v["ner_micro_precision"] == 1.0
    assert v["ner_micro_recall"] == 0.5
    assert v["ner_NeverSeen_recall"] == 0.0
    assert v["ner_macro_f1"] == pytest.approx(0.5)


def test_mismatched_lengths_raise():
    with pytest.raises(ValueError):
        EntityRelationMetrics()([GOLD], [GOLD, GOLD])


def test_ner_split_into_in_triple_and_out_of_triple_entities():
    """Cascade-SRN's Table 3: groups by the span's role in gold. Gold: John Smith and Acme are relation arguments,
    Boston and "works" are not."""
    gold = doc([("Peop", 0, 2), ("Org", 4, 5), ("Loc", 6, 7), ("Misc", 2, 3), ("Misc", 7, 8)], [("Work_For", 0, 1)])
    # in-triple: Peop right, Acme typed Loc (fp + fn); out-of-triple: Boston right, "works" and "." missed (fn),
    # a spurious Org at "for" (fp, a span gold has no entity at)
    predicted = doc([("Peop", 0, 2), ("Loc", 4, 5), ("Loc", 6, 7), ("Org", 3, 4)])
    metric = EntityRelationMetrics()
    metric([predicted], [gold])
    v = metric.get_metric(per_type=True)
    assert (v["ner_in_triple_precision"], v["ner_in_triple_recall"]) == (0.5, 0.5)
    assert (v["ner_out_of_triple_precision"], v["ner_out_of_triple_recall"]) == (0.5, pytest.approx(1 / 3))
    assert v["ner_in_triple_f1"] == 0.5 and v["ner_out_of_triple_f1"] == pytest.approx(0.4)
    assert "ner_in_triple_f1" not in metric.get_metric()  # only with the per-type breakdown


def untyped(entities, relations=()):
    return doc([("Entity", s, e) for s, e in entities], relations)


def test_partial_and_exact_match_on_untyped_entities():
    """NYT / WebNLG: one entity type; partial match compares the arguments' last tokens, exact match both spans."""
    gold = untyped([(0, 2), (4, 5), (6, 7)], [("works_for", 0, 1), ("based_in", 1, 2), ("lives_in", 0, 2)])
    predicted = untyped([(1, 2), (4, 5), (5, 7), (3, 5)],
                        [("works_for", 0, 1),  # "Smith" for "John Smith": partial only
                         ("based_in", 1, 2),  # "in Boston" for "Boston": partial only
                         ("based_in", 3, 2),  # "for Acme" for "Acme", and the same last tokens again: a duplicate
                         ("lives_in", 1, 2)])  # wrong head: neither
    metric = EntityRelationMetrics(typed_entities=False)
    metric([predicted], [gold])
    v = metric.get_metric(per_type=True)
    assert not any(key.startswith("re_strict") for key in v)  # RE+ is RE here: not printed twice
    # partial: predicted {(1,4,works_for), (4,6,based_in), (4,6,lives_in)} (the duplicate counts once)
    # gold {(1,4,works_for), (4,6,based_in), (1,6,lives_in)}: tp 2, fp 1, fn 1
    assert (v["re_partial_micro_precision"], v["re_partial_micro_recall"]) == (pytest.approx(2 / 3),
                                                                                pytest.approx(2 / 3))
    assert v["re_partial_works_for_f1"] == 1.0 and v["re_partial_lives_in_f1"] == 0.0
    # exact: only the spans as given count; no predicted relation has both spans right
    assert (v["re_micro_precision"], v["re_micro_recall"], v["re_micro_f1"]) == (0.0, 0.0, 0.0)
    assert v["ner_micro_precision"] == pytest.approx(1 / 4) and v["ner_micro_recall"] == pytest.approx(1 / 3)


def test_models_pick_the_tasks_from_their_entity_vocabulary():
    from joint_ere.data import Vocabulary
    from joint_ere.models.model import Model

    def tasks(types):
        vocab = Vocabulary()
        for name in types:
            vocab.add_token_to_namespace(name, "entity_labels")
        return Model(vocab).metrics.tasks

    assert tasks(["Entity"]) == ("ner", "re", "re_partial")
    assert tasks(["Peop", "Loc"]) == ("ner", "re", "re_strict")
