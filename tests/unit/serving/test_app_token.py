"""The serving API around a token (NER) model: spans with offsets, tags over the logged words, and
corrected tag strings taken back (checked at the door as the token feedback contract would)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.unit.serving.conftest import fake_embed

from loopline.config import Settings
from loopline.feedback.store import FeedbackStore
from loopline.inference import TokenClassifier, load_classifier
from loopline.serving.app import create_app
from loopline.serving.holder import ModelHolder, Served
from loopline.serving.prediction_log import PredictionLog
from loopline.serving.runtime import RuntimeVerdict
from loopline.tasks import get_task
from loopline.training.checkpoint import save_model
from loopline.training.model import build_model

TAGS = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]


@pytest.fixture(scope="module")
def tiny_tagger_dir(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    model, tokenizer = build_model(str(tiny_model_dir), TAGS, get_task("token"))
    return save_model(model, tokenizer, tmp_path_factory.mktemp("tagger") / "model")


@pytest.fixture()
def ner_service(
    serve_settings: Settings, tiny_tagger_dir: Path
) -> Iterator[tuple[TestClient, FeedbackStore, PredictionLog]]:
    store = FeedbackStore(serve_settings.resolved_feedback_db_url)
    holder = ModelHolder(serve_settings)
    tagger = load_classifier(tiny_tagger_dir, device="cpu", max_length=32)
    assert isinstance(tagger, TokenClassifier)
    holder.current = Served("1", tagger, {}, "now", RuntimeVerdict("torch", "torch", "in-process test"))
    log = PredictionLog(store, embed=fake_embed, capacity=100, batch_size=10)
    log.start()
    try:
        yield TestClient(create_app(serve_settings, holder, store, log)), store, log
    finally:
        log.stop()
        store.close()


def test_predict_gives_tags_over_words_and_spans_into_the_raw_text(
    ner_service: tuple[TestClient, FeedbackStore, PredictionLog],
) -> None:
    client, store, log = ner_service
    text = "Anna moved to New York, then Paris."
    response = client.post("/predict", json={"texts": [text]})
    assert response.status_code == 200, response.text
    (prediction,) = response.json()["predictions"]
    assert prediction["words"] == ["Anna", "moved", "to", "New", "York", ",", "then", "Paris", "."]
    assert len(prediction["label"].split()) == len(prediction["words"])
    assert set(prediction["label"].split()) <= set(TAGS)
    for span in prediction["entities"]:
        assert text[span["start"] : span["end"]] == span["text"]
    assert log.flush(30)
    served = store.served_window(None)
    assert served["text"].tolist() == ["Anna moved to New York , then Paris ."]  # the words, as rows are


def test_feedback_takes_a_corrected_tag_string_and_refuses_broken_bio(
    ner_service: tuple[TestClient, FeedbackStore, PredictionLog],
) -> None:
    client, _, _ = ner_service
    (prediction,) = client.post("/predict", json={"texts": ["Anna lives in Rome"]}).json()["predictions"]
    key = {"X-API-Key": "s3cret"}
    broken = {"prediction_id": prediction["prediction_id"], "label": "I-PER O O B-LOC"}
    refused = client.post("/feedback", json=broken, headers=key)
    assert refused.status_code == 422 and "does not continue" in refused.text
    unknown = {"prediction_id": prediction["prediction_id"], "label": "B-ORG O O B-LOC"}
    assert client.post("/feedback", json=unknown, headers=key).status_code == 422
    good = {"prediction_id": prediction["prediction_id"], "label": "B-PER O O B-LOC"}
    assert client.post("/feedback", json=good, headers=key).status_code == 201
