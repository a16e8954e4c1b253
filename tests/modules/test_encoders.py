"""The multi-task encoders: the SRN paper's gate algebra, masks, directions, gradients of every path, config errors."""
import itertools

import pytest
import torch

from joint_ere.common.errors import ConfigurationError
from joint_ere.common.params import construct
from joint_ere.modules.encoders import (MultiTaskEncoder, PartitionFilterEncoder, SelectionRecurrentNetwork,
                                        SharedStatesEncoder)


def masked_batch(input_dim: int = 5):
    torch.manual_seed(1)
    inputs = torch.randn(3, 6, input_dim)
    mask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2, [1] + [0] * 5], dtype=torch.bool)
    return inputs, mask


def test_gates_follow_equations_4_and_5():
    cell = SelectionRecurrentNetwork(5, 4, num_tasks=3).cells[0]
    masters = torch.rand(7, 3, 4)  # (anything, k, hidden)
    gates = cell.selection_gates(masters)
    e, s, o = masters[:, 0], masters[:, 1], masters[:, 2]
    es, eo, so, eso = e * s, e * o, s * o, e * s * o  # eq. 4
    expected = [e - es - eo + eso, s - es - so + eso, o - eo - so + eso, es, eo, so, eso]  # eq. 5, then eq. 4
    assert torch.allclose(gates, torch.stack(expected, dim=1), atol=1e-6)
    assert gates.min() >= 0 and gates.max() <= 1
    # A task's independent gate is its master gate times (1 - master) of every other task.
    assert torch.allclose(gates[:, 0], e * (1 - s) * (1 - o))


def test_two_tasks_independent_plus_shared_is_master():
    cell = SelectionRecurrentNetwork(5, 4, num_tasks=2).cells[0]
    masters = torch.rand(9, 2, 4)
    gates = cell.selection_gates(masters)  # e, r, er
    assert torch.allclose(gates[:, 0] + gates[:, 2], masters[:, 0])
    assert torch.allclose(gates[:, 1] + gates[:, 2], masters[:, 1])


def test_pfn_partitions_are_gates_that_cover_each_neuron_at_most_once():
    cell = PartitionFilterEncoder(5, 6).cells[0]
    partitions = cell.partitions(torch.randn(10, 2, 6))  # e-only, r-only, shared
    assert partitions.min() >= -1e-6 and partitions.max() <= 1 + 1e-6
    assert (partitions.sum(1) <= 1 + 1e-6).all()  # e-only + r-only + shared = e + r - e r <= 1


def reference_srn(encoder: SelectionRecurrentNetwork, inputs: torch.Tensor) -> dict:
    """Eqs. 1-10 of the Cascade-SRN paper, written out step by step for one direction, as a reader would."""
    cell = encoder.cells[0]
    k, size = encoder.num_tasks, encoder.hidden_dim
    weight = torch.cat([cell.input_projection.weight, cell.hidden_weight], dim=1)  # W . [x_t, h_{t-1}]
    h = torch.zeros(inputs.size(0), size)
    c = torch.zeros(inputs.size(0), size)
    subsets = [subset for n in range(1, k + 1) for subset in itertools.combinations(range(k), n)]
    outputs = {subset: [] for subset in subsets}
    for t in range(inputs.size(1)):
        z = torch.cat([inputs[:, t], h], dim=1) @ weight.t() + cell.input_projection.bias
        chunks = z.split(size, dim=1)
        f, o = torch.sigmoid(chunks[0]), torch.sigmoid(chunks[1])  # eq. 1
        rho_hat = [torch.sigmoid(chunks[2 + i]) for i in range(k)]  # eq. 3
        rho_tilde = [torch.sigmoid(chunks[2 + k + i]) for i in range(k)]
        c_hat = torch.tanh(chunks[-1])
        c_tilde = f * c  # eq. 2

        def gates(rho):
            shared = {subset: torch.stack([rho[i] for i in subset]).prod(0) for subset in subsets if len(subset) > 1}
            result = dict(shared)  # eq. 4
            for i in range(k):  # eq. 5, inclusion-exclusion over the subsets holding i
                result[(i,)] = rho[i] + sum((-1) ** (len(s) - 1) * g for s, g in shared.items() if i in s)
            return result

        g_hat, g_tilde = gates(rho_hat), gates(rho_tilde)
        memories = {subset: g_tilde[subset] * c_tilde + g_hat[subset] * c_hat for subset in subsets}  # eqs. 6-7
        c = cell.cell_update(torch.cat([memories[subset] for subset in subsets], dim=1))  # eq. 8
        h = o * torch.tanh(c)  # eq. 9
        for subset in subsets:
            outputs[subset].append(torch.tanh(memories[subset]))  # eq. 10
    return {name: torch.stack(outputs[subset], dim=1) for name, subset in zip(encoder.representation_names, subsets)}


@pytest.mark.parametrize("num_tasks", [2, 3])
def test_srn_matches_the_papers_equations(num_tasks):
    encoder = SelectionRecurrentNetwork(5, 4, num_tasks=num_tasks)
    inputs, _ = masked_batch()
    mask = torch.ones(inputs.shape[:2], dtype=torch.bool)
    got = encoder(inputs, mask)
    expected = reference_srn(encoder, inputs)
    assert list(got) == (["e", "r", "er"] if num_tasks == 2 else ["e", "s", "o", "es", "eo", "so", "eso"])
    for name in expected:
        assert torch.allclose(got[name], expected[name], atol=1e-5), name


ENCODERS = {
    "srn2": lambda: SelectionRecurrentNetwork(5, 4, num_tasks=2),
    "srn3-bi": lambda: SelectionRecurrentNetwork(5, 4, num_tasks=3, bidirectional=True),
    "pfn": lambda: PartitionFilterEncoder(5, 4),
    "pfn-bi": lambda: PartitionFilterEncoder(5, 4, bidirectional=True),
}


@pytest.mark.parametrize("name", ENCODERS)
def test_padding_does_not_change_real_positions(name):
    encoder = ENCODERS[name]()
    inputs, mask = masked_batch()
    batched = encoder(inputs, mask)
    for row in range(inputs.size(0)):
        length = int(mask[row].sum())
        alone = encoder(inputs[row:row + 1, :length], mask[row:row + 1, :length])
        for key in batched:
            # float32 products of 1 and of 3 rows may take differently blocked kernels: a few ulp per step on
            # outputs in [-1, 1] over 6 steps stays far below 1e-5, while a padding leak moves them by ~0.1
            assert torch.allclose(batched[key][row, :length], alone[key][0], atol=1e-5), (key, row)
            assert (batched[key][row, length:] == 0).all()


def test_bidirectional_shapes_and_reversal():
    encoder = SelectionRecurrentNetwork(5, 4, num_tasks=2, bidirectional=True)
    inputs, mask = masked_batch()
    outputs = encoder(inputs, mask)
    assert encoder.get_output_dim() == 8
    assert {name: tuple(tensor.shape) for name, tensor in outputs.items()} == {
        "e": (3, 6, 8), "r": (3, 6, 8), "er": (3, 6, 8)}
    # The backward half at the first word equals a forward cell run over the reversed sentence, at its end.
    forward_only = SelectionRecurrentNetwork(5, 4, num_tasks=2)
    forward_only.cells[0].load_state_dict(encoder.cells[1].state_dict())
    reversed_sentence = inputs[1:2, :4].flip(1)
    expected = forward_only(reversed_sentence, mask[1:2, :4])["e"][0, -1]
    assert torch.allclose(outputs["e"][1, 0, 4:], expected, atol=1e-5)  # as in the padding test


@pytest.mark.parametrize("name", ENCODERS)
def test_backward_matches_finite_differences(name):
    """In float64 the recurrence's backward is autograd over the cell's specification, one step at a time."""
    encoder = ENCODERS[name]().double()
    inputs, mask = masked_batch()
    inputs = inputs[:, :4].double().requires_grad_()
    mask = mask[:, :4]
    names = [n for n, _ in encoder.named_parameters()]
    parameters = tuple(p.detach().clone().requires_grad_() for p in encoder.parameters())

    def run(x, *weights):
        return tuple(torch.func.functional_call(encoder, dict(zip(names, weights)), (x, mask)).values())

    assert torch.autograd.gradcheck(run, (inputs, *parameters))


def test_recurrent_dropout_only_in_training():
    encoder = PartitionFilterEncoder(5, 4, recurrent_dropout=0.5)
    inputs, mask = masked_batch()
    encoder.eval()
    assert torch.equal(encoder(inputs, mask)["e"], encoder(inputs, mask)["e"])
    encoder.train()
    torch.manual_seed(0)
    first = encoder(inputs, mask)["e"]
    assert not torch.equal(first, encoder(inputs, mask)["e"])


def test_shared_states_encoder_gives_every_task_the_same_states():
    encoder = construct(MultiTaskEncoder, {"type": "shared", "num_tasks": 3, "encoder": {
        "type": "lstm", "input_size": 5, "hidden_size": 3, "bidirectional": True}}, "model.encoder")
    inputs, mask = masked_batch()
    outputs = encoder(inputs, mask)
    assert list(outputs) == ["e", "s", "o", "es", "eo", "so", "eso"]
    assert all(tensor is outputs["e"] for tensor in outputs.values())
    assert isinstance(encoder, SharedStatesEncoder) and encoder.get_output_dim() == 6


def test_task_names_and_errors():
    encoder = SelectionRecurrentNetwork(5, 4, num_tasks=2, task_names=["ner", "re"])
    assert encoder.representation_names == ["ner", "re", "ner+re"]
    with pytest.raises(ConfigurationError, match="pfn encoder partitions neurons between exactly 2 tasks"):
        construct(MultiTaskEncoder, {"type": "pfn", "input_dim": 5, "hidden_dim": 4, "num_tasks": 3}, "model.encoder")
    with pytest.raises(ConfigurationError, match="3 distinct names"):
        SelectionRecurrentNetwork(5, 4, num_tasks=3, task_names=["a", "b"])
    with pytest.raises(ConfigurationError,
                       match=r"model.encoder: model 'table_filling' needs num_tasks = 2, but the "
                             r"SelectionRecurrentNetwork encoder \(num_tasks = 3; provides e, s, o, es, eo, so, eso\)"):
        SelectionRecurrentNetwork(5, 4, num_tasks=3).check_provides("model.encoder", "table_filling", 2, ["e"])
    with pytest.raises(ConfigurationError, match=r"asks for task 'x', which the PartitionFilterEncoder encoder"):
        PartitionFilterEncoder(5, 4).check_provides("model.encoder", "table_filling", 2, ["e", "x"])


FAST_PATH_ENCODERS = {
    **ENCODERS,
    # 37 units: no multiple of any vector width, so the C loops' remainders run too.
    "srn4-wide": lambda: SelectionRecurrentNetwork(5, 37, num_tasks=4, task_names=["a", "b", "c", "d"]),
    "pfn-wide": lambda: PartitionFilterEncoder(5, 37),
}


def outputs_and_gradients(encoder, inputs, mask):
    """Every output of a forward pass and the gradients of a random weighting of them (input and parameters)."""
    encoder.zero_grad()
    x = inputs.clone().requires_grad_()
    outputs = encoder(x, mask)
    sum((output * torch.randn_like(output, generator=torch.Generator().manual_seed(3))).sum()
        for output in outputs.values()).backward()
    return [*outputs.values(), x.grad, *(p.grad.clone() for p in encoder.parameters())]


@pytest.mark.parametrize("name", FAST_PATH_ENCODERS)
def test_fast_path_matches_torch_operators(name, monkeypatch):
    """In float32 on a CPU the products run through oneDNN and each step's element-wise algebra through the C
    steps of _cells.c; outputs and every gradient equal those of the torch-operator path, whose backward
    (autograd over the cells' specification) the finite-difference test above checks."""
    from joint_ere.modules.encoders import recurrent

    if recurrent._cells is None or not recurrent._probe_onednn():
        pytest.skip("no C steps built here (a source tree without pip install) or a torch without oneDNN")
    calls = {"fused": 0}

    def counted(original):
        def wrapper(*args):
            calls["fused"] += 1
            return original(*args)
        return wrapper

    monkeypatch.setattr(recurrent, "_fused_forward", counted(recurrent._fused_forward))
    monkeypatch.setattr(recurrent, "_fused_backward", counted(recurrent._fused_backward))
    encoder = FAST_PATH_ENCODERS[name]()
    inputs, mask = masked_batch()
    inputs = inputs * 3  # saturating gates too
    results = []
    for fast in (True, False):
        monkeypatch.setattr(recurrent, "use_onednn", fast)
        monkeypatch.setattr(recurrent, "use_fused", fast)
        calls["fused"] = 0
        results.append(outputs_and_gradients(encoder, inputs, mask))
        # the C steps ran forward and backward for every direction on the fast path, never on the other
        assert calls["fused"] == (2 * len(encoder.cells) if fast else 0)
    for fast, plain in zip(*results):
        assert torch.allclose(fast, plain, atol=2e-6, rtol=1e-4)


def test_c_steps_are_built_where_a_compiler_is():
    """setup.py builds _cells.c as an optional extension; where the package was installed with a C compiler
    present it must have been built (otherwise every encoder silently runs the slower torch-operator path).
    A source tree used without ``pip install`` (as on the GPU machine) has no build to check."""
    import importlib.metadata
    import shutil

    from joint_ere.modules.encoders import recurrent

    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler: the encoders use their torch-operator path")
    try:
        importlib.metadata.distribution("joint-ere")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("joint-ere is not installed (run from the source tree): nothing built the C steps")
    assert recurrent._cells is not None
    assert all(encoder().cells[0].kernel() is not None for encoder in FAST_PATH_ENCODERS.values())


@pytest.mark.parametrize("name", ["srn2", "pfn-bi"])
def test_recurrence_runs_in_float32_under_autocast(name):
    """Mixed precision (use_amp) feeds half-precision inputs; the cell still runs, and trains, in float32."""
    encoder = ENCODERS[name]()
    projection = torch.nn.Linear(3, 5)
    inputs, mask = masked_batch(3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        outputs = encoder(projection(inputs), mask)
        loss = sum(output.sum() for output in outputs.values())
    loss.backward()
    assert all(output.dtype == torch.float32 for output in outputs.values())
    assert projection.weight.grad.abs().sum() > 0 and encoder.cells[0].hidden_weight.grad.abs().sum() > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", ["srn3-bi", "pfn"])
def test_cuda_matches_cpu(name):
    """On a GPU the encoders run their torch-operator path (no oneDNN, no C steps), its stages compiled; same numbers
    as on the CPU."""
    encoder = ENCODERS[name]()
    inputs, mask = masked_batch()
    results = []
    for device in ("cpu", "cuda"):
        encoder.to(device).zero_grad()
        x = inputs.clone().to(device).requires_grad_()
        outputs = encoder(x, mask.to(device))
        sum(output.sum() for output in outputs.values()).backward()
        results.append([t.detach().cpu() for t in (*outputs.values(), x.grad, *(p.grad for p in encoder.parameters()))])
    for cpu, cuda in zip(*results):
        assert torch.allclose(cpu, cuda, atol=1e-4)
    from joint_ere.modules.encoders import recurrent

    assert recurrent.compile_steps is not False, "torch.compile failed on CUDA: the stages ran eagerly"


@pytest.mark.parametrize("name", ["srn2", "pfn"])
def test_nan_propagates_through_the_fast_path(name):
    """A diverged input must not come out finite (the C steps clamp exp's argument, but let NaN through)."""
    encoder = ENCODERS[name]()
    inputs, mask = masked_batch()
    inputs[0, 2, 0] = float("nan")
    outputs = encoder(inputs, mask)
    assert torch.isnan(outputs["e"][0, 2:]).all() and not torch.isnan(outputs["e"][1]).any()


def test_compiled_steps_match_the_eager_ones(monkeypatch):
    """On CUDA each step's element-wise stages run under torch.compile (``compile_steps``); compiled on the CPU
    here (Inductor's C++ backend), outputs and every gradient equal the eager specification's. Each cell type
    compiles its four stages (and a few variants) whole, on the first batch, and a new batch size or length
    compiles nothing more."""
    import shutil

    from torch._dynamo.utils import counters

    from joint_ere.modules.encoders import recurrent

    if shutil.which("c++") is None and shutil.which("g++") is None:
        pytest.skip("torch.compile's CPU backend needs a C++ compiler")
    monkeypatch.setattr(recurrent, "use_fused", False)
    torch._dynamo.reset()
    recurrent._compiled_steps.cache_clear()
    try:
        for name in ("srn3-bi", "pfn"):
            encoder = ENCODERS[name]()
            before = counters["stats"]["unique_graphs"]
            for rows, length in ((3, 6), (2, 4)):
                inputs, mask = masked_batch()
                inputs, mask = inputs[:rows, :length] * 3, mask[:rows, :length]
                results = []
                for compiled in (True, False):
                    monkeypatch.setattr(recurrent, "compile_steps", compiled)
                    results.append(outputs_and_gradients(encoder, inputs, mask))
                    if compiled:  # a failure (or a graph break: fullgraph) would have switched to eager
                        assert recurrent.compile_steps is True, "compiling failed: the eager stages ran"
                for fast, plain in zip(*results):
                    assert torch.allclose(fast, plain, atol=2e-6, rtol=1e-4), name
                if rows == 3:
                    first_batch = counters["stats"]["unique_graphs"]
                    assert first_batch >= before + 4, name  # every stage compiled for this cell type
            assert counters["stats"]["unique_graphs"] == first_batch, name  # no recompiling for the new sizes
    finally:
        torch._dynamo.reset()
        recurrent._compiled_steps.cache_clear()


def test_a_failing_compiler_hands_over_to_the_eager_steps(monkeypatch):
    """A compiler error switches every stage to eager for good, with a warning that names the compiler's own
    error; an error of the computation itself is not the compiler's and goes through."""
    from joint_ere.modules.encoders import recurrent

    def broken(*args):
        raise torch._dynamo.exc.BackendCompilerFailed(broken, RuntimeError("no working compiler\ndetail"), None)

    monkeypatch.setattr(recurrent, "use_fused", False)
    monkeypatch.setattr(recurrent, "compile_steps", True)
    monkeypatch.setattr(torch, "compile", lambda stage, **options: broken)
    recurrent._compiled_steps.cache_clear()
    try:
        encoder = ENCODERS["srn2"]()
        inputs, mask = masked_batch()
        with pytest.warns(UserWarning, match=r"torch.compile failed .* \(RuntimeError: no working compiler\); "
                                             r"they run eagerly"):
            compiled = encoder(inputs, mask)
        assert recurrent.compile_steps is False
        for key, value in encoder(inputs, mask).items():
            assert torch.equal(compiled[key], value)

        def out_of_memory(*args):
            raise torch.OutOfMemoryError("CUDA out of memory")

        monkeypatch.setattr(recurrent, "compile_steps", True)
        monkeypatch.setattr(torch, "compile", lambda stage, **options: out_of_memory)
        recurrent._compiled_steps.cache_clear()
        with pytest.raises(torch.OutOfMemoryError):
            encoder(inputs, mask)
        assert recurrent.compile_steps is True
    finally:
        recurrent._compiled_steps.cache_clear()


@pytest.mark.parametrize("name", ["srn3-bi", "pfn"])
@pytest.mark.parametrize("fast", [True, False])
def test_a_batch_of_empty_sentences(name, fast, monkeypatch):
    """No time steps: empty outputs and gradients on every path (oneDNN refuses empty products; torch's take them)."""
    from joint_ere.modules.encoders import recurrent

    monkeypatch.setattr(recurrent, "use_fused", fast)
    monkeypatch.setattr(recurrent, "use_onednn", fast)
    encoder = ENCODERS[name]()
    x = torch.randn(2, 0, 5, requires_grad=True)
    outputs = encoder(x, torch.ones(2, 0, dtype=torch.bool))
    sum(output.sum() for output in outputs.values()).backward()
    assert all(output.shape == (2, 0, encoder.get_output_dim()) for output in outputs.values())
    assert x.grad.shape == (2, 0, 5) and all(p.grad.abs().sum() == 0 for p in encoder.parameters())


def test_the_environment_sets_whether_the_steps_compile(monkeypatch):
    from joint_ere.modules.encoders import recurrent

    for value, expected in (("", None), ("0", False), ("1", True)):
        monkeypatch.setenv("JOINT_ERE_COMPILE_STEPS", value)
        assert recurrent._compile_steps_from_environment() is expected
    monkeypatch.setenv("JOINT_ERE_COMPILE_STEPS", "yes")
    with pytest.raises(ConfigurationError, match="JOINT_ERE_COMPILE_STEPS must be 0 or 1"):
        recurrent._compile_steps_from_environment()
