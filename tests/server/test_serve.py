"""``allennlp serve`` through a real HTTP client against uvicorn: offsets, errors, micro-batching under load."""
import asyncio
import json

import httpx
import pytest

from joint_ere.commands import main
from joint_ere.server import MicroBatcher, build_app
from joint_ere.server.local import free_port, wait_until_ready
from tests.commands.test_predict_text import TEXTS, check_offsets
from tests.server.conftest import running_server

SENTENCE = "John Smith works for Acme Corp in Boston ."


def test_raw_text_in_offsets_out(server_url):
    response = httpx.post(f"{server_url}/predict", json={"text": TEXTS[1], "id": "x"})
    assert response.status_code == 200
    output = response.json()
    assert output["id"] == "x" and output["text"] == TEXTS[1]
    check_offsets(output)
    assert {e["text"] for e in output["entities"]} >= {"Globex", "Paris"}


def test_the_trained_sentence_gives_its_relations(server_url):
    output = httpx.post(f"{server_url}/predict", json=SENTENCE).json()  # a bare JSON string is a text
    check_offsets(output)
    pairs = {(output["entities"][r["head"]]["text"], r["type"], output["entities"][r["tail"]]["text"])
             for r in output["relations"]}
    assert pairs == {("John Smith", "Work_For", "Acme Corp"), ("Acme Corp", "OrgBased_In", "Boston")}


def test_a_list_in_is_a_list_out_in_order(server_url):
    body = [{"text": t} for t in TEXTS] + [{"tokens": ["Mary", "Jones", "lives", "in", "Paris", "."]}]
    outputs = httpx.post(f"{server_url}/predict", json=body).json()
    assert [o.get("text") for o in outputs] == TEXTS + [None]
    assert outputs[3]["tokens"][0] == "Mary"
    single = [httpx.post(f"{server_url}/predict", json=record).json() for record in body]
    assert single == outputs  # batched together or alone, the same answers


@pytest.mark.parametrize("content, status, message", [
    (b'{"text": "unterminated', 400, "not valid JSON"),
    (b"", 400, "the body is empty"),
    (b'{"text": "caf\xe9"}', 400, "not UTF-8"),
    (b'{"text": 3}', 422, 'request, record 0: "text" must be a string, not int'),
    (b'{"tokens": "Mary Jones"}', 422, '"tokens" must be a list of strings'),
    (b'{"tokens": []}', 422, "empty token list"),
    (b'{"txet": "typo"}', 422, "expected a text"),
    (b"null", 422, "expected a text"),
    (b"[]", 422, "the list of inputs is empty"),
    (b'[{"text": "fine"}, {"text": "  \\n "}]', 422, "request, record 1: the text is empty"),
    (b'{"text": ""}', 422, "the text is empty"),
    (json.dumps({"tokens": ["w"] * 51}).encode(), 422, "51 tokens, more than the 50"),
    (json.dumps({"text": "word " * 5000}).encode(), 413, "the limit is 20000"),
])
def test_bad_bodies_get_json_errors(server_url, content, status, message):
    response = httpx.post(f"{server_url}/predict", content=content, headers={"Content-Type": "application/json"})
    assert response.status_code == status
    assert message in response.json()["error"]
    assert "Traceback" not in response.text


def test_an_oversized_body_without_content_length_is_refused(server_url):
    def chunks():
        for _ in range(30):
            yield b" " * 1000

    response = httpx.post(f"{server_url}/predict", content=chunks())  # chunked transfer, no Content-Length
    assert response.status_code == 413 and "over the limit" in response.json()["error"]


def test_wrong_method_and_path_are_json_errors(server_url):
    assert httpx.get(f"{server_url}/predict").json() == {"error": "Method Not Allowed"}
    response = httpx.get(f"{server_url}/missing")
    assert response.status_code == 404 and response.json() == {"error": "Not Found"}


def test_health_docs_and_page(server_url):
    health = httpx.get(f"{server_url}/health").json()
    assert health["status"] == "ok" and health["model"] == "MultiHeadSelection"
    assert health["entity_types"] == ["Loc", "Org", "Peop"]
    schema = httpx.get(f"{server_url}/openapi.json").json()
    assert "PredictBody" in schema["components"]["schemas"] and "/predict" in schema["paths"]
    assert httpx.get(f"{server_url}/docs").status_code == 200
    page = httpx.get(f"{server_url}/")
    assert page.headers["content-type"].startswith("text/html") and '<textarea id="text"' in page.text


def test_two_hundred_concurrent_requests_all_succeed_and_are_batched(server_url):
    texts = [f"{TEXTS[i % 3]} Request {i} ." for i in range(200)]

    async def fire():
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        async with httpx.AsyncClient(limits=limits, timeout=120) as client:
            return await asyncio.gather(*(client.post(f"{server_url}/predict", json={"text": t, "n": i})
                                          for i, t in enumerate(texts)))

    before = httpx.get(f"{server_url}/health").json()["batching"]
    responses = asyncio.run(fire())
    assert [r.status_code for r in responses] == [200] * 200
    for i, response in enumerate(responses):  # each client got its own answer back
        output = response.json()
        assert output["n"] == i and output["text"] == texts[i]
        check_offsets(output)
    after = httpx.get(f"{server_url}/health").json()["batching"]
    assert after["requests_served"] - before["requests_served"] == 200
    assert after["batches_run"] - before["batches_run"] < 200  # requests shared model calls


def test_a_failing_model_is_a_500_without_details(quickstart_predictor, monkeypatch):
    app = build_app(quickstart_predictor)
    with running_server(app) as url:
        monkeypatch.setattr(app.state.batcher, "predict", lambda inputs: 1 / 0)
        response = httpx.post(f"{url}/predict", json={"text": "Mary Jones lives in Paris."})
        assert response.status_code == 500
        assert response.json() == {"error": "internal server error; see the server's log"}
        monkeypatch.undo()  # the batcher goes on serving after a failed batch
        assert httpx.post(f"{url}/predict", json={"text": "Mary Jones lives in Paris."}).status_code == 200


def test_micro_batcher_joins_requests_that_arrive_together():
    calls = []

    def predict(inputs):
        calls.append(len(inputs))
        return [{"echo": item} for item in inputs]

    async def scenario():
        batcher = MicroBatcher(predict, max_batch_size=4, max_wait_ms=50)
        await batcher.start()
        from joint_ere.data import Document

        docs = [Document([f"w{i}"]) for i in range(6)]
        results = await asyncio.gather(*(batcher.submit([d]) for d in docs))
        await batcher.stop()
        return docs, results

    docs, results = asyncio.run(scenario())
    assert [r[0]["echo"] for r in results] == docs
    # start() runs an empty call (a worker process loads its model then); the first batch is full at 4 sentences,
    # the rest waits for at most 50 ms
    assert calls == [0, 4, 2]


def test_the_next_batch_is_handed_over_while_the_model_runs_the_current_one():
    """max_in_flight=2: while the (one-worker) executor runs batch 1, batch 2 already waits in its queue, so the
    model never waits for the event loop between batches; the answers still go to the right requests."""
    import concurrent.futures
    import threading

    release = threading.Event()
    submitted = []

    class CountingExecutor(concurrent.futures.ThreadPoolExecutor):
        def submit(self, fn, *args, **kwargs):
            submitted.append(len(args[0]))
            return super().submit(fn, *args, **kwargs)

    def predict(inputs):
        if inputs:
            release.wait(timeout=10)
        return [{"echo": item} for item in inputs]

    async def scenario():
        from joint_ere.data import Document

        batcher = MicroBatcher(predict, max_batch_size=2, max_wait_ms=0, max_in_flight=2,
                               executor_factory=lambda: CountingExecutor(max_workers=1))
        await batcher.start()
        docs = [Document([f"w{i}"]) for i in range(6)]
        pending = asyncio.gather(*(batcher.submit([d]) for d in docs))
        for _ in range(200):  # the first batch is blocked in predict
            await asyncio.sleep(0.005)
            if len(submitted) >= 3:
                break
        handed_over = list(submitted)
        release.set()
        results = await pending
        await batcher.stop()
        return docs, results, handed_over

    docs, results, handed_over = asyncio.run(scenario())
    assert handed_over == [0, 2, 2]  # start()'s empty call, the running batch and the one waiting; not a third
    assert submitted == [0, 2, 2, 2]
    assert [r[0]["echo"] for r in results] == docs


def test_serve_refuses_bad_arguments(quickstart_archive, capsys):
    assert main(["serve", str(quickstart_archive), "--port", "70000"]) == 1
    assert "--port 70000" in capsys.readouterr().err


def test_the_model_in_its_own_process_answers_the_same_and_survives_a_crash(quickstart_archive,
                                                                             quickstart_predictor):
    settings = {"archive_file": str(quickstart_archive), "cuda_device": -1, "overrides": "", "use_amp": False,
                "predictor_name": None, "batch_size": 64, "threads": 1, "packages": []}
    app = build_app(quickstart_predictor, model_process=settings)
    body = [{"text": t} for t in TEXTS] + [SENTENCE]
    with running_server(app) as url:
        assert httpx.post(f"{url}/predict", json=body).json() == quickstart_predictor.predict_batch(body)
        for process in list(app.state.batcher._executor._processes.values()):  # the worker dies (e.g. OOM)
            process.kill()
            process.join()
        failed = httpx.post(f"{url}/predict", json=SENTENCE, timeout=60)
        assert failed.status_code == 500 and "Traceback" not in failed.text
        again = httpx.post(f"{url}/predict", json=SENTENCE, timeout=60)  # a new worker was started
        assert again.status_code == 200 and again.json() == quickstart_predictor.predict(SENTENCE)


def test_the_serve_command(quickstart_archive, quickstart_predictor):
    """``allennlp serve`` as a user starts it: its own process, the model in another."""
    import subprocess
    import sys

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "joint_ere", "serve", str(quickstart_archive), "--port",
                               str(port), "--threads", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(url, server)
        assert httpx.post(f"{url}/predict", json={"text": SENTENCE}).json() == quickstart_predictor.predict(SENTENCE)
    finally:
        server.terminate()
        server.wait(timeout=30)
