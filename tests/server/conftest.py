import threading
import time
from contextlib import contextmanager

import pytest

from joint_ere.server.local import free_port


@contextmanager
def running_server(app):
    """``app`` on uvicorn in a background thread, on a free localhost port; yields the base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started:
        if time.time() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def quickstart_predictor(quickstart_archive):
    from joint_ere.predictors import Predictor

    return Predictor.from_path(str(quickstart_archive), cuda_device=-1)


@pytest.fixture(scope="module")
def server_url(quickstart_predictor):
    from joint_ere.server import build_app

    app = build_app(quickstart_predictor, max_batch_size=32, max_wait_ms=5, max_body_bytes=20_000, max_tokens=50)
    with running_server(app) as url:
        yield url
