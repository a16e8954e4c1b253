"""
Training and prediction speed (sentences/s) and prediction peak memory for a config (default: CoNLL04).

    JOINT_ERE_DATA=../shared/data GLOVE_50D=... python benchmarks/speed.py [--config training_config/conll04.jsonnet]
        [--archive runs/conll04/model.tar.gz] [--epochs 2] [--threads N] [--batch-size 64] [--use-amp]

Training: full epochs over the training split (forward, backward, optimizer step), after one warm-up epoch.
Prediction: the predictor over the validation split (median of five passes after a warm-up), in this process; peak RSS: a separate
`allennlp predict` process over the same file (the whole command: imports, archive loading, prediction),
read from its /proc/self/status (Linux).
--use-amp runs the transformer embedders in bfloat16 for the prediction measurements (`predict --use-amp`).
Without --archive, a model is trained for one epoch and archived in a temp folder first.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch

import joint_ere  # noqa: F401
from joint_ere.archival import load_archive
from joint_ere.commands.train import train_model
from joint_ere.common import construct, load_config
from joint_ere.data import DataLoader, DatasetReader, Vocabulary
from joint_ere.models import Model
from joint_ere.predictors import Predictor


def training_speed(config: str, epochs: int) -> float:
    params = load_config(config).as_dict(quiet=True)
    reader = construct(DatasetReader, params["dataset_reader"], "dataset_reader")
    train = reader.read(params["train_data_path"])
    vocab = Vocabulary.from_instances(train)
    model = construct(Model, params["model"], "model", vocab=vocab)
    loader = construct(DataLoader, params["data_loader"], "data_loader", instances=train)
    loader.index_with(vocab)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()

    def epoch() -> None:
        for batch in loader:
            model(**batch)["loss"].backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

    epoch()  # warm-up
    started = time.perf_counter()
    for _ in range(epochs):
        epoch()
    return epochs * len(train) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="training_config/conll04.jsonnet")
    parser.add_argument("--archive", help="a trained model.tar.gz for the prediction measurements")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--batch-size", type=int, default=64, help="prediction batch size")
    parser.add_argument("--use-amp", action="store_true", help="predict with the transformer in bfloat16")
    parser.add_argument("--skip-training", action="store_true", help="measure prediction only")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    results = {"config": args.config, "torch_threads": torch.get_num_threads()}
    if not args.skip_training:
        results["train_sentences_per_second"] = round(training_speed(args.config, args.epochs), 1)
    results["predict_batch_size"], results["predict_use_amp"] = args.batch_size, args.use_amp

    params = load_config(args.config).as_dict(quiet=True)
    with tempfile.TemporaryDirectory() as temp:
        archive_path = args.archive
        if archive_path is None:
            config = load_config(args.config, {"trainer": {**params["trainer"], "num_epochs": 1,
                                                           "show_progress": False}})
            train_model(config, os.path.join(temp, "run"))
            archive_path = os.path.join(temp, "run", "model.tar.gz")
        archive = load_archive(archive_path, use_amp=args.use_amp)
        predictor = Predictor.from_archive(archive)
        documents = archive.validation_dataset_reader.read_documents(params["validation_data_path"])
        documents.sort(key=lambda d: len(d.tokens))
        passes = []
        for _ in range(6):  # the first pass warms up; the median of the other five is reported
            started = time.perf_counter()
            for i in range(0, len(documents), args.batch_size):
                predictor.predict_documents(documents[i: i + args.batch_size])
            passes.append(len(documents) / (time.perf_counter() - started))
        results["predict_sentences_per_second"] = round(statistics.median(passes[1:]), 1)
        results["predict_sentences_per_second_range"] = [round(min(passes[1:]), 1), round(max(passes[1:]), 1)]

        local = os.path.join(temp, "input.json")
        with open(local, "w", encoding="utf-8") as handle:
            json.dump([{"tokens": d.tokens} for d in documents], handle)
        # The child reports its own high-water mark (VmHWM): rusage of children would count the pages a
        # forked child shares with this, much larger, process.
        child = ("import sys; from joint_ere.commands import main; code = main(sys.argv[1:]); "
                 "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0]); sys.exit(code)")
        command = [sys.executable, "-c", child, "predict", archive_path, local, "--silent",
                   "--output-file", os.path.join(temp, "out.jsonl"), "--batch-size", str(args.batch_size)]
        if args.use_amp:
            command.append("--use-amp")
        started = time.perf_counter()
        finished = subprocess.run(command, check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        results["predict_command_seconds"] = round(time.perf_counter() - started, 2)
        results["predict_peak_rss_mb"] = round(int(finished.stdout.split()[-1]) / 1024, 1)
        results["predict_sentences"] = len(documents)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
