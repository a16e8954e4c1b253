"""Helpers for running a server on this machine (the tests and ``benchmarks/serve.py``): a free port, and
waiting until a started server answers ``/health``."""
import socket
import subprocess
import time
from typing import Optional


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_ready(url: str, process: Optional[subprocess.Popen] = None, timeout: float = 90.0) -> None:
    """Returns once ``GET url/health`` answers 200; a RuntimeError if ``process`` exits first or time runs out."""
    import httpx

    deadline = time.time() + timeout
    while True:
        try:
            if httpx.get(f"{url}/health").status_code == 200:
                return
        except httpx.TransportError:
            pass
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode}")
        if time.time() > deadline:
            raise RuntimeError(f"the server at {url} did not answer within {timeout:.0f} s")
        time.sleep(0.2)
