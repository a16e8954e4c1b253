"""
Forward + backward time of the multi-task recurrent encoders against torch's nn.LSTM at the same sizes.

    python benchmarks/encoders.py [--input 768 --hidden 300 --batch 20 --length 40] [--repeats 30] [--threads N]
        [--device cpu|cuda]

For each encoder: the median time of one forward + backward pass (sum of every output representation), its
ratio to nn.LSTM's, and the ratio of their arithmetic, i.e. multiply-adds of the matrix products per token and
step (LSTM: 4 H (I + H)). The issue's goal is time ratio <= 1.25 x arithmetic ratio. All encoders are
unidirectional, as in the papers.
"""
import argparse
import statistics
import time
from typing import Callable, Dict, List, Tuple

import torch

from joint_ere.modules.encoders import MultiTaskEncoder, PartitionFilterEncoder, SelectionRecurrentNetwork

GOAL = 1.25


def time_pass(run: Callable[[], torch.Tensor], repeats: int, device: str) -> float:
    """Median seconds of ``run().backward()`` after three warm-up passes."""
    times: List[float] = []
    for index in range(repeats + 3):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        run().backward()
        if device == "cuda":
            torch.cuda.synchronize()
        if index >= 3:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


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
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    size, hidden = args.input, args.hidden
    inputs = torch.randn(args.batch, args.length, size, device=args.device, requires_grad=True)
    mask = torch.ones(args.batch, args.length, dtype=torch.bool, device=args.device)

    lstm = torch.nn.LSTM(size, hidden, batch_first=True).to(args.device)
    lstm_time = time_pass(lambda: lstm(inputs)[0].sum(), args.repeats, args.device)
    lstm_arithmetic = 4 * hidden * (size + hidden)
    encoders: Dict[str, MultiTaskEncoder] = {
        "srn (2 tasks)": SelectionRecurrentNetwork(size, hidden, num_tasks=2),
        "srn (3 tasks)": SelectionRecurrentNetwork(size, hidden, num_tasks=3),
        "pfn": PartitionFilterEncoder(size, hidden),
    }
    rows: List[Tuple[str, float, float, float]] = [("nn.LSTM", lstm_time, 1.0, 1.0)]
    for name, encoder in encoders.items():
        encoder.to(args.device)
        seconds = time_pass(encoder_pass(encoder, inputs, mask), args.repeats, args.device)
        arithmetic = encoder.cells[0].multiply_adds_per_step() / lstm_arithmetic
        rows.append((name, seconds, seconds / lstm_time, arithmetic))

    print(f"input {size}, hidden {hidden}, batch {args.batch}, length {args.length}, device {args.device}, "
          f"threads {torch.get_num_threads()}; forward + backward, median of {args.repeats}")
    print(f"{'encoder':<15} {'ms':>8} {'time ratio':>11} {'arith ratio':>12} {'time/arith':>11}  goal <= {GOAL}")
    for name, seconds, time_ratio, arithmetic in rows:
        verdict = "" if name == "nn.LSTM" else ("ok" if time_ratio <= GOAL * arithmetic else "MISSED")
        print(f"{name:<15} {1000 * seconds:8.1f} {time_ratio:11.2f} {arithmetic:12.2f} "
              f"{time_ratio / arithmetic:11.2f}  {verdict}")


if __name__ == "__main__":
    main()
