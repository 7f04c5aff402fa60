"""The prediction server's FastAPI app: ``create_app(model)``; :func:`serve` runs it on uvicorn.

Endpoints (OpenAPI at ``/docs`` and ``/openapi.json``):

- ``POST /v1/suggest`` ``{"text": str, "k": int = 10, "threshold": float = 0, "evidence": int = 3}``
  → ``{"results": [{"label", "score", "evidence"}]}``: the ``k`` most probable labels whose
  probability (``score``) reaches ``threshold``, best first, each with the words that speak
  most for it.
- ``POST /v1/suggest-batch`` ``{"documents": [{"text", "document_id"}], "k", "threshold",
  "evidence"}`` (at most :data:`MAX_BATCH_DOCUMENTS` documents) → a list of
  ``{"document_id", "results"}`` in the order given.
- ``GET /v1/labels`` → ``{"labels": [{"label", "parents", "depth"}], "hierarchy": path|null}``;
  without the hierarchy file (the training data folder moved) ``parents`` are empty, ``depth``
  is ``null`` and ``hierarchy`` is ``null``.
- ``GET /v1/disk/labels`` → the Poincaré disk of the labels (:func:`hyperim.serve.disk.
  label_payload`, built once at startup): points, hierarchy edges as SVG geodesic arcs, the
  view box; ``POST /v1/disk`` ``{"text": str, "k": int = 5}`` → one document's encoded words
  with their nearest labels and its predicted labels (:func:`~hyperim.serve.disk.
  document_payload`). A family without a disk (no label embeddings; for ``POST``, words not
  in the labels' space) gets 409 and one line; a text without a known word, 422.
- ``GET /v1/health`` → ``{"status": "ok", "model_type", "labels", "batches", "documents"}``.
- ``GET /`` the web page (``static/``: HTML, JS and CSS served from here, nothing external).

Annif's REST API, where it fits: the ``/v1`` prefix, the ``suggest`` and ``suggest-batch``
verbs, ``threshold``, ``{"results": [...]}`` with ``label`` and ``score``, and the batch's
``{"documents": [{"text", "document_id"}]}`` answered by ``[{"document_id", "results"}]``
(Annif's limit of 32 documents per batch). Departures: one model per server, so no
``/projects/{project_id}`` in the paths; JSON bodies instead of form fields; the number of
labels is ``k`` (the issue's name; Annif's ``limit`` is accepted as an alias) and defaults
to 10 as Annif's; results carry ``evidence`` words and no ``uri``/``notation`` (the labels
have none); errors are ``{"error": "one line"}`` rather than Annif's problem+json; ``/docs``
is Swagger UI from the ``swagger-ui-py`` package's files rather than FastAPI's CDN.

Bad requests get a 4xx and one line: invalid JSON (400), a missing or mistyped field (strict
types: ``"5"`` is not a number, ``true`` not an integer), ``k < 1``, ``threshold`` outside
[0, 1], a body over ``max_body_bytes`` (413, refused from its ``Content-Length`` or as soon as
the bytes read pass the limit, never buffered: :class:`BodyLimit`), unknown paths (404) and
methods (405); an unexpected failure is a 500 with one line, and the server goes on.
Inference runs in a worker thread through :class:`~hyperim.serve.batcher.MicroBatcher`.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import AliasChoices, BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from hyperim.api import HyperIM, Prediction
from hyperim.data.hierarchy import Hierarchy
from hyperim.errors import HyperIMError
from hyperim.serve import disk
from hyperim.serve.batcher import MicroBatcher
from hyperim.viz.scene import document_families

STATIC = Path(__file__).parent / "static"
#: Default request body limit (bytes).
MAX_BODY_BYTES = 1 << 20
#: A refused body is read and discarded up to this many bytes, for this long, so that the
#: client can read the 413 (see :class:`BodyLimit`).
DRAIN_BYTES = 64 << 20
DRAIN_SECONDS = 10.0
#: Documents per ``suggest-batch`` request (Annif's limit).
MAX_BATCH_DOCUMENTS = 32
#: Evidence words per label at most.
MAX_EVIDENCE = 20

_Strict = ConfigDict(strict=True, extra="forbid", populate_by_name=True)
K = Annotated[int, Field(ge=1, validation_alias=AliasChoices("k", "limit"))]
Threshold = Annotated[float, Field(ge=0.0, le=1.0)]
Evidence = Annotated[int, Field(ge=0, le=MAX_EVIDENCE)]


class SuggestRequest(BaseModel):
    """One document to label."""

    model_config = _Strict
    text: str
    k: K = 10
    threshold: Threshold = 0.0
    evidence: Evidence = 3


class BatchDocument(BaseModel):
    model_config = _Strict
    text: str
    document_id: str | int | None = None


class SuggestBatchRequest(BaseModel):
    """Up to :data:`MAX_BATCH_DOCUMENTS` documents, labelled with the same options."""

    model_config = _Strict
    documents: Annotated[list[BatchDocument], Field(min_length=1, max_length=MAX_BATCH_DOCUMENTS)]
    k: K = 10
    threshold: Threshold = 0.0
    evidence: Evidence = 3


class DiskRequest(BaseModel):
    """One document to draw in the disk with its ``k`` most probable labels."""

    model_config = _Strict
    text: str
    k: K = 5


class Suggestion(BaseModel):
    label: str
    score: float = Field(description="The label's probability.")
    evidence: list[str] = Field(description="The words that speak most for the label.")


class SuggestResponse(BaseModel):
    results: list[Suggestion]


class BatchResult(BaseModel):
    document_id: str | int | None
    results: list[Suggestion]


class LabelInfo(BaseModel):
    label: str
    parents: list[str]
    depth: int | None


class LabelsResponse(BaseModel):
    labels: list[LabelInfo]
    hierarchy: str | None = Field(description="The hierarchy file read, or null.")


class ErrorResponse(BaseModel):
    error: str


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": " ".join(str(message).split())}, status_code=status)


def validation_error(exc: RequestValidationError) -> tuple[int, str]:
    """The status and one line for the first problem pydantic found: 400 for a body that is
    not JSON, else 422 and ``"<field>: <problem>"``."""
    errors = exc.errors()
    if not errors:
        return 422, "invalid request"
    first = errors[0]
    if first.get("type") == "json_invalid":
        return 400, f"invalid JSON: {first.get('ctx', {}).get('error', 'cannot parse the body')}"
    where = [str(p) for p in first.get("loc", ()) if p != "body"]
    problem = first.get("msg", "invalid value")
    if first.get("type") == "missing":
        problem = "field required"
    if not where and first.get("type") in ("model_attributes_type", "dict_type"):
        return 422, "the body must be a JSON object (Content-Type: application/json)"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return 422, f"{'.'.join(where) or 'body'}: {problem}{more}"


def _results(predictions: list[Prediction], threshold: float) -> list[Suggestion]:
    return [
        Suggestion(label=p.label, score=p.probability, evidence=p.evidence)
        for p in predictions
        if p.probability >= threshold
    ]


class BodyLimit:
    """ASGI middleware: a request body over ``max_bytes`` gets 413 and is never buffered.

    It is refused from its ``Content-Length``, or (chunked) once the bytes read pass the limit.
    Before answering, the rest of the body is read and thrown away, up to
    :data:`DRAIN_BYTES` within :data:`DRAIN_SECONDS`: closing a connection with unread bytes
    makes TCP reset it, and the client would lose the answer. Beyond that, the connection is
    closed unread."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                await self._refuse(scope, send, 400, "invalid Content-Length")
                return
            if declared > self.max_bytes:
                await self._drain(receive, declared)
                await self._refuse(scope, send, 413, self._too_large())
                return
        chunks, size = [], 0
        while True:  # read up to the limit, then hand the body on in one message
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                if message.get("more_body", False):
                    await self._drain(receive, None)
                await self._refuse(scope, send, 413, self._too_large())
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body, sent = b"".join(chunks), False

        async def replay() -> dict:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _too_large(self) -> str:
        return f"request body larger than {self.max_bytes} bytes"

    @staticmethod
    async def _drain(receive: Any, declared: int | None) -> None:
        if declared is not None and declared > DRAIN_BYTES:
            return

        async def discard() -> None:
            seen = 0
            while seen <= DRAIN_BYTES:
                message = await receive()
                if message["type"] != "http.request":
                    return
                seen += len(message.get("body", b""))
                if not message.get("more_body", False):
                    return

        with suppress(TimeoutError):
            await asyncio.wait_for(discard(), DRAIN_SECONDS)

    @staticmethod
    async def _refuse(scope: dict, send: Any, status: int, message: str) -> None:
        response = _error(status, message)
        response.headers["Connection"] = "close"

        async def no_body() -> dict:  # the response does not read the request
            return {"type": "http.disconnect"}

        await response(scope, no_body, send)


def _label_table(model: HyperIM, hierarchy: Hierarchy | None) -> list[LabelInfo]:
    if hierarchy is None:
        return [LabelInfo(label=name, parents=[], depth=None) for name in model.labels.labels]
    known = set(hierarchy.labels)
    return [
        LabelInfo(
            label=name,
            parents=hierarchy.parents(name),
            depth=hierarchy.depth(name) if name in known else 0,
        )
        for name in model.labels.labels
    ]


def _add_docs(app: FastAPI) -> None:
    """OpenAPI docs at ``/docs`` with Swagger UI from the ``swagger-ui-py`` package's files
    (no CDN: nothing outside the machine need be reachable)."""
    import swagger_ui

    assets = Path(swagger_ui.__file__).parent / "static"
    app.mount("/docs-static", StaticFiles(directory=assets), name="docs-static")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} — API",
            swagger_js_url="/docs-static/swagger-ui-bundle.js",
            swagger_css_url="/docs-static/swagger-ui.css",
            swagger_favicon_url="/docs-static/favicon-32x32.png",
        )


def create_app(
    model: HyperIM,
    hierarchy: Hierarchy | None = None,
    hierarchy_path: str | Path | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    batch_window_ms: float = 5.0,
    max_batch: int = 64,
) -> FastAPI:
    """The app serving ``model`` (any family); ``hierarchy`` (read from ``hierarchy_path``)
    gives ``/v1/labels`` its parents and depths."""
    batcher = MicroBatcher(model, window_ms=batch_window_ms, max_batch=max_batch)
    labels = LabelsResponse(
        labels=_label_table(model, hierarchy),
        hierarchy=str(hierarchy_path) if hierarchy is not None and hierarchy_path else None,
    )
    n_labels = len(model.labels)
    try:  # the disk's static part, once: a family without one answers its reason
        disk_labels, no_disk = disk.label_payload(model.model, model.labels.labels, hierarchy), ""
    except HyperIMError as e:
        disk_labels, no_disk = None, str(e)
    if disk_labels is not None and not model.model.words_in_label_space:
        no_words = (
            f"the {model.model_type} model's words are not points of its labels' space "
            f"(documents are drawn for {' and '.join(document_families())} models)"
        )
    else:
        no_words = no_disk

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        batcher.start()
        yield
        await batcher.stop()

    errors = {code: {"model": ErrorResponse} for code in (400, 413, 422)}
    app = FastAPI(
        title="hyperim",
        summary=f"Hierarchical multi-label text classification ({model.model_type} model)",
        version="1",
        lifespan=lifespan,
        docs_url=None,  # served below from local files: the default loads Swagger UI from a CDN
        redoc_url=None,
    )

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(*validation_error(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, exc.detail)

    @app.exception_handler(Exception)
    async def _bug(_request: Request, exc: Exception) -> JSONResponse:
        return _error(500, f"internal error: {type(exc).__name__}")

    @app.post("/v1/suggest", response_model=SuggestResponse, responses=errors)
    async def suggest(request: SuggestRequest) -> SuggestResponse:
        """The labels of one text, best first, with probabilities and evidence words."""
        [preds] = await batcher.predict([request.text], min(request.k, n_labels), request.evidence)
        return SuggestResponse(results=_results(preds, request.threshold))

    @app.post("/v1/suggest-batch", response_model=list[BatchResult], responses=errors)
    async def suggest_batch(request: SuggestBatchRequest) -> list[BatchResult]:
        """The labels of up to 32 texts, in the order given."""
        texts = [d.text for d in request.documents]
        preds = await batcher.predict(texts, min(request.k, n_labels), request.evidence)
        return [
            BatchResult(document_id=d.document_id, results=_results(p, request.threshold))
            for d, p in zip(request.documents, preds, strict=True)
        ]

    @app.get("/v1/labels", response_model=LabelsResponse)
    async def get_labels() -> LabelsResponse:
        """Every label of the model with its parents and depth in the hierarchy."""
        return labels

    @app.get("/v1/disk/labels", responses={409: {"model": ErrorResponse}})
    async def disk_labels_() -> JSONResponse:
        """The labels in the Poincaré disk: points (SVG coordinates), hierarchy edges as SVG
        geodesic arcs, the view box."""
        if disk_labels is None:
            return _error(409, no_disk)
        return JSONResponse(disk_labels)

    @app.post("/v1/disk", responses={**errors, 409: {"model": ErrorResponse}})
    async def disk_document(request: DiskRequest) -> JSONResponse:
        """One document's encoded words (with their nearest labels) and predicted labels, in
        the coordinates of ``/v1/disk/labels``."""
        if disk_labels is None or no_words:
            return _error(409, no_words)
        k, scale = min(request.k, n_labels), disk_labels["scale"]
        try:
            answer = await batcher.call(
                lambda: disk.document_payload(model, request.text, hierarchy, k, scale)
            )
        except HyperIMError as e:
            return _error(422, f"text: {e}")
        return JSONResponse(answer)

    @app.get("/v1/health")
    async def health() -> dict:
        """Liveness: the model's family and size, and the batches scored so far."""
        return {
            "status": "ok",
            "model_type": model.model_type,
            "labels": n_labels,
            "batches": batcher.batches,
            "documents": batcher.documents,
        }

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    _add_docs(app)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    return app
