"""
Throughput and latency of ``allennlp serve`` under many concurrent clients, against the in-process predictor.

    python benchmarks/serve.py ARCHIVE TEXTS [--clients 200] [--requests 2000] [--max-batch-size 64]
        [--max-wait-ms 5] [--threads N]

TEXTS: a SpERT JSON file (each record's tokens joined by spaces) or plain text, one text per line; every request
sends one text (``{"text": ...}``), cycling through the file.

- in-process: ``Predictor.predict_batch`` over all the texts, in batches of ``--max-batch-size`` (median of three
  passes after a warm-up): sentences/s;
- served: ``allennlp serve`` in a separate process; ``--clients`` clients in this process, each sending its next
  request as soon as the previous answer arrives (a closed loop), until ``--requests`` have been answered:
  requests/s, sentences/s and the latency p50 / p99 of each request. The server and the clients share the
  machine's cores, as they would on one host.
"""
import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from typing import List

import httpx
import torch

import joint_ere  # noqa: F401
from joint_ere.data.text import TextDocument
from joint_ere.predictors import Predictor


def read_texts(path: str) -> List[str]:
    with open(path, encoding="utf-8") as handle:
        content = handle.read()
    if content.lstrip().startswith("["):
        return [" ".join(record["tokens"]) for record in json.loads(content)]
    return [line for line in content.split("\n") if line.strip()]


def in_process(archive: str, texts: List[str], batch_size: int) -> float:
    predictor = Predictor.from_path(archive)
    predictor.batch_size = batch_size
    inputs = [predictor.parse_input(text) for text in texts]
    sentences = sum(len(item.sentences) for item in inputs if isinstance(item, TextDocument))
    predictor.predict_batch(texts[:batch_size])  # warm-up
    times = []
    for _ in range(3):
        started = time.perf_counter()
        predictor.predict_batch(texts)  # texts: tokenising is part of the work, as it is for the server
        times.append(time.perf_counter() - started)
    return sentences / statistics.median(times)


async def load(url: str, texts: List[str], clients: int, requests: int) -> dict:
    latencies: List[float] = []
    sentences = 0
    issued = 0

    async def client(session: httpx.AsyncClient) -> None:
        nonlocal issued, sentences
        while issued < requests:
            text = texts[issued % len(texts)]
            issued += 1
            started = time.perf_counter()
            response = await session.post(f"{url}/predict", json={"text": text})
            latencies.append(time.perf_counter() - started)
            response.raise_for_status()
            sentences += len(response.json()["sentences"])

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=300) as session:
        await session.post(f"{url}/predict", json={"text": texts[0]})  # warm-up
        started = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(clients)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {"requests_per_s": len(latencies) / elapsed, "sentences_per_s": sentences / elapsed,
            "p50_ms": 1000 * latencies[len(latencies) // 2],
            "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("archive")
    parser.add_argument("texts")
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--max-batch-size", type=int, default=64)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    texts = read_texts(args.texts)
    offline = in_process(args.archive, texts, args.max_batch_size)

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = dict(os.environ, **({"OMP_NUM_THREADS": str(args.threads)} if args.threads else {}))
    server = subprocess.Popen([sys.executable, "-m", "joint_ere", "serve", args.archive, "--port", str(port),
                               "--max-batch-size", str(args.max_batch_size), "--max-wait-ms", str(args.max_wait_ms)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                if httpx.get(f"{url}/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.time() > deadline or server.poll() is not None:
                raise SystemExit("the server did not start")
            time.sleep(0.2)
        served = asyncio.run(load(url, texts, args.clients, args.requests))
        batching = httpx.get(f"{url}/health").json()["batching"]
    finally:
        server.terminate()
        server.wait(timeout=30)
    result = {"archive": args.archive, "texts": args.texts, "clients": args.clients, "requests": args.requests,
              "torch_threads": torch.get_num_threads(), "in_process_sentences_per_s": round(offline, 1),
              **{k: round(v, 1) for k, v in served.items()},
              "served_over_in_process": round(served["sentences_per_s"] / offline, 3),
              "requests_per_model_call": round(batching["requests_served"] / max(1, batching["batches_run"]), 1)}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
