"""A service around the tiny classifier, in this process (the lifespan is not run: no alias follower)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from loopline.config import Settings, load_settings
from loopline.feedback.store import FeedbackStore
from loopline.inference import load_classifier
from loopline.serving.app import create_app
from loopline.serving.holder import ModelHolder, Served
from loopline.serving.prediction_log import PredictionLog
from loopline.serving.runtime import RuntimeVerdict


def fake_embed(texts: list[str]) -> np.ndarray:
    return np.ones((len(texts), 4), dtype=np.float32)


@pytest.fixture()
def serve_settings(tmp_path: Path) -> Settings:
    return load_settings(
        home=tmp_path / "home", serve={"api_key": "s3cret", "max_texts": 8, "max_body_bytes": 4096}
    )


@pytest.fixture()
def service(
    serve_settings: Settings, tiny_classifier_dir: Path
) -> Iterator[tuple[TestClient, FeedbackStore, PredictionLog, ModelHolder]]:
    store = FeedbackStore(serve_settings.resolved_feedback_db_url)
    holder = ModelHolder(serve_settings)
    classifier = load_classifier(tiny_classifier_dir, device="cpu", max_length=32)
    holder.current = Served("1", classifier, {}, "now", RuntimeVerdict("torch", "torch", "in-process test"))
    log = PredictionLog(store, embed=fake_embed, capacity=100, batch_size=10)
    log.start()
    try:
        yield TestClient(create_app(serve_settings, holder, store, log)), store, log, holder
    finally:
        log.stop()
        store.close()
