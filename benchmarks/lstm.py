"""
The ``lstm`` encoder's CPU path against AllenNLP's packed one, on one BiLSTM layer.

    python benchmarks/lstm.py [--batch 64] [--length 30] [--input 100] [--hidden 100] [--layers 1] [--threads N]

Sentences of random lengths between 2/3 of ``--length`` and ``--length`` (as in a length-bucketed batch).
Reported, in milliseconds (median of 20 after a warm-up): forward + backward in training mode, and the forward
pass under ``torch.inference_mode`` in float32 and with ``inference_dtype = bfloat16`` (``--use-amp``), for
allennlp-light's ``PytorchSeq2SeqWrapper`` around ``torch.nn.LSTM`` (PackedSequence) and for
``joint_ere.modules.encoders.LstmSeq2SeqEncoder`` (each direction over the padded batch).
"""
import argparse
import json
import statistics
import time
from typing import Callable

import torch
from allennlp_light.modules.seq2seq_encoders.pytorch_seq2seq_wrapper import PytorchSeq2SeqWrapper

from joint_ere.modules.encoders import LstmSeq2SeqEncoder


def median_ms(function: Callable[[], object], rounds: int = 20) -> float:
    function()
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return round(1000 * statistics.median(times), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--length", type=int, default=30)
    parser.add_argument("--input", type=int, default=100)
    parser.add_argument("--hidden", type=int, default=100)
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    ours = LstmSeq2SeqEncoder(args.input, args.hidden, num_layers=args.layers, bidirectional=True)
    lstm = torch.nn.LSTM(args.input, args.hidden, args.layers, batch_first=True, bidirectional=True)
    lstm.load_state_dict(ours._module.state_dict())
    packed = PytorchSeq2SeqWrapper(lstm)
    inputs = torch.randn(args.batch, args.length, args.input)
    lengths = torch.randint(2 * args.length // 3, args.length + 1, (args.batch,))
    mask = torch.arange(args.length).unsqueeze(0) < lengths.unsqueeze(1)

    def training(encoder: torch.nn.Module) -> Callable[[], None]:
        def step() -> None:
            encoder(inputs, mask).sum().backward()
        return step

    def inference(encoder: torch.nn.Module) -> Callable[[], None]:
        def forward() -> None:
            with torch.inference_mode():
                encoder(inputs, mask)
        return forward

    results = {**vars(args), "threads": torch.get_num_threads()}
    results["train_ms_packed"] = median_ms(training(packed))
    results["train_ms_padded"] = median_ms(training(ours))
    results["inference_ms_packed"] = median_ms(inference(packed))
    results["inference_ms_padded"] = median_ms(inference(ours))
    ours.inference_dtype = torch.bfloat16
    results["inference_ms_padded_bfloat16"] = median_ms(inference(ours))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
