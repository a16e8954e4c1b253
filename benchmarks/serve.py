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
  machine's cores, as they would on one host. The in-process figure is taken with all of torch's threads and
  with the server's (``serve --threads``, by default one fewer than the cores).
"""
import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from typing import List

import httpx
import torch

import joint_ere  # noqa: F401
from joint_ere.predictors import Predictor
from joint_ere.predictors.predictor import sentence_count
from joint_ere.server.local import free_port, wait_until_ready


def read_texts(path: str) -> List[str]:
    with open(path, encoding="utf-8") as handle:
        content = handle.read()
    if content.lstrip().startswith("["):
        return [" ".join(record["tokens"]) for record in json.loads(content)]
    return [line for line in content.split("\n") if line.strip()]


def in_process(archive: str, texts: List[str], batch_size: int, threads: int) -> float:
    torch.set_num_threads(threads)
    predictor = Predictor.from_path(archive)
    predictor.batch_size = batch_size
    inputs = [predictor.parse_input(text) for text in texts]
    sentences = sentence_count(inputs)
    predictor.predict_batch(texts[:batch_size])  # warm-up
    times = []
    for _ in range(3):
        started = time.perf_counter()
        predictor.predict_batch(texts)  # texts: tokenising is part of the work, as it is for the server
        times.append(time.perf_counter() - started)
    return sentences / statistics.median(times)


async def post(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, body: bytes) -> bytes:
    writer.write(b"POST /predict HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    answer = await reader.readexactly(length)
    if status != 200:
        raise RuntimeError(f"HTTP {status}: {answer[:200]!r}")
    return answer


async def load(port: int, texts: List[str], clients: int, requests: int) -> dict:
    """A closed loop of ``clients`` keep-alive connections. The client is a few lines over asyncio streams:
    httpx's AsyncClient topped out near 100 requests/s with 200 connections here, below the server."""
    latencies: List[float] = []
    sentences = 0
    issued = 0

    async def client() -> None:
        nonlocal issued, sentences
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while issued < requests:
            body = json.dumps({"text": texts[issued % len(texts)]}).encode()
            issued += 1
            started = time.perf_counter()
            answer = await post(reader, writer, body)
            latencies.append(time.perf_counter() - started)
            sentences += len(json.loads(answer)["sentences"])
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
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
    parser.add_argument("--threads", type=int, default=None,
                        help="the server's torch threads (default: serve's own, one fewer than the cores)")
    args = parser.parse_args()
    texts = read_texts(args.texts)
    all_threads = torch.get_num_threads()
    server_threads = args.threads or max(1, (os.cpu_count() or 2) - 1)
    offline = in_process(args.archive, texts, args.max_batch_size, all_threads)
    offline_same_threads = in_process(args.archive, texts, args.max_batch_size, server_threads)

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "joint_ere", "serve", args.archive, "--port", str(port),
                               "--max-batch-size", str(args.max_batch_size), "--max-wait-ms", str(args.max_wait_ms),
                               "--threads", str(server_threads)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(url, server, timeout=120)
        asyncio.run(load(port, texts, min(args.clients, 20), 200))  # warm-up
        served = asyncio.run(load(port, texts, args.clients, args.requests))
        batching = httpx.get(f"{url}/health").json()["batching"]
    finally:
        server.terminate()
        server.wait(timeout=30)
    result = {"archive": args.archive, "texts": args.texts, "clients": args.clients, "requests": args.requests,
              "in_process_threads": all_threads, "in_process_sentences_per_s": round(offline, 1),
              "server_threads": server_threads,
              "in_process_sentences_per_s_at_server_threads": round(offline_same_threads, 1),
              **{k: round(v, 1) for k, v in served.items()},
              "served_over_in_process": round(served["sentences_per_s"] / offline, 3),
              "served_over_in_process_at_server_threads": round(served["sentences_per_s"] / offline_same_threads, 3),
              "requests_per_model_call": round(batching["requests_served"] / max(1, batching["batches_run"]), 1)}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
