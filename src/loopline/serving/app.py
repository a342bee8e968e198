"""The HTTP API of ``loopline serve`` (FastAPI): predict with ids, take labels back, follow the alias.

Endpoints: ``POST /predict``, ``POST /feedback``, ``GET /health`` (liveness), ``GET /ready`` (a model
is loaded), ``GET /model``, ``POST /reload`` (check the alias now), ``GET /metrics`` (Prometheus) and
the OpenAPI docs at ``/docs``. With ``serve.api_key`` set, ``/feedback`` and ``/reload`` need it in the
``X-API-Key`` header.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Annotated, Any

import numpy as np
from fastapi import Depends, FastAPI, Header, HTTPException, Response
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import BaseModel, Field, model_validator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from loopline.config import Settings
from loopline.data.tagged import bio_problems, words_with_offsets
from loopline.data.text import visible_text
from loopline.feedback.engine import FeedbackStoreError
from loopline.feedback.predictions import PredictionRecord
from loopline.feedback.store import FeedbackStore
from loopline.inference import TokenClassifier
from loopline.serving.batcher import MicroBatcher
from loopline.serving.holder import ModelHolder, Served
from loopline.serving.prediction_log import Embed, PredictionLog
from loopline.tasks.token import fill_to_words

logger = logging.getLogger(__name__)

ABSTAIN = "abstain"
CONTROL_CHARS = {chr(c) for c in (*range(0, 9), 11, 12, *range(14, 32), 127)}


# ---- request and response bodies -----------------------------------------------------------------


class PredictRequest(BaseModel):
    texts: list[str] = Field(min_length=1, description="The texts to classify.")
    user: str | None = Field(None, max_length=128, description="Who asked (kept with the predictions).")


class LabelScore(BaseModel):
    label: str
    probability: float


class Entity(BaseModel):
    text: str
    start: int = Field(description="Character offset into the request's text.")
    end: int
    type: str
    score: float = Field(description="The lowest tag probability among the entity's words.")


class Prediction(BaseModel):
    prediction_id: str = Field(description="Send it back to /feedback with the right label.")
    label: str = Field(
        description=f"The predicted label, or '{ABSTAIN}' below the confidence threshold. Token (NER) "
        "models: the BIO tags of `words`, space-joined; a correction sent back is such a tag string."
    )
    best_guess: str = Field(description="The most probable label, also when abstaining.")
    confidence: float = Field(description="Top probability (token models: the lowest of the words').")
    top_k: list[LabelScore]
    abstained: bool
    flagged: bool = Field(description="Abstained or low margin: marked for a person to label.")
    words: list[str] | None = Field(None, description="Token models: the words the tags are of.")
    entities: list[Entity] | None = Field(None, description="Token models: the entity spans found.")


class PredictResponse(BaseModel):
    model_version: str
    predictions: list[Prediction]


class FeedbackRequest(BaseModel):
    label: str = Field(min_length=1, max_length=20_000)  # a tag string of a long sentence, for NER
    prediction_id: str | None = Field(None, max_length=64, description="The id /predict returned.")
    text: str | None = Field(None, description="Or the text itself, for a label without a prediction.")
    user: str | None = Field(None, max_length=128)
    idempotency_key: str | None = Field(
        None, min_length=1, max_length=128, description="The same key twice stores the label once."
    )

    @model_validator(mode="after")
    def _one_target(self) -> FeedbackRequest:
        if (self.prediction_id is None) == (self.text is None):
            raise ValueError("give either prediction_id or text (exactly one)")
        return self


class FeedbackResponse(BaseModel):
    feedback_id: int
    created: bool = Field(description="False when this idempotency key was stored before.")
    batch_id: str


# ---- the application ---------------------------------------------------------------------------------


class Metrics:
    """Prometheus metrics of one app (its own registry, so several apps in one process do not clash)."""

    def __init__(self, holder: ModelHolder, log: PredictionLog | None) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "loopline_requests", "HTTP requests", ["endpoint", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "loopline_request_seconds",
            "Request latency",
            ["endpoint"],
            buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self.batch = Histogram(
            "loopline_predict_texts",
            "Texts per /predict call",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
            registry=self.registry,
        )
        self.registry.register(_StateCollector(holder, log))


class _StateCollector:
    """Gauges read at scrape time: the served version, swaps, the prediction log's counters."""

    def __init__(self, holder: ModelHolder, log: PredictionLog | None) -> None:
        self.holder, self.log = holder, log

    def collect(self) -> Any:
        served = self.holder.current
        version = GaugeMetricFamily("loopline_model_version", "The served model version", labels=["version"])
        version.add_metric([served.version if served else "none"], float(served.version) if served else 0.0)
        yield version
        yield GaugeMetricFamily("loopline_model_swaps", "Versions swapped in", value=self.holder.status.swaps)
        runtime = GaugeMetricFamily("loopline_runtime", "What answers requests", labels=["runtime"])
        runtime.add_metric([served.runtime.used if served else "none"], 1.0)
        yield runtime
        if self.log is not None:
            counters = self.log.counters
            for name, value in (
                ("written", counters.written),
                ("dropped_queue_full", counters.dropped_full),
                ("dropped_store_failed", counters.dropped_failed),
                ("waiting", self.log.waiting),
            ):
                yield GaugeMetricFamily(
                    f"loopline_prediction_log_{name}", f"Prediction log: {name}", value=value
                )


class LimitsAndMetrics:
    """Plain ASGI middleware (Starlette's BaseHTTPMiddleware costs milliseconds a request): refuses a body
    over the limit with 413 before reading it, and counts and times every request by route."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, metrics: Metrics) -> None:
        self.app, self.max_body_bytes, self.metrics = app, max_body_bytes, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        length = dict(scope["headers"]).get(b"content-length", b"0")
        if not length.isdigit() or int(length) > self.max_body_bytes:
            detail = f"request body over {self.max_body_bytes} bytes; send fewer or shorter texts"
            await JSONResponse({"detail": detail}, status_code=413)(scope, receive, send_status)
        else:
            await self.app(scope, receive, send_status)
        route = scope.get("route")
        endpoint = getattr(route, "path", "other")
        self.metrics.requests.labels(endpoint, str(status["code"])).inc()
        self.metrics.latency.labels(endpoint).observe(time.perf_counter() - started)


def create_app(
    settings: Settings, holder: ModelHolder, store: FeedbackStore, log: PredictionLog | None
) -> FastAPI:
    """The service around a model holder, the feedback store and the prediction log (started with it)."""

    cfg = settings.serve
    batcher = MicroBatcher(cfg.micro_batch_wait_ms / 1000, cfg.max_texts) if cfg.micro_batch else None

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        holder.start()
        for part in (log, batcher):
            if part is not None:
                part.start()
        try:
            yield
        finally:
            holder.stop()
            for part in (batcher, log):
                if part is not None:
                    part.stop()

    app = FastAPI(
        title="loopline",
        description="Predictions with ids, labels sent back, the production model followed.",
        lifespan=lifespan,
    )
    metrics = Metrics(holder, log)
    forward_lock = threading.Lock()  # one forward pass at a time: two cores, no oversubscription

    app.add_middleware(LimitsAndMetrics, max_body_bytes=cfg.max_body_bytes, metrics=metrics)

    def require_key(x_api_key: Annotated[str | None, Header()] = None) -> None:
        expected = cfg.api_key.get_secret_value() if cfg.api_key else None
        if expected is None:
            return
        if x_api_key is None or not secrets.compare_digest(x_api_key.encode(), expected.encode()):
            raise HTTPException(401, "missing or wrong API key (header X-API-Key)")

    def served_model() -> Served:
        served = holder.current
        if served is None:
            raise HTTPException(503, f"no model loaded yet: {holder.status.last_error or 'starting'}")
        return served

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready")
    def ready() -> dict[str, Any]:
        served = served_model()
        return {"ready": True, "model_version": served.version}

    @app.get("/model")
    def model() -> dict[str, Any]:
        served = holder.current
        status = holder.status
        info: dict[str, Any] = {
            "model_name": settings.model_name,
            "version": served.version if served else None,
            "labels": served.classifier.labels if served else [],
            "loaded_at": served.loaded_at if served else None,
            "gate": (served.tags.get("loopline.gate") if served else None),
            "dataset_version": (served.tags.get("loopline.dataset_version") if served else None),
            "runtime": served.runtime.to_dict() if served else None,
            "last_check": status.last_check,
            "last_error": status.last_error,
            "swaps": status.swaps,
        }
        return info

    @app.post("/reload", dependencies=[Depends(require_key)])
    def reload() -> dict[str, Any]:
        swapped = holder.refresh()
        served = holder.current
        return {
            "swapped": swapped,
            "version": served.version if served else None,
            "error": holder.status.last_error,
        }

    @app.post("/predict", response_model=PredictResponse)
    def predict(body: PredictRequest) -> PredictResponse:
        if len(body.texts) > cfg.max_texts:
            raise HTTPException(413, f"{len(body.texts)} texts in one call; at most {cfg.max_texts}")
        too_long = [i for i, text in enumerate(body.texts) if len(text) > cfg.max_text_chars]
        if too_long:
            raise HTTPException(413, f"texts {too_long[:5]} are over {cfg.max_text_chars} characters")
        served = served_model()  # read once: this request is answered by one version
        if isinstance(served.classifier, TokenClassifier):
            with forward_lock:
                predictions, records = _entity_answers(served, served.classifier, body, settings)
            metrics.batch.observe(len(body.texts))
            if log is not None:
                log.put(records)
            return PredictResponse(model_version=served.version, predictions=predictions)
        if batcher is not None:
            probabilities = batcher.predict_proba(served.classifier, body.texts)
        else:
            with forward_lock:
                probabilities = served.classifier.predict_proba(body.texts)
        metrics.batch.observe(len(body.texts))
        predictions, records = _answers(served, body, probabilities, settings)
        if log is not None:
            log.put(records)
        return PredictResponse(model_version=served.version, predictions=predictions)

    @app.post(
        "/feedback", response_model=FeedbackResponse, status_code=201, dependencies=[Depends(require_key)]
    )
    def feedback(body: FeedbackRequest, response: Response) -> FeedbackResponse:
        served = served_model()
        token = isinstance(served.classifier, TokenClassifier)
        problem = _row_problem(body, served.classifier.labels, cfg.max_text_chars, token=token)
        if problem:
            raise HTTPException(422, problem)
        if body.prediction_id is not None and log is not None:
            log.wait_written(body.prediction_id)  # a label may arrive before the writer stored its prediction
        try:
            stored = store.add_api_label(
                body.label,
                prediction_id=body.prediction_id,
                text=body.text,
                user=body.user,
                client_key=body.idempotency_key,
            )
        except FeedbackStoreError as err:
            raise HTTPException(404 if "Unknown prediction id" in err.what else 409, str(err)) from None
        if not stored.created:
            response.status_code = 200
        return FeedbackResponse(feedback_id=stored.id, created=stored.created, batch_id=stored.batch_id)

    @app.get("/metrics")
    def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


def _answers(
    served: Served, body: PredictRequest, probabilities: np.ndarray, settings: Settings
) -> tuple[list[Prediction], list[PredictionRecord]]:
    cfg, labels = settings.serve, served.classifier.labels
    predictions, records = [], []
    for text, row in zip(body.texts, probabilities, strict=True):
        order = np.argsort(-row)[: max(cfg.top_k, 2)]
        best, confidence = labels[order[0]], float(row[order[0]])
        second = float(row[order[1]]) if len(order) > 1 else 0.0
        abstained = cfg.abstain_below is not None and confidence < cfg.abstain_below
        flagged = abstained or confidence - second < cfg.flag_margin
        top = [(labels[i], float(row[i])) for i in order[: cfg.top_k]]
        prediction_id = str(uuid.uuid4())
        predictions.append(
            Prediction(
                prediction_id=prediction_id,
                label=ABSTAIN if abstained else best,
                best_guess=best,
                confidence=confidence,
                top_k=[LabelScore(label=label, probability=p) for label, p in top],
                abstained=abstained,
                flagged=flagged,
            )
        )
        records.append(
            PredictionRecord(
                text=text,
                predicted_label=best,
                confidence=confidence,
                model_version=served.version,
                id=prediction_id,
                top_k=tuple(top),
                flagged=flagged,
            )
        )
    return predictions, records


def _entity_answers(
    served: Served, tagger: TokenClassifier, body: PredictRequest, settings: Settings
) -> tuple[list[Prediction], list[PredictionRecord]]:
    """Token models: spans per text; the logged text is its words joined by spaces (as training rows
    are), so a corrected tag string sent back lines up with them."""
    cfg = settings.serve
    split = [words_with_offsets(text) for text in body.texts]
    probabilities = tagger.word_probabilities([[w for w, _, _ in words] for words in split])
    spans = tagger.spans(body.texts, split, probabilities)
    predictions, records = [], []
    for words, probs, found in zip(split, probabilities, spans, strict=True):
        ordered = np.sort(probs, axis=-1)[:, ::-1] if len(probs) else np.ones((1, 2))
        confidence = float(ordered[:, 0].min())
        margin = float((ordered[:, 0] - ordered[:, 1]).min()) if ordered.shape[1] > 1 else 1.0
        tags = fill_to_words(" ".join(tagger.labels[int(i)] for i in probs.argmax(axis=-1)), len(words))
        abstained = cfg.abstain_below is not None and confidence < cfg.abstain_below
        flagged = abstained or margin < cfg.flag_margin
        prediction_id = str(uuid.uuid4())
        predictions.append(
            Prediction(
                prediction_id=prediction_id,
                label=ABSTAIN if abstained else tags,
                best_guess=tags,
                confidence=confidence,
                top_k=[],
                abstained=abstained,
                flagged=flagged,
                words=[w for w, _, _ in words],
                entities=[Entity(**asdict(span)) for span in found],
            )
        )
        records.append(
            PredictionRecord(
                text=" ".join(w for w, _, _ in words),
                predicted_label=tags,
                confidence=confidence,
                model_version=served.version,
                id=prediction_id,
                flagged=flagged,
            )
        )
    return predictions, records


def _tag_problem(tags: str, labels: list[str]) -> str | None:
    """What is wrong with a corrected tag string (token models), if anything."""
    problems = bio_problems(tags.split(), known={label[2:] for label in labels if label != "O"})
    if problems:
        return f"the tags are not valid BIO over known entity types: {'; '.join(problems[:3])}"
    return None


def _row_problem(
    body: FeedbackRequest, labels: list[str], max_chars: int, *, token: bool = False
) -> str | None:
    """The feedback contract's row rules, at the door: what is wrong with this label or text, if anything
    (``token``: the label is a corrected tag string)."""
    if token:
        problem = _tag_problem(body.label, labels)
        if problem:
            return problem
    elif body.label not in labels:
        shown = ", ".join(labels[:20]) + (" ..." if len(labels) > 20 else "")
        return (
            f"unknown label {body.label!r}; the model knows {shown}. New labels arrive with enough examples "
            "through `loopline feedback import FILE`."
        )
    if body.text is not None:
        if not visible_text(body.text):
            return "text is empty or only whitespace or zero-width characters"
        if len(body.text) > max_chars:
            return f"text is over {max_chars} characters"
        if CONTROL_CHARS & set(body.text):
            return "text contains a control character (such as a NUL byte)"
    return None


def build_app(settings: Settings) -> FastAPI:
    """The service as ``loopline serve`` runs it: the connected stores, the alias follower, the log."""
    from loopline.monitoring.embeddings import embed_texts
    from loopline.serving.runtime import TORCH, onnx_embedder

    store = FeedbackStore(settings.resolved_feedback_db_url)
    base, max_length = settings.resolved_base_model, settings.training.max_length
    embed: Embed | None = None
    if settings.serve.log_embeddings:
        embed = onnx_embedder(settings) if settings.serve.runtime != TORCH else None
        embed = embed or (lambda texts: embed_texts(base, texts, max_length=max_length))
    log = PredictionLog(
        store,
        embed=embed,
        capacity=settings.serve.log_queue_size,
        batch_size=settings.serve.log_batch_size,
    )
    return create_app(settings, ModelHolder(settings), store, log)
