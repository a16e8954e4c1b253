"""
Forward + backward time of the multi-task recurrent encoders against torch's nn.LSTM at the same sizes.

    python benchmarks/encoders.py [--input 768 --hidden 300 --batch 20 --length 40] [--repeats 30] [--threads N]
        [--device cpu|cuda] [--torch-ops] [--steps auto|eager|compiled]

For each encoder: the median time of one forward + backward pass (sum of every output representation), the
median over rounds of its time ratio to nn.LSTM's in the same round, and the ratio of their arithmetic, i.e.
multiply-adds of the matrix products per token and step (LSTM: 4 H (I + H)). The issue's goal is time ratio
<= 1.25 x arithmetic ratio. All encoders are unidirectional, as in the papers. --torch-ops times the same
cells without the C steps of _cells.c and without oneDNN. Where the C steps do not run (CUDA, --torch-ops),
--steps picks how each step's element-wise stages run: eager torch operators, or compiled by torch.compile
(auto: compiled on CUDA). The first pass of each encoder (compiling, where it compiles) is reported apart.
"""
import argparse
import statistics
import time
from typing import Callable, Dict, List, Tuple

import torch

from joint_ere.modules.encoders import MultiTaskEncoder, PartitionFilterEncoder, SelectionRecurrentNetwork, recurrent

GOAL = 1.25


def time_passes(runs: Dict[str, Callable[[], torch.Tensor]], reset: Callable[[], None], repeats: int,
                device: str) -> Tuple[Dict[str, List[float]], Dict[str, float]]:
    """Seconds of ``run().backward()`` for every run, ``repeats`` rounds after three warm-up rounds, and of each
    run's first pass. The runs take
    turns within each round, so a machine whose speed drifts (this VM's does, by up to 1.6x within minutes)
    slows all of them alike and the per-round ratios stay fair. ``reset`` drops the gradients before each pass,
    as a training step's ``zero_grad`` does."""
    times: Dict[str, List[float]] = {name: [] for name in runs}
    first: Dict[str, float] = {}
    for index in range(repeats + 3):
        for name, run in runs.items():
            reset()
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            run().backward()
            if device == "cuda":
                torch.cuda.synchronize()
            if index >= 3:
                times[name].append(time.perf_counter() - start)
            elif index == 0:
                first[name] = time.perf_counter() - start
    return times, first


def encoder_pass(encoder: MultiTaskEncoder, inputs: torch.Tensor, mask: torch.Tensor) -> Callable[[], torch.Tensor]:
    return lambda: sum(output.sum() for output in encoder(inputs, mask).values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", type=int, default=768)
    parser.add_argument("--hidden", type=int, default=300)
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--length", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--torch-ops", action="store_true",
                        help="the encoders' torch-operator path: no C steps (_cells.c), products by plain linear")
    parser.add_argument("--steps", choices=["auto", "eager", "compiled"], default="auto",
                        help="where the C steps do not run: the stages eager or under torch.compile (auto: compiled "
                             "on CUDA)")
    args = parser.parse_args()
    if args.torch_ops:
        recurrent.use_fused = recurrent.use_onednn = False
    recurrent.compile_steps = {"auto": None, "eager": False, "compiled": True}[args.steps]
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    size, hidden = args.input, args.hidden
    inputs = torch.randn(args.batch, args.length, size, device=args.device, requires_grad=True)
    mask = torch.ones(args.batch, args.length, dtype=torch.bool, device=args.device)

    lstm = torch.nn.LSTM(size, hidden, batch_first=True).to(args.device)
    lstm_arithmetic = 4 * hidden * (size + hidden)
    encoders: Dict[str, MultiTaskEncoder] = {
        "srn (2 tasks)": SelectionRecurrentNetwork(size, hidden, num_tasks=2),
        "srn (3 tasks)": SelectionRecurrentNetwork(size, hidden, num_tasks=3),
        "pfn": PartitionFilterEncoder(size, hidden),
    }
    runs = {"nn.LSTM": lambda: lstm(inputs)[0].sum()}
    runs.update({name: encoder_pass(encoder.to(args.device), inputs, mask) for name, encoder in encoders.items()})
    modules = [lstm, *encoders.values()]

    def reset() -> None:
        inputs.grad = None
        for module in modules:
            module.zero_grad(set_to_none=True)

    times, first = time_passes(runs, reset, args.repeats, args.device)
    rows: List[Tuple[str, float, float, float]] = [("nn.LSTM", statistics.median(times["nn.LSTM"]), 1.0, 1.0)]
    for name, encoder in encoders.items():
        ratio = statistics.median(mine / lstm for mine, lstm in zip(times[name], times["nn.LSTM"]))
        arithmetic = encoder.cells[0].multiply_adds_per_step() / lstm_arithmetic
        rows.append((name, statistics.median(times[name]), ratio, arithmetic))

    print(f"input {size}, hidden {hidden}, batch {args.batch}, length {args.length}, device {args.device}, "
          f"threads {torch.get_num_threads()}, {'torch operators' if args.torch_ops else 'C steps + oneDNN'}, "
          f"steps {args.steps} (compile_steps after the run: {recurrent.compile_steps}); forward + backward, "
          f"median of {args.repeats} rounds")
    print(f"{'encoder':<15} {'ms':>8} {'time ratio':>11} {'arith ratio':>12} {'time/arith':>11} {'first pass s':>13}"
          f"  goal <= {GOAL}")
    for name, seconds, time_ratio, arithmetic in rows:
        verdict = "" if name == "nn.LSTM" else ("ok" if time_ratio <= GOAL * arithmetic else "MISSED")
        print(f"{name:<15} {1000 * seconds:8.1f} {time_ratio:11.2f} {arithmetic:12.2f} "
              f"{time_ratio / arithmetic:11.2f} {first[name]:13.2f}  {verdict}")


if __name__ == "__main__":
    main()
