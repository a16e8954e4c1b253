"""
Training and prediction speed (sentences/s) and prediction peak memory for a config (default: CoNLL04).

    JOINT_ERE_DATA=../shared/data GLOVE_50D=... python benchmarks/speed.py [--config training_config/conll04.jsonnet]
        [-o OVERRIDES] [--archive runs/conll04/model.tar.gz] [--epochs 2] [--threads N] [--batch-size 64]
        [--streams N] [--use-amp] [--cuda-device 0]

Training: full epochs over the training split (forward, backward, optimizer step), after one warm-up epoch, with
the config's optimizer and, where its trainer has `use_amp`, under autocast to its `amp_dtype` (float16 with
gradient scaling); `-o` overrides the config as in `allennlp train`, e.g.
`-o '{"trainer": {"use_amp": true, "amp_dtype": "bfloat16"}}'`.
Beside it, the mean training step (ms) and its ratio to the embedder's own forward + backward on the same batches
(`step_to_embedder_ratio`: how much the model costs beyond its word representations).
Prediction: the predictor over the validation split (median of five passes after a warm-up), in this process, and
its ratio to the bare model forward over the same batches, run in as many streams as the predictor uses
(`predict_to_forward_ratio`: what indexing, batching and decoding to documents cost); --streams sets the
predictor's streams (batches at once on a CPU, each on its share of torch's threads). Peak RSS: a separate
`allennlp predict` process over the same file (the whole command: imports, archive loading, prediction), read
from its /proc/self/status (Linux).
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
from typing import Dict, List

import torch

import joint_ere  # noqa: F401
from joint_ere.archival import load_archive
from joint_ere.commands.train import train_model
from joint_ere.common import construct, load_config
from joint_ere.data import DataLoader, DatasetReader, Document, Vocabulary
from joint_ere.models import Model
from joint_ere.predictors import Predictor
from joint_ere.training.optimizers import Optimizer


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def training_speed(config: str, overrides: str, epochs: int, device: torch.device) -> Dict[str, float]:
    """Sentences/s over whole epochs, the mean step (ms) and the embedder's own forward + backward (ms) on the
    same batches."""
    params = load_config(config, overrides).as_dict(quiet=True)
    reader = construct(DatasetReader, params["dataset_reader"], "dataset_reader")
    train = reader.read(params["train_data_path"])
    vocab = Vocabulary.from_instances(train)
    model = construct(Model, params["model"], "model", vocab=vocab).to(device)
    loader = construct(DataLoader, params["data_loader"], "data_loader", instances=train)
    loader.index_with(vocab)
    loader.set_target_device(device)
    # The config's optimizer (its fused Adam by default), without the learning-rate schedule.
    optimizer = construct(Optimizer, params.get("trainer", {}).get("optimizer", {}), "trainer.optimizer",
                          model_parameters=list(model.named_parameters()))
    trainer = params.get("trainer", {})
    amp_dtype = getattr(torch, trainer.get("amp_dtype", "float16")) if trainer.get("use_amp") else None
    if amp_dtype == torch.float16 and device.type != "cuda":
        raise SystemExit("trainer.use_amp with float16 needs a GPU (--cuda-device); on a CPU set amp_dtype to bfloat16")
    scaler = torch.amp.GradScaler(device.type) if amp_dtype == torch.float16 else None
    model.train()

    def epoch() -> int:
        steps = 0
        for batch in loader:
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                loss = model(**batch)["loss"]
            if scaler:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            steps += 1
        return steps

    epoch()  # warm-up
    synchronize(device)
    started = time.perf_counter()
    steps = sum(epoch() for _ in range(epochs))
    synchronize(device)
    elapsed = time.perf_counter() - started

    # The embedder alone (forward + backward into its parameters) over one epoch of the same batches.
    batches = list(loader)
    embedder = model.text_field_embedder
    for warm in (True, False):
        synchronize(device)
        started = time.perf_counter()
        for batch in batches:
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                embedded = embedder(batch["tokens"])
            embedded.float().sum().backward()
        synchronize(device)
        if not warm:
            embedder_ms = 1000 * (time.perf_counter() - started) / len(batches)
    optimizer.zero_grad(set_to_none=True)
    step_ms = 1000 * elapsed / steps
    return {"train_amp_dtype": str(amp_dtype).replace("torch.", "") if amp_dtype else None,
            "train_sentences_per_second": round(epochs * len(train) / elapsed, 1),
            "train_step_ms": round(step_ms, 2), "embedder_forward_backward_ms": round(embedder_ms, 2),
            "step_to_embedder_ratio": round(step_ms / embedder_ms, 2)}


def bare_forward_speed(predictor: Predictor, documents: List[Document], batch_size: int) -> float:
    """Sentences/s of the model's forward alone (no indexing, batching or decoding) over the same batches."""
    model = predictor.model
    device = next(model.parameters()).device
    batches = [predictor.model_inputs(documents[i: i + batch_size]) for i in range(0, len(documents), batch_size)]
    model.eval()

    def forward(batch: Dict) -> None:
        with torch.inference_mode():
            model(**batch)

    passes = []
    for _ in range(6):
        synchronize(device)
        started = time.perf_counter()
        with predictor.stream_pool(len(batches)) as pool:  # as many batches at once as the predictor runs
            list(pool.map(forward, batches))
        synchronize(device)
        passes.append(len(documents) / (time.perf_counter() - started))
    return statistics.median(passes[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="training_config/conll04.jsonnet")
    parser.add_argument("-o", "--overrides", default="", help="a JSON object merged into the config")
    parser.add_argument("--archive", help="a trained model.tar.gz for the prediction measurements")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--batch-size", type=int, default=64, help="prediction batch size")
    parser.add_argument("--streams", type=int, default=None,
                        help="batches predicted at once on a CPU (0: one per torch thread; default: the model's)")
    parser.add_argument("--use-amp", action="store_true", help="predict with the transformer in bfloat16")
    parser.add_argument("--skip-training", action="store_true", help="measure prediction only")
    parser.add_argument("--cuda-device", type=int, default=-1, help="a GPU for training and prediction (-1: CPU)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cpu") if args.cuda_device < 0 else torch.device(f"cuda:{args.cuda_device}")
    results = {"config": args.config, "overrides": args.overrides or None, "torch_threads": torch.get_num_threads(),
               "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"}
    if not args.skip_training:
        results.update(training_speed(args.config, args.overrides, args.epochs, device))
    results["predict_batch_size"], results["predict_use_amp"] = args.batch_size, args.use_amp
    results["predict_streams"] = "model's choice" if args.streams is None else args.streams

    params = load_config(args.config, args.overrides).as_dict(quiet=True)
    with tempfile.TemporaryDirectory() as temp:
        archive_path = args.archive
        if archive_path is None:
            config = load_config(args.config, {**params, "trainer": {**params["trainer"], "num_epochs": 1,
                                                                     "show_progress": False}})
            train_model(config, os.path.join(temp, "run"))
            archive_path = os.path.join(temp, "run", "model.tar.gz")
        archive = load_archive(archive_path, cuda_device=args.cuda_device, use_amp=args.use_amp)
        predictor = Predictor.from_archive(archive)
        predictor.batch_size = args.batch_size
        predictor.streams = args.streams
        documents = archive.validation_dataset_reader.read_documents(params["validation_data_path"])
        documents.sort(key=lambda d: len(d.tokens))
        passes = []
        for _ in range(6):  # the first pass warms up; the median of the other five is reported
            started = time.perf_counter()
            predictor.predict_sorted(documents)
            passes.append(len(documents) / (time.perf_counter() - started))
        predict = statistics.median(passes[1:])
        results["predict_sentences_per_second"] = round(predict, 1)
        results["predict_sentences_per_second_range"] = [round(min(passes[1:]), 1), round(max(passes[1:]), 1)]
        bare = bare_forward_speed(predictor, documents, args.batch_size)
        results["bare_forward_sentences_per_second"] = round(bare, 1)
        results["predict_to_forward_ratio"] = round(predict / bare, 2)

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
        if args.streams is not None:
            command += ["--streams", str(args.streams)]
        if args.cuda_device >= 0:
            command += ["--cuda-device", str(args.cuda_device)]
        started = time.perf_counter()
        finished = subprocess.run(command, check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        results["predict_command_seconds"] = round(time.perf_counter() - started, 2)
        results["predict_peak_rss_mb"] = round(int(finished.stdout.split()[-1]) / 1024, 1)
        results["predict_sentences"] = len(documents)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
