"""The ``lstm`` encoders' padded CPU path against AllenNLP's packed wrappers: same outputs, same gradients."""
import pytest
import torch
from allennlp_light.modules import Seq2SeqEncoder, Seq2VecEncoder
from allennlp_light.modules.seq2seq_encoders.pytorch_seq2seq_wrapper import PytorchSeq2SeqWrapper
from allennlp_light.modules.seq2vec_encoders.pytorch_seq2vec_wrapper import PytorchSeq2VecWrapper

from joint_ere.common.errors import ConfigurationError
from joint_ere.modules.encoders import LstmSeq2SeqEncoder, LstmSeq2VecEncoder, lstm
from joint_ere.modules.encoders.lstm import length_groups

LENGTHS = [7, 3, 0, 5, 1, 7]  # an empty row (a padding word's characters), ties, a row of one


def batch(input_size=6):
    torch.manual_seed(3)
    inputs = torch.randn(len(LENGTHS), max(LENGTHS), input_size)
    mask = torch.arange(max(LENGTHS)).unsqueeze(0) < torch.tensor(LENGTHS).unsqueeze(1)
    return inputs, mask


def allennlp_twin(ours, wrapper):
    """AllenNLP's own wrapper around a torch.nn.LSTM holding our weights."""
    lstm = ours._module
    twin = torch.nn.LSTM(lstm.input_size, lstm.hidden_size, lstm.num_layers, batch_first=True,
                         bidirectional=lstm.bidirectional)
    twin.load_state_dict(lstm.state_dict())
    return wrapper(twin)


@pytest.mark.parametrize("layers,bidirectional", [(1, True), (2, True), (2, False)])
@pytest.mark.parametrize("kind", ["seq2seq", "seq2vec"])
@pytest.mark.parametrize("grouped", [False, True], ids=["one group", "a group per length"])
def test_the_padded_path_is_the_packed_lstm(kind, layers, bidirectional, grouped, monkeypatch):
    monkeypatch.setattr(lstm, "GROUP_COST_FLOPS", 1 if grouped else 10 ** 15)
    ours_class, wrapper = ((LstmSeq2SeqEncoder, PytorchSeq2SeqWrapper) if kind == "seq2seq"
                           else (LstmSeq2VecEncoder, PytorchSeq2VecWrapper))
    torch.manual_seed(0)
    ours = ours_class(input_size=6, hidden_size=4, num_layers=layers, bidirectional=bidirectional)
    reference = allennlp_twin(ours, wrapper)
    inputs, mask = batch()
    ours_inputs, reference_inputs = inputs.clone().requires_grad_(), inputs.clone().requires_grad_()
    output, expected = ours(ours_inputs, mask), reference(reference_inputs, mask)
    assert output.shape == expected.shape == (len(LENGTHS), *([max(LENGTHS)] if kind == "seq2seq" else []),
                                              ours.get_output_dim())
    torch.testing.assert_close(output, expected)
    assert output[2].abs().sum() == 0  # the empty row
    weights = torch.randn_like(output)
    (output * weights).sum().backward()
    (expected * weights).sum().backward()
    torch.testing.assert_close(ours_inputs.grad, reference_inputs.grad)
    for name, parameter in ours._module.named_parameters():
        torch.testing.assert_close(parameter.grad, dict(reference._module.named_parameters())[name].grad)


def test_the_packed_reference_path_agrees_and_archives_keep_allennlp_names():
    encoder = Seq2SeqEncoder.by_name("lstm")(input_size=6, hidden_size=4, num_layers=2, bidirectional=True)
    assert isinstance(encoder, LstmSeq2SeqEncoder)
    assert isinstance(Seq2VecEncoder.by_name("lstm")(input_size=6, hidden_size=4), LstmSeq2VecEncoder)
    assert "_module.weight_hh_l1_reverse" in encoder.state_dict()  # as PytorchSeq2SeqWrapper's
    inputs, mask = batch()
    padded = encoder(inputs, mask)
    encoder.packed_reference = True
    torch.testing.assert_close(encoder(inputs, mask), padded)


def test_dropout_between_layers_only_in_training():
    encoder = LstmSeq2SeqEncoder(input_size=6, hidden_size=4, num_layers=2, bidirectional=True, dropout=0.5)
    inputs, mask = batch()
    encoder.eval()
    first = encoder(inputs, mask)
    torch.testing.assert_close(encoder(inputs, mask), first)
    encoder.train()
    assert not torch.allclose(encoder(inputs, mask), first)


def test_unsupported_options_are_refused():
    with pytest.raises(ConfigurationError, match="stateful"):
        LstmSeq2SeqEncoder(input_size=6, hidden_size=4, stateful=True)


def test_use_amp_runs_the_cpu_lstms_in_bfloat16_at_inference_only():
    from joint_ere.modules.transformer_embedder import use_reduced_precision

    model = torch.nn.ModuleDict({"words": LstmSeq2SeqEncoder(input_size=6, hidden_size=4, bidirectional=True),
                                 "chars": LstmSeq2VecEncoder(input_size=6, hidden_size=4, bidirectional=True)})
    inputs, mask = batch()
    exact = model["words"](inputs, mask)
    assert use_reduced_precision(model, torch.device("cpu")) == 2
    torch.testing.assert_close(model["words"](inputs, mask), exact)  # gradients wanted: float32 as before
    with torch.inference_mode():
        reduced = model["words"](inputs, mask)
    assert reduced.dtype == torch.float32 and not torch.equal(reduced, exact)
    torch.testing.assert_close(reduced, exact.detach(), atol=0.02, rtol=0)


def test_float16_on_a_cpu_runs_the_lstm_in_float32():
    """oneDNN has no float16 LSTM on most CPUs: under float16 autocast, or for float16 inputs, the encoder runs in
    float32 and gives the float32 result (before, the RIN autocast test failed on a CPU without AMX-FP16)."""
    encoder = LstmSeq2SeqEncoder(input_size=6, hidden_size=4, bidirectional=True)
    inputs, mask = batch()
    exact = encoder(inputs, mask)
    with torch.autocast("cpu", dtype=torch.float16):
        under_autocast = encoder(inputs, mask)
    assert under_autocast.dtype == torch.float32
    torch.testing.assert_close(under_autocast, exact)
    halved = encoder(inputs.half(), mask)
    assert halved.dtype == torch.float16
    torch.testing.assert_close(halved.float(), encoder(inputs.half().float(), mask), atol=1e-3, rtol=0)


@pytest.mark.parametrize("grouped", [False, True], ids=["one group", "a group per length"])
def test_training_under_a_bfloat16_autocast_on_a_cpu(grouped, monkeypatch):
    """`trainer.use_amp` with `amp_dtype: bfloat16` on a CPU: the LSTM runs in bfloat16 (float32 on CPUs where
    oneDNN has no bfloat16 LSTM: there autocast failed to create one), answers in the input's float32, and its
    gradients reach the float32 weights (before, a batch split into length groups failed: a float32 output
    tensor, bfloat16 groups)."""
    monkeypatch.setattr(lstm, "GROUP_COST_FLOPS", 1 if grouped else 10 ** 15)
    torch.manual_seed(0)
    encoder = LstmSeq2SeqEncoder(input_size=6, hidden_size=4, num_layers=2, bidirectional=True)
    inputs, mask = batch()
    exact = encoder(inputs, mask)
    weights = torch.randn_like(exact)
    (exact * weights).sum().backward()
    exact_grads = {name: p.grad.clone() for name, p in encoder.named_parameters()}
    encoder.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        reduced = encoder(inputs, mask)
    assert reduced.dtype == torch.float32
    # computed in bfloat16 and handed back where oneDNN has a bfloat16 LSTM, else in float32
    assert torch.equal(reduced, exact) != lstm.onednn_bfloat16()
    assert reduced[2].abs().sum() == 0  # the empty row
    torch.testing.assert_close(reduced, exact.detach(), atol=0.05, rtol=0)
    (reduced * weights).sum().backward()
    for name, parameter in encoder.named_parameters():
        assert parameter.grad.dtype == torch.float32
        torch.testing.assert_close(parameter.grad, exact_grads[name], atol=0.1, rtol=0.05)


def test_length_groups_split_off_long_tails_only():
    # equal lengths, or savings below the threshold: one group, as wide as the longest row
    assert length_groups([5, 5, 5], min_saving=1) == [([0, 1, 2], 5)]
    assert length_groups([4, 5, 3], min_saving=10) == [([1, 0, 2], 5)]
    # one long row among short ones gets a group of its own; every row is in exactly one group
    groups = length_groups([20, 3, 111, 25, 0, 22], min_saving=60)
    assert groups == [([2], 111), ([3, 5, 0, 1, 4], 25)]
    groups = length_groups([20, 3, 111, 25, 0, 22], min_saving=40)
    assert groups == [([2], 111), ([3, 5, 0], 25), ([1, 4], 3)]
    assert sorted(row for rows, _ in groups for row in rows) == list(range(6))
    assert length_groups([0, 0], min_saving=1) == [([0, 1], 1)]  # empty rows still get one time step
