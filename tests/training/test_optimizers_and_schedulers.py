import gzip

import pytest
import torch

from joint_ere.common import ConfigurationError, DataError, construct
from joint_ere.data import Vocabulary
from joint_ere.modules import Embedding
from joint_ere.training import LearningRateScheduler, Optimizer


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = torch.nn.Linear(2, 2)
        self.head = torch.nn.Linear(2, 1)


def test_parameter_groups_by_regex():
    model = Tiny()
    optimizer = construct(Optimizer, {"type": "adamw", "lr": 0.1, "weight_decay": 0.01,
                                      "parameter_groups": [[["^encoder\\.weight$"], {"lr": 0.01, "weight_decay": 0}],
                                                           [["bias"], {"requires_grad": False}]]},
                          "trainer.optimizer", model_parameters=list(model.named_parameters()))
    groups = optimizer.param_groups
    assert len(groups) == 2  # the frozen biases leave no group behind
    assert groups[0]["lr"] == 0.01 and groups[0]["weight_decay"] == 0
    assert groups[1]["lr"] == 0.1 and groups[1]["params"] == [model.head.weight]
    assert not model.encoder.bias.requires_grad


def test_grouping_leaves_frozen_parameters_frozen():
    """A frozen parameter (a frozen transformer, a `trainable: false` embedding) stays frozen in a group that says
    nothing of requires_grad, also the default last group; a group's explicit setting applies."""
    model = Tiny()
    model.head.weight.requires_grad_(False)
    model.encoder.weight.requires_grad_(False)
    optimizer = construct(Optimizer, {"type": "adam", "lr": 0.1,
                                      "parameter_groups": [[["^head\\."], {"lr": 0.01}],
                                                           [["^encoder\\.weight$"], {"requires_grad": True}]]},
                          "trainer.optimizer", model_parameters=list(model.named_parameters()))
    assert not model.head.weight.requires_grad
    assert model.encoder.weight.requires_grad
    trained = [p for group in optimizer.param_groups for p in group["params"]]
    assert all(p is not model.head.weight for p in trained) and any(p is model.encoder.weight for p in trained)


def test_parameter_group_matching_nothing_is_an_error():
    with pytest.raises(ConfigurationError, match="match no parameter"):
        construct(Optimizer, {"type": "sgd", "lr": 0.1, "parameter_groups": [[["nope"], {}]]}, "trainer.optimizer",
                  model_parameters=list(Tiny().named_parameters()))


def test_linear_with_warmup_schedule():
    model = Tiny()
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    scheduler = construct(LearningRateScheduler, {"type": "linear_with_warmup", "warmup_steps": 3},
                          "trainer.learning_rate_scheduler", optimizer=optimizer, num_epochs=2,
                          num_steps_per_epoch=5)
    lrs = []
    for _ in range(10):
        lrs.append(optimizer.param_groups[0]["lr"])
        scheduler.step_batch()
    assert lrs[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert lrs[4:] == pytest.approx([6 / 7, 5 / 7, 4 / 7, 3 / 7, 2 / 7, 1 / 7])
    state = scheduler.state_dict()
    optimizer.param_groups[0]["lr"] = 123.0
    scheduler.load_state_dict(state)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0)


def test_reduce_on_plateau_halves_after_patience():
    optimizer = torch.optim.SGD(Tiny().parameters(), lr=1.0)
    scheduler = construct(LearningRateScheduler, {"type": "reduce_on_plateau", "patience": 1, "factor": 0.5},
                          "trainer.learning_rate_scheduler", optimizer=optimizer, mode="max")
    for metric in (0.5, 0.6, 0.6, 0.6):
        scheduler.step(metric)
    assert optimizer.param_groups[0]["lr"] == 0.5


@pytest.mark.parametrize("compressed", [False, True])
def test_pretrained_embeddings_keep_vocabulary_words(tmp_path, compressed):
    vocab = Vocabulary()
    for word in ("the", "cat", "zyx"):
        vocab.add_token_to_namespace(word)
    lines = "the 1 2 3\nunrelated 9 9 9\ncat 4 5 6\n"
    path = tmp_path / ("vectors.txt.gz" if compressed else "vectors.txt")
    if compressed:
        with gzip.open(path, "wt") as handle:
            handle.write(lines)
    else:
        path.write_text(lines)
    embedding = Embedding(vocab, 3, pretrained_file=str(path))
    assert embedding.weight[vocab.get_token_index("cat")].tolist() == [4, 5, 6]
    assert embedding.weight[0].tolist() == [0, 0, 0]
    assert embedding.coverage == pytest.approx(2 / 3)


def test_pretrained_dimension_mismatch_names_the_line(tmp_path):
    vocab = Vocabulary()
    vocab.add_token_to_namespace("cat")
    path = tmp_path / "v.txt"
    path.write_text("cat 1 2\n")
    with pytest.raises(DataError, match="line 1: 2 numbers"):
        Embedding(vocab, 3, pretrained_file=str(path))


def test_word_dropout_only_in_training():
    vocab = Vocabulary()
    for word in ("a", "b"):
        vocab.add_token_to_namespace(word)
    embedding = Embedding(vocab, 4, word_dropout=1.0)
    tokens = torch.tensor([[2, 3, 0]])
    embedding.eval()
    assert torch.equal(embedding(tokens)[0, 0], embedding.weight[2])
    embedding.train()
    out = embedding(tokens)
    assert torch.equal(out[0, 0], embedding.weight[1]) and torch.equal(out[0, 1], embedding.weight[1])
    assert torch.equal(out[0, 2], torch.zeros(4))


def test_character_encoder_equals_encoding_every_position():
    from allennlp_light.modules import TimeDistributed

    from joint_ere.modules import TokenEmbedder

    torch.manual_seed(0)
    vocab = Vocabulary()
    for char in "abcdefghij":
        vocab.add_token_to_namespace(char, "token_characters")
    for encoder in ({"type": "lstm", "input_size": 5, "hidden_size": 4, "bidirectional": True},
                    {"type": "cnn", "embedding_dim": 5, "num_filters": 6, "ngram_filter_sizes": [2]}):
        embedder = construct(TokenEmbedder, {"type": "character_encoding", "encoder": encoder,
                                             "embedding": {"embedding_dim": 5, "vocab_namespace": "token_characters"}},
                             "token_embedders.chars", vocab=vocab)
        words = torch.randint(2, 12, (7, 4))
        words[:, 3:] = 0
        chars = words[torch.randint(0, 7, (3, 9))]
        chars[1, 6:] = 0  # padding positions
        expected = TimeDistributed(embedder._encoder)(TimeDistributed(embedder._embedding)(chars), chars != 0)
        assert torch.allclose(embedder(chars), expected, atol=1e-6)


def test_slanted_triangular_schedule():
    optimizer = torch.optim.SGD(Tiny().parameters(), lr=32.0)
    scheduler = construct(LearningRateScheduler, {"type": "slanted_triangular", "cut_frac": 0.25, "ratio": 32},
                          "trainer.learning_rate_scheduler", optimizer=optimizer, num_epochs=2, num_steps_per_epoch=4)
    lrs = []
    for _ in range(9):
        lrs.append(optimizer.param_groups[0]["lr"])
        scheduler.step_batch()
    # 8 steps, peak after 2: 1 -> 16.5 -> 32, then down by 31/6 a step to 1
    assert lrs[:3] == pytest.approx([1.0, 16.5, 32.0])
    assert lrs[3:] == pytest.approx([32 - 31 / 6 * k for k in range(1, 7)])
