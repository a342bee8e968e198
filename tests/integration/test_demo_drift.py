"""loopline's drift check on the demo stream with real MiniLM embeddings: in-distribution windows
stay quiet over several seeds; the drifted stream (new vocabulary, a new intent) raises the alarm."""

from __future__ import annotations

import numpy as np
import pytest

from loopline.config import MonitorConfig
from loopline.data.demo import generate_demo_dataset, generate_feedback_batch
from loopline.monitoring.drift import DriftInputs, NoveltyDetector, check_drift
from loopline.monitoring.embeddings import embed_texts

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def reference(minilm_path: str) -> DriftInputs:
    base = generate_demo_dataset(2400, seed=0).sample(1500, random_state=0)
    texts = base["text"].tolist()
    return DriftInputs(texts, embed_texts(minilm_path, texts), labels=base["label"].tolist())


def _window(kind: str, seed: int, minilm_path: str) -> DriftInputs:
    batch = generate_feedback_batch(kind, 300, seed=seed)  # type: ignore[arg-type]
    texts = batch["text"].tolist()
    return DriftInputs(texts, embed_texts(minilm_path, texts), labels=batch["label"].tolist())


def test_in_distribution_windows_do_not_alarm_but_drifted_ones_do(reference: DriftInputs, minilm_path: str):
    detector = NoveltyDetector().fit(reference.embeddings, seed=0)
    cfg = MonitorConfig()
    quiet = [
        check_drift(reference, _window("in_distribution", s, minilm_path), cfg, detector) for s in (1, 2, 3)
    ]
    drifted = [check_drift(reference, _window("drifted", s, minilm_path), cfg, detector) for s in (1, 2)]

    assert not any(r.drift_detected for r in quiet), [r.summary() for r in quiet]
    assert all(r.drift_detected and r.novelty_alarm for r in drifted), [r.summary() for r in drifted]
    assert max(r.novelty.novel_share for r in quiet) < min(r.novelty.novel_share for r in drifted)
    assert np.isfinite([r.novelty.novel_share for r in quiet + drifted]).all()
