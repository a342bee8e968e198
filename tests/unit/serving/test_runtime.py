"""The ONNX fast path: an export answers like torch, is used only within tolerance on the frozen test set,
and its verdict is cached, a damaged copy exported again."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tests.conftest import LABELS

from loopline.config import load_settings
from loopline.data.snapshots import save_snapshot
from loopline.inference import Classifier, ProbabilityClassifier, load_classifier
from loopline.serving import runtime
from loopline.serving.runtime import TORCH, OnnxClassifier, export_onnx, fast_classifier, judge, load_onnx

TEXTS = ["my refund is late", "where is the parcel", "a charge I do not know", "hi", "x " * 40]


@pytest.fixture(scope="module")
def torch_model(tiny_classifier_dir: Path) -> Classifier:
    return load_classifier(tiny_classifier_dir, device="cpu", max_length=32)


@pytest.mark.parametrize("quantize", [False, True], ids=["fp32", "int8"])
def test_the_export_answers_like_torch(
    torch_model: Classifier, tiny_classifier_dir: Path, tmp_path: Path, quantize: bool
) -> None:
    path = export_onnx(tiny_classifier_dir, tmp_path / "model.onnx", quantize=quantize)
    onnx_model = load_onnx(path, torch_model)
    expected, got = torch_model.predict_proba(TEXTS), onnx_model.predict_proba(TEXTS)
    assert got.shape == expected.shape and np.allclose(got.sum(axis=1), 1, atol=1e-5)
    # fp32 is the same function; int8 weights move the probabilities a little
    assert np.abs(got - expected).max() < (1e-4 if not quantize else 0.05)
    assert onnx_model.predict(TEXTS)[0] == torch_model.predict(TEXTS)[0] or quantize


class _Shuffled(ProbabilityClassifier):
    """A copy that answers every text with the next label: what a broken export looks like."""

    def __init__(self, inner: ProbabilityClassifier) -> None:
        self.inner, self.labels = inner, inner.labels

    def predict_proba(self, texts: object, batch_size: int = 128) -> np.ndarray:
        return np.roll(self.inner.predict_proba(texts, batch_size), 1, axis=1)  # type: ignore[arg-type]


def test_a_copy_that_scores_worse_than_torch_is_not_used(torch_model: Classifier) -> None:
    texts = TEXTS * 4
    labels = torch_model.predict(texts)[0]  # torch is right on every row
    same = judge(torch_model, torch_model, texts, labels, "onnx", tolerance=0.005)
    assert same.used == "onnx" and same.accuracy == same.torch_accuracy == 1.0
    worse = judge(_Shuffled(torch_model), torch_model, texts, labels, "onnx", tolerance=0.005)
    assert worse.used == TORCH and "outside the tolerance" in worse.reason
    assert worse.accuracy is not None and worse.accuracy < 1.0


def test_fast_classifier_judges_on_the_frozen_test_set_and_caches_the_verdict(
    torch_model: Classifier, tiny_classifier_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings(home=tmp_path / "home", serve={"runtime": "onnx"})
    rows = [(f"{label} question number {i}", label) for i in range(20) for label in LABELS]
    snapshot = save_snapshot(pd.DataFrame(rows, columns=["text", "label"]), settings.data_dir, "test")
    chosen, verdict = fast_classifier(settings, "1", tiny_classifier_dir, torch_model, snapshot.version)
    assert isinstance(chosen, OnnxClassifier) and verdict.used == "onnx"
    assert verdict.test_rows > 0 and verdict.max_probability_difference is not None
    folder = settings.home / "models" / f"{settings.model_name}-v1-onnx"
    assert (folder / "verdict.json").is_file() and not list(folder.parent.glob("*.partial-*"))

    exports: list[Path] = []
    real_export = runtime.export_onnx
    monkeypatch.setattr(runtime, "export_onnx", lambda *a, **k: exports.append(a[1]) or real_export(*a, **k))
    again, cached = fast_classifier(settings, "1", tiny_classifier_dir, torch_model, snapshot.version)
    assert isinstance(again, OnnxClassifier) and cached == verdict and not exports  # the cache answered

    (folder / "model.onnx").write_bytes(b"damaged")
    redone, _ = fast_classifier(settings, "1", tiny_classifier_dir, torch_model, snapshot.version)
    assert isinstance(redone, OnnxClassifier) and len(exports) == 1  # exported again, then served


def test_without_a_frozen_test_set_torch_answers_and_says_why(
    torch_model: Classifier, tiny_classifier_dir: Path, tmp_path: Path
) -> None:
    settings = load_settings(home=tmp_path / "home", serve={"runtime": "onnx-int8"})
    chosen, verdict = fast_classifier(settings, "3", tiny_classifier_dir, torch_model, "ds-missing")
    assert chosen is torch_model and verdict.used == TORCH
    assert "onnx-int8 not used" in verdict.reason and "ds-missing" in verdict.reason


def test_the_log_embedder_on_onnx_gives_the_drift_checks_vectors(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    from loopline.monitoring.embeddings import embed_texts

    settings = load_settings(home=tmp_path / "home", base_model=str(tiny_model_dir))
    embedder = runtime.onnx_embedder(settings)
    assert embedder is not None
    texts = [*TEXTS, "", "another one"]
    expected = embed_texts(str(tiny_model_dir), texts, max_length=settings.training.max_length)
    got = embedder(texts)
    assert got.shape == expected.shape and np.abs(got - expected).max() < 1e-4
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert list((settings.home / "models").glob("embedder-*-onnx/model.onnx"))  # cached for the next start
