import random

import torch

from joint_ere.data import (BucketBatchSampler, DataLoader, SingleIdTokenIndexer, SpertJsonReader,
                            TokenCharactersIndexer, Vocabulary)
from tests.conftest import FIXTURES


def read(**indexers):
    reader = SpertJsonReader(token_indexers=indexers or None)
    return reader.read(str(FIXTURES / "train.json"))


def test_vocabulary_namespaces_and_round_trip(tmp_path):
    instances = read(tokens=SingleIdTokenIndexer(lowercase_tokens=True), chars=TokenCharactersIndexer())
    vocab = Vocabulary.from_instances(instances)
    assert vocab.get_token_from_index(0, "tokens") == "@@PADDING@@"
    assert vocab.get_token_from_index(1, "tokens") == "@@UNKNOWN@@"
    assert vocab.get_token_index("never-seen", "tokens") == 1
    # label namespaces have neither padding nor unknown; an unseen label maps to -1
    assert vocab.get_vocab_size("entity_labels") == 3
    assert vocab.get_token_index("NotALabel", "entity_labels") == -1
    # most frequent first (the fixture has 6 Loc, 5 Org, 4 Peop)
    assert [vocab.get_token_from_index(i, "entity_labels") for i in range(3)] == ["Loc", "Org", "Peop"]
    vocab.save_to_files(str(tmp_path / "vocabulary"))
    assert Vocabulary.from_files(str(tmp_path / "vocabulary")) == vocab


def test_ids_go_by_frequency_then_alphabet_and_max_vocab_size_keeps_the_most_frequent():
    from collections import Counter

    counts = {"entity_labels": Counter({"Alpha": 2, "Beta": 2, "Zeta": 5, "Gamma": 1}),
              "tokens": Counter({"zebra": 3, "apple": 1, "mango": 3, "kiwi": 2})}
    vocab = Vocabulary.from_counter(counts, max_vocab_size={"tokens": 2})
    assert [vocab.get_token_from_index(i, "entity_labels") for i in range(4)] == ["Zeta", "Alpha", "Beta", "Gamma"]
    assert [vocab.get_token_from_index(i, "tokens") for i in range(4)] == [
        "@@PADDING@@", "@@UNKNOWN@@", "mango", "zebra"]
    assert vocab.get_vocab_size("tokens") == 4


def test_min_count_drops_rare_words():
    vocab = Vocabulary.from_instances(read(), min_count={"tokens": 2})
    assert vocab.get_token_index("Boston") > 1
    assert vocab.get_token_index("weather") == 1


def test_padded_tensors_and_masks():
    instances = read(tokens=SingleIdTokenIndexer(), token_characters=TokenCharactersIndexer(min_padding_length=5))
    vocab = Vocabulary.from_instances(instances)
    loader = DataLoader(instances, batch_size=3)
    loader.index_with(vocab)
    batch = next(iter(loader))
    ids = batch["tokens"]["tokens"]["tokens"]
    chars = batch["tokens"]["token_characters"]["token_characters"]
    assert ids.shape == (3, 9)  # the longest of the first three sentences
    assert (ids[1, 6:] == 0).all() and (ids[1, :6] > 1).all()
    assert chars.shape[:2] == (3, 9) and chars.shape[2] >= 5
    # entities (B, E, 3) with -1 padding; label ids from the vocabulary
    assert batch["entities"][1].tolist()[0] == [0, 2, vocab.get_token_index("Peop", "entity_labels")]
    assert batch["entities"][1, 2].tolist() == [-1, -1, -1]
    assert batch["relations"][0].tolist()[0] == [0, 1, vocab.get_token_index("Work_For", "relation_labels")]


def test_bucket_batches_group_similar_lengths_and_cover_everything():
    instances = read()
    random.seed(1)
    sampler = BucketBatchSampler(batch_size=2, padding_noise=0.0, shuffle=True)
    batches = sampler.get_batch_indices(instances)
    assert sorted(i for b in batches for i in b) == list(range(len(instances)))
    lengths = sorted(len(i) for i in instances)
    spans = sorted(tuple(sorted(len(instances[i]) for i in b)) for b in batches)
    assert spans == sorted(tuple(lengths[i:i + 2]) for i in range(0, len(lengths), 2))


def test_loader_len_and_shuffle_is_seeded():
    instances = read()
    vocab = Vocabulary.from_instances(instances)
    loader = DataLoader(instances, batch_size=3, shuffle=True)
    loader.index_with(vocab)
    assert len(loader) == 3
    random.seed(5)
    first = [b["tokens"]["tokens"]["tokens"].tolist() for b in loader]
    random.seed(5)
    assert first == [b["tokens"]["tokens"]["tokens"].tolist() for b in loader]
    assert isinstance(next(iter(loader))["entities"], torch.Tensor)
