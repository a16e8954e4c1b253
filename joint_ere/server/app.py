"""
The HTTP service behind ``allennlp serve`` (FastAPI on uvicorn):

- ``POST /predict``: one input (``"text"``, ``{"text": ...}`` or ``{"tokens": [...]}``) or a JSON list of them;
  the answer is the predictor's output for each (one object, or a list in the same order);
- ``GET /health``: the model, its labels and the batching counters;
- ``GET /``: a page with a text box that draws the predicted entities and relations;
- ``GET /docs``: the OpenAPI documentation.

A pre-tokenised input may have at most ``max_tokens`` tokens (a text is cut into sentences by the server).
Every error is a JSON object ``{"error": "..."}`` with a 4xx status (400 a body that is not JSON, 413 a body over
``max_body_bytes``, 422 JSON that is not a valid input) and never a traceback; a failure inside the model is a 500
with a fixed message (the traceback goes to the server's log).
"""
import json
import logging
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any, Dict, List, Optional, Union

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from joint_ere.common.errors import DataError
from joint_ere.data.document import Document
from joint_ere.data.instance import ENTITY_LABELS, RELATION_LABELS
from joint_ere.predictors.predictor import Predictor
from joint_ere.server.batching import MicroBatcher

logger = logging.getLogger(__name__)

REQUEST = "request"  # DataErrors name the body: "request, record 1: the text is empty"
INLINE_PARSE_BYTES = 8192  # smaller bodies are parsed on the event loop, larger ones on a worker thread


class TextInput(BaseModel):
    model_config = ConfigDict(extra="allow")
    text: str = Field(description="raw text; split into sentences and tokens by the server")


class TokensInput(BaseModel):
    model_config = ConfigDict(extra="allow")
    tokens: List[str] = Field(description="one pre-tokenised sentence")


PredictBody = Union[str, TextInput, TokensInput, List[Union[str, TextInput, TokensInput]]]


class RequestError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _page() -> str:
    return resources.files("joint_ere.server").joinpath("page.html").read_text(encoding="utf-8")


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError(413, f"the body has {declared} bytes; the limit is {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():  # also bounds bodies sent without a Content-Length
        size += len(chunk)
        if size > limit:
            raise RequestError(413, f"the body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(body: bytes, predictor: Predictor, max_tokens: int) -> tuple:
    """``(inputs, is_list)``; a RequestError for a body that is not valid JSON or not a valid input."""
    if not body.strip():
        raise RequestError(400, "the body is empty; send JSON such as {\"text\": \"...\"}")
    try:
        payload = json.loads(body)
    except UnicodeDecodeError:
        raise RequestError(400, "the body is not UTF-8") from None
    except json.JSONDecodeError as error:
        raise RequestError(400, f"the body is not valid JSON: {error.msg} at line {error.lineno} column "
                                f"{error.colno}") from None
    is_list = isinstance(payload, list)
    records = payload if is_list else [payload]
    if not records:
        raise RequestError(422, "the list of inputs is empty")
    try:
        inputs = [predictor.parse_input(record, REQUEST, index) for index, record in enumerate(records)]
    except DataError as error:
        raise RequestError(422, str(error)) from None
    for index, item in enumerate(inputs):  # texts are cut into sentences; a token list goes in whole
        if isinstance(item, Document) and len(item.tokens) > max_tokens:
            raise RequestError(422, f"{REQUEST}, record {index}: {len(item.tokens)} tokens, more than the "
                                    f"{max_tokens} a tokenised input may have (send long inputs as text)")
    return inputs, is_list


def build_app(predictor: Predictor, max_batch_size: int = 64, max_wait_ms: float = 5.0,
              max_body_bytes: int = 1_000_000, max_tokens: int = 512, title: str = "joint-ere",
              model_process: Optional[Dict[str, Any]] = None) -> FastAPI:
    """``predictor`` parses the inputs and names the labels; it also predicts, on a thread, unless
    ``model_process`` gives the settings of ``worker.process_executor``: then a process of its own predicts."""
    if model_process is None:
        batcher = MicroBatcher(predictor.predict_inputs, max_batch_size=max_batch_size, max_wait_ms=max_wait_ms)
    else:
        from joint_ere.server import worker

        batcher = MicroBatcher(worker.predict, max_batch_size=max_batch_size, max_wait_ms=max_wait_ms,
                               executor_factory=lambda: worker.process_executor(**model_process))
    predictor.text_splitter  # noqa: B018  (spaCy is loaded before the first request, not during it)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(title=title, lifespan=lifespan,
                  description="Joint entity and relation extraction. POST raw text or tokens to /predict.")
    app.state.batcher = batcher
    vocab = predictor.model.vocab

    @app.exception_handler(RequestError)
    async def request_error(request: Request, error: RequestError) -> JSONResponse:
        return JSONResponse({"error": error.message}, status_code=error.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(error.detail)}, status_code=error.status_code, headers=error.headers)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, error: Exception) -> JSONResponse:
        logger.exception("%s %s failed", request.method, request.url.path)
        return JSONResponse({"error": "internal server error; see the server's log"}, status_code=500)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(_page())

    @app.get("/health")
    async def health() -> Dict[str, Any]:
        return {"status": "ok", "model": type(predictor.model).__name__,
                "entity_types": sorted(vocab.get_token_to_index_vocabulary(ENTITY_LABELS)),
                "relation_types": sorted(vocab.get_token_to_index_vocabulary(RELATION_LABELS)),
                "batching": {"max_batch_size": batcher.max_batch_size, "max_wait_ms": batcher.max_wait * 1000,
                             "batches_run": batcher.batches_run, "requests_served": batcher.requests_served}}

    @app.post("/predict", openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/PredictBody"},
                             "example": {"text": "John Smith works for Acme Corp. in Boston."}}}}},
              responses={400: {"description": "the body is not JSON"}, 413: {"description": "the body is too large"},
                         422: {"description": "JSON that is not a valid input"}})
    async def predict(request: Request) -> Any:
        """One input or a list: ``"text"``, ``{"text": ...}`` or ``{"tokens": [...]}``; other keys are echoed.
        Texts come back with character offsets (``char_start``/``char_end``) relative to the text."""
        body = await _read_body(request, max_body_bytes)
        if len(body) <= INLINE_PARSE_BYTES:  # tokenising a sentence takes less than a thread hop
            inputs, is_list = _parse(body, predictor, max_tokens)
        else:
            inputs, is_list = await run_in_threadpool(_parse, body, predictor, max_tokens)
        outputs = await batcher.submit(inputs)
        # Serialised here: FastAPI's generic encoder walks every token and offset in Python, several times slower.
        return Response(json.dumps(outputs if is_list else outputs[0], ensure_ascii=False),
                        media_type="application/json")

    def openapi() -> Dict[str, Any]:
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi
            from pydantic import TypeAdapter

            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes)
            body = TypeAdapter(PredictBody).json_schema(ref_template="#/components/schemas/{model}")
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(body.pop("$defs", {}))
            components["PredictBody"] = body
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
