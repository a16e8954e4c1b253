"""
Prediction speed of Cascade-SRN archives, each against its own embedder + encoder forward over the same batches.

    JOINT_ERE_DATA=../shared/data python benchmarks/cascade.py runs/sc_late/model.tar.gz \
        [runs/sc_early/model.tar.gz ...] [--data ../shared/data/scierc/dev_triples.json] [--batch-size 32] \
        [--passes 5] [--cuda-device 0]

Batches are built once (sorted by length, as `allennlp predict` does). "cascade" times the whole model — EE, SE,
SOE and decoding to documents (for early fusion, with every marked sequence's encoding); "bare" times only
`text_field_embedder` + `encoder` over the plain text, the part every variant of the model shares. Sentences/s are
medians over the passes after one warm-up pass. With several archives, ``over_first`` compares each one's cascade
with the first's (early fusion against late fusion: the paper measured 1/33).
"""
import argparse
import json
import statistics
import time
from typing import Callable, List

import torch
from allennlp_light.nn import util

import joint_ere  # noqa: F401
from joint_ere.archival import load_archive
from joint_ere.data import batch_instances, move_to_device


def timed(passes: int, sentences: int, run: Callable[[], None], device: torch.device) -> List[float]:
    rates = []
    for index in range(passes + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        run()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if index:  # the first pass warms up
            rates.append(sentences / (time.perf_counter() - started))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("archives", nargs="+")
    parser.add_argument("--data", default="../shared/data/scierc/dev_triples.json")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--cuda-device", type=int, default=-1)
    args = parser.parse_args()
    report = [measure(archive, args) for archive in args.archives]
    for result in report[1:]:
        result["over_first"] = round(result["cascade_sentences_per_second"]
                                     / report[0]["cascade_sentences_per_second"], 3)
    print(json.dumps(report, indent=2))


def measure(archive_path: str, args: argparse.Namespace) -> dict:
    archive = load_archive(archive_path, cuda_device=args.cuda_device)
    model, reader = archive.model, archive.validation_dataset_reader
    device = next(model.parameters()).device
    instances = sorted(reader.read(args.data), key=len)
    for instance in instances:
        instance.index_fields(model.vocab)
    batches = []
    for start in range(0, len(instances), args.batch_size):
        batch = move_to_device(batch_instances(instances[start: start + args.batch_size]), device)
        batch.pop("entities"), batch.pop("relations")  # prediction: no gold
        batches.append(batch)

    def cascade() -> None:
        with torch.inference_mode():
            for batch in batches:
                model.make_output_human_readable(model(**batch))

    def bare() -> None:
        with torch.inference_mode():
            for batch in batches:
                mask = util.get_text_field_mask(batch["tokens"])
                model.encoder(model.text_field_embedder(batch["tokens"]), mask)

    model.eval()
    results = {"archive": archive_path, "fusion": type(getattr(model, "fusion", None)).__name__,
               "sentences": len(instances), "batch_size": args.batch_size, "device": str(device),
               "threads": torch.get_num_threads()}
    for name, run in (("cascade", cascade), ("bare", bare)):
        rates = timed(args.passes, len(instances), run, device)
        results[f"{name}_sentences_per_second"] = round(statistics.median(rates), 1)
        results[f"{name}_range"] = [round(min(rates), 1), round(max(rates), 1)]
    results["cascade_over_bare"] = round(results["cascade_sentences_per_second"]
                                         / results["bare_sentences_per_second"], 3)
    return results


if __name__ == "__main__":
    main()
