import json

import pytest
import torch

from joint_ere.common import ConfigurationError, construct
from joint_ere.data import DataLoader, Document, Instance, Vocabulary
from joint_ere.data.token_indexers import PretrainedTransformerMismatchedIndexer
from joint_ere.modules import TokenEmbedder
from joint_ere.modules.transformer_embedder import window_for_position
from tests.conftest import WORDPIECES


def index(model_name, sentences):
    indexer = PretrainedTransformerMismatchedIndexer(model_name)
    instances = [Instance(Document(tokens), {"bert": indexer}) for tokens in sentences]
    loader = DataLoader(instances, batch_size=len(instances))
    loader.index_with(Vocabulary())
    return instances, next(iter(loader))["tokens"]["bert"]


def test_wordpiece_alignment_on_tricky_words(tiny_bert):
    words = ["Unaffable", "\u0000", "Zürich", ",", "John", "\u200b", "qqq"]
    instances, tensors = index(tiny_bert, [words])
    offsets = instances[0].indexed["bert"]["offsets"]
    pieces = instances[0].indexed["bert"]["wordpieces"]
    assert len(offsets) == len(words)
    # contiguous, non-empty, covering every wordpiece in order
    assert offsets[0][0] == 0 and offsets[-1][1] == len(pieces)
    assert all(end > start for start, end in offsets)
    assert all(offsets[i][1] == offsets[i + 1][0] for i in range(len(offsets) - 1))
    assert pieces[offsets[0][0]:offsets[0][1]] == [WORDPIECES.index(p) for p in ("un", "##aff", "##able")]
    assert pieces[offsets[2][0]:offsets[2][1]] == [WORDPIECES.index("zu"), WORDPIECES.index("##rich")]
    # a control character and a zero-width space become no wordpiece: they get [UNK]
    assert pieces[offsets[1][0]:offsets[1][1]] == [WORDPIECES.index("[UNK]")]
    assert pieces[offsets[5][0]:offsets[5][1]] == [WORDPIECES.index("[UNK]")]
    assert tensors["mask"].tolist() == [[True] * len(words)]


def embedder(model_name, **options):
    return construct(TokenEmbedder, {"type": "pretrained_transformer_mismatched", "model_name": model_name,
                                     **options}, "model.text_field_embedder.token_embedders.bert")


@pytest.mark.parametrize("pooling", ["first", "last", "mean"])
def test_pooling_matches_the_model_run_directly(tiny_bert, pooling):
    from transformers import AutoModel

    sentences = [["John", "Smith", "works", "unaffable"], ["Zürich", "."]]
    _, tensors = index(tiny_bert, sentences)
    module = embedder(tiny_bert, pooling=pooling).eval()
    with torch.no_grad():
        words = module(**tensors)
        reference = AutoModel.from_pretrained(tiny_bert).eval()
        ids = torch.tensor([[2, 5, 6, 7, 14, 15, 16, 3]])  # [CLS] john smith works un ##aff ##able [SEP]
        hidden = reference(input_ids=ids).last_hidden_state[0, 1:-1]
    expected_last_word = {"first": hidden[3], "last": hidden[5], "mean": hidden[3:6].mean(0)}[pooling]
    assert words.shape == (2, 4, 16)
    assert torch.allclose(words[0, 0], hidden[0], atol=1e-5)
    assert torch.allclose(words[0, 3], expected_last_word, atol=1e-5)
    assert torch.equal(words[1, 2:], torch.zeros(2, 16))  # padding words


def test_window_choice_holds_every_position_near_its_middle():
    # by hand: windows [0, 4), [2, 6), [4, 8), [6, 10) with middles 2, 4, 6, 8; ties go to the even window
    assert window_for_position(10, 4, 2, 4).tolist() == [0, 0, 0, 0, 1, 2, 2, 2, 3, 3]
    for width, content, stride in [(10, 4, 2), (37, 8, 4), (5, 8, 4), (100, 30, 15)]:
        windows = 1 if width <= content else -(-(width - content) // stride) + 1
        choice = window_for_position(width, content, stride, windows)
        for position, window in enumerate(choice.tolist()):
            holding = [w for w in range(windows) if w * stride <= position < w * stride + content]
            assert window in holding
            distance = [abs(position - (w * stride + content / 2)) for w in holding]
            assert abs(position - (window * stride + content / 2)) == min(distance), (width, position)


def test_long_sentences_use_windows(tiny_bert):
    """Each word of a sentence longer than the model's window has the vector the transformer gives it inside the
    window chosen for it (run directly on that window's wordpieces between [CLS] and [SEP])."""
    from transformers import AutoModel

    long = ["john", "smith", "works", "for", "acme", "in", "boston", "."] * 12  # 96 wordpieces > 64 positions
    _, tensors = index(tiny_bert, [long, ["a", "b"]])
    module = embedder(tiny_bert, max_length=20, pooling="first").eval()
    with torch.no_grad():
        words = module(**tensors)
    assert words.shape == (2, 96, 16) and torch.isfinite(words).all()
    pieces = tensors["token_ids"][0].tolist()
    assert len(pieces) == 96  # one wordpiece a word
    content, stride = 18, 9  # max_length 20 less [CLS] and [SEP]; windows overlap by half
    choice = window_for_position(96, content, stride, 10)
    reference = AutoModel.from_pretrained(tiny_bert).eval()
    for position in (0, 8, 9, 13, 14, 50, 88, 95):
        start = choice[position].item() * stride
        window = [2] + pieces[start:start + content] + [3]
        with torch.no_grad():
            hidden = reference(input_ids=torch.tensor([window])).last_hidden_state[0]
        torch.testing.assert_close(words[0, position], hidden[1 + position - start], atol=1e-5, rtol=1e-5,
                                   msg=f"word {position}")
    # where a sentence fits in one window, windowing changes nothing
    with torch.no_grad():
        short_alone = embedder(tiny_bert, pooling="first").eval()(**index(tiny_bert, [["a", "b"]])[1])
    assert torch.allclose(words[1, :2], short_alone[0], atol=1e-5)


def test_frozen_and_scalar_mix(tiny_bert):
    module = embedder(tiny_bert, train_parameters=False, last_layer_only=False)
    assert not any(p.requires_grad for p in module.transformer.parameters())
    assert all(p.requires_grad for p in module.scalar_mix.parameters())
    _, tensors = index(tiny_bert, [["john", "works"]])
    module.train()
    assert not module.transformer.training  # frozen features: no dropout inside the transformer
    first = module(**tensors)
    first.sum().backward()
    assert module.scalar_mix.gamma.grad is not None
    assert torch.equal(first, module(**tensors))
    trained = embedder(tiny_bert).train()
    assert trained.transformer.training


def count_transformer_calls(module):
    calls = []
    module.transformer.register_forward_hook(lambda *_: calls.append(1))
    return calls


@pytest.mark.parametrize("last_layer_only", [False, True])
def test_a_frozen_transformer_encodes_each_sentence_once_per_training_run(tiny_bert, last_layer_only):
    sentences = [["john", "smith", "works", "unaffable"], ["zürich", "."], ["a", "b", "c"]]
    _, tensors = index(tiny_bert, sentences)
    _, first_two = index(tiny_bert, sentences[:2])  # a narrower batch: the same sentences, other padding
    cached = embedder(tiny_bert, train_parameters=False, last_layer_only=last_layer_only).train()
    plain = embedder(tiny_bert, train_parameters=False, last_layer_only=last_layer_only, feature_cache_mb=0).train()
    if not last_layer_only:  # a mix that is not uniform, so the layers' order matters
        for module in (cached, plain):
            with torch.no_grad():
                module.scalar_mix.scalar_parameters[0].fill_(1.5)
    calls = count_transformer_calls(cached)

    expected = plain(**tensors)
    words = cached(**tensors)
    assert len(cached.feature_cache) == 3 and len(calls) == 1
    assert torch.allclose(words, expected, atol=1e-6)
    assert torch.equal(words[1, 2:], torch.zeros(2, 16))  # padding words
    again = cached(**first_two)  # from the cache, whatever the batch
    assert len(calls) == 1 and torch.allclose(again, expected[:2, :4], atol=1e-6)
    if not last_layer_only:  # the mix trains as without the cache
        words.sum().backward()
        expected.sum().backward()
        for ours, theirs in zip(cached.scalar_mix.parameters(), plain.scalar_mix.parameters()):
            assert torch.allclose(ours.grad, theirs.grad, atol=1e-5)
    cached.eval()  # validation during the run reads the cache too
    cached(**tensors)
    assert len(calls) == 1 and len(plain.feature_cache) == 0


def test_the_feature_cache_stops_at_its_size_and_never_fills_in_a_predictor(tiny_bert):
    sentences = [["john", "smith", "works", "unaffable"], ["zürich", "."]]
    _, tensors = index(tiny_bert, sentences)
    predictor = embedder(tiny_bert, train_parameters=False).eval()
    predictor(**tensors)
    assert len(predictor.feature_cache) == 0
    trained = embedder(tiny_bert, train_parameters=True).train()
    trained(**tensors)
    assert len(trained.feature_cache) == 0
    small = embedder(tiny_bert, train_parameters=False).train()
    small.feature_cache.capacity = 4 * 16 * 4  # bytes: the first sentence's four float32 word vectors
    calls = count_transformer_calls(small)
    words = small(**tensors)
    assert len(small.feature_cache) == 1 and small.feature_cache.used == small.feature_cache.capacity
    assert torch.allclose(small(**tensors), words, atol=1e-6) and len(calls) == 2  # the second is encoded again
    with pytest.raises(ConfigurationError, match="feature_cache_mb"):
        embedder(tiny_bert, feature_cache_mb=-1)


def test_unknown_model_fails_at_config_time(tmp_path):
    missing = str(tmp_path / "no-such-model")
    with pytest.raises(ConfigurationError, match="model.text_field_embedder.token_embedders.bert") as error:
        embedder(missing)
    assert missing in str(error.value)
    with pytest.raises(ConfigurationError, match="no-such-model"):
        PretrainedTransformerMismatchedIndexer(missing)


def test_multi_head_selection_trains_on_the_transformer_embedder(tiny_bert, tmp_path):
    from joint_ere.commands import main
    from tests.conftest import tiny_config

    config = tiny_config(epochs=2)
    config["dataset_reader"]["token_indexers"] = {
        "bert": {"type": "pretrained_transformer_mismatched", "model_name": tiny_bert}}
    config["model"]["text_field_embedder"] = {"token_embedders": {
        "bert": {"type": "pretrained_transformer_mismatched", "model_name": tiny_bert, "pooling": "first"}}}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    assert main(["train", str(path), "-s", str(tmp_path / "run")]) == 0
    out = tmp_path / "predictions.jsonl"
    from tests.conftest import FIXTURES

    assert main(["predict", str(tmp_path / "run" / "model.tar.gz"), str(FIXTURES / "predict.jsonl"),
                 "--output-file", str(out), "--silent"]) == 0
    assert len(out.read_text().splitlines()) == 4


def test_archive_predicts_after_the_model_folder_is_gone(tiny_bert, tmp_path):
    import shutil
    import tarfile

    from joint_ere.commands import main
    from joint_ere.common.transformers import cached_tokenizer
    from tests.conftest import FIXTURES, tiny_config

    copy = tmp_path / "my-bert"
    shutil.copytree(tiny_bert, copy)
    config = tiny_config(epochs=1)
    config["dataset_reader"]["token_indexers"] = {
        "bert": {"type": "pretrained_transformer_mismatched", "model_name": str(copy)}}
    config["model"]["text_field_embedder"] = {"token_embedders": {
        "bert": {"type": "pretrained_transformer_mismatched", "model_name": str(copy)}}}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    assert main(["train", str(path), "-s", str(tmp_path / "run")]) == 0
    with tarfile.open(tmp_path / "run" / "model.tar.gz") as tar:
        names = tar.getnames()
    assert "transformers/0/config.json" in names and "transformers/0/tokenizer.json" in names
    shutil.rmtree(copy)
    cached_tokenizer.cache_clear()
    out = tmp_path / "predictions.jsonl"
    assert main(["predict", str(tmp_path / "run" / "model.tar.gz"), str(FIXTURES / "predict.jsonl"),
                 "--output-file", str(out), "--silent"]) == 0
    assert len(out.read_text().splitlines()) == 4
    assert main(["predict", str(tmp_path / "run" / "model.tar.gz"), str(FIXTURES / "predict.jsonl"),
                 "--output-file", str(tmp_path / "amp.jsonl"), "--silent", "--use-amp"]) == 0
    assert len((tmp_path / "amp.jsonl").read_text().splitlines()) == 4
    metrics = tmp_path / "metrics.json"
    assert main(["evaluate", str(tmp_path / "run" / "model.tar.gz"), str(FIXTURES / "dev.json"),
                 "--output-file", str(metrics)]) == 0
    # the archived model is the trained one: its validation metrics come back exactly
    trained = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert json.loads(metrics.read_text())["ner_micro_f1"] == trained["best_validation_ner_micro_f1"]


def test_a_sentence_of_2000_words(tiny_bert):
    words = (["john", "smith", "works", "for", "unaffable", "acme", "."] * 300)[:2000]
    _, tensors = index(tiny_bert, [words])
    with torch.no_grad():
        vectors = embedder(tiny_bert).eval()(**tensors)
    assert vectors.shape == (1, 2000, 16) and torch.isfinite(vectors).all()


def test_leading_space_tokenizers_see_each_word_with_its_space(tmp_path):
    """RoBERTa-style byte-level BPE marks a word start with "Ġ"; every word must get it, as mid-sentence."""
    from transformers import RobertaTokenizerFast

    symbols = ["<s>", "<pad>", "</s>", "<unk>", "Ġ"] + list("abcdefghijklmnopqrstuvwxyz")
    (tmp_path / "vocab.json").write_text(json.dumps({s: i for i, s in enumerate(symbols)}))
    (tmp_path / "merges.txt").write_text("#version: 0.2\n")
    RobertaTokenizerFast(str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt")).save_pretrained(str(tmp_path))
    indexer = PretrainedTransformerMismatchedIndexer(str(tmp_path))
    indexed = indexer.tokens_to_indices(["ab", "c"], Vocabulary())
    space = symbols.index("Ġ")
    assert indexed["wordpieces"] == [space, symbols.index("a"), symbols.index("b"), space, symbols.index("c")]
    assert indexed["offsets"] == [[0, 3], [3, 5]]


def test_overfits_a_few_sentences_on_a_tiny_bert(tmp_path):
    from transformers import BertConfig, BertModel, BertTokenizerFast

    from joint_ere.commands.train import train_model
    from joint_ere.common import Params
    from tests.conftest import FIXTURES, tiny_config

    words = sorted({w.lower() for f in ("train.json", "dev.json")
                    for d in json.loads((FIXTURES / f).read_text()) for w in d["tokens"]})
    (tmp_path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words) + "\n")
    BertTokenizerFast(str(tmp_path / "vocab.txt"), do_lower_case=True).save_pretrained(str(tmp_path))
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=5 + len(words), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=64)).save_pretrained(str(tmp_path))
    config = tiny_config(train=FIXTURES / "train.json", dev=FIXTURES / "train.json", epochs=80, dropout=0.0)
    config["dataset_reader"]["token_indexers"] = {
        "bert": {"type": "pretrained_transformer_mismatched", "model_name": str(tmp_path)}}
    config["model"]["text_field_embedder"] = {"token_embedders": {
        "bert": {"type": "pretrained_transformer_mismatched", "model_name": str(tmp_path)}}}
    train_model(Params(config), str(tmp_path / "run"))
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())  # the last epoch's
    assert metrics["validation_ner_micro_f1"] == 1.0
    assert metrics["validation_re_strict_micro_f1"] == 1.0


def test_reduced_precision_runs_only_the_transformer_in_bfloat16(tiny_bert):
    from joint_ere.modules.transformer_embedder import use_reduced_precision

    _, tensors = index(tiny_bert, [["john", "smith", "works", "for", "acme", "."], ["acme", "."]])
    model = torch.nn.ModuleDict({"embedder": embedder(tiny_bert).eval(), "other": torch.nn.Linear(2, 2)})
    with torch.no_grad():
        full = model["embedder"](**tensors)
        assert use_reduced_precision(model, torch.device("cpu")) == 1
        reduced = model["embedder"](**tensors)
        model["embedder"].train()
        for module in model["embedder"].modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
        training = model["embedder"](**tensors)  # training is never in reduced precision
    assert reduced.dtype == torch.float32 and full.dtype == torch.float32
    assert not torch.equal(reduced, full) and torch.allclose(reduced, full, atol=0.1)
    assert torch.allclose(training, full, atol=1e-6)
