"""Micro-batching: concurrent requests share passes, each gets its own rows, versions never mix."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from loopline.inference import ProbabilityClassifier
from loopline.serving.batcher import MicroBatcher


class Recorder(ProbabilityClassifier):
    """Probabilities that encode the text (its number), and a record of every pass."""

    def __init__(self, name: str, fail: bool = False) -> None:
        self.labels, self.name, self.fail = ["a", "b"], name, fail
        self.passes: list[int] = []
        self.gate = threading.Event()

    def predict_proba(self, texts: Sequence[str], batch_size: int = 128) -> np.ndarray:
        self.gate.wait(5)  # hold the first pass so that others queue behind it
        self.passes.append(len(texts))
        if self.fail:
            raise RuntimeError(f"{self.name} failed")
        values = np.array([float(t.split()[-1]) for t in texts]) / 1000
        return np.stack([values, 1 - values], axis=1)


@pytest.fixture()
def batcher() -> Iterator[MicroBatcher]:
    batcher = MicroBatcher(wait_seconds=0.01, max_texts=64)
    batcher.start()
    yield batcher
    batcher.stop()


def test_concurrent_requests_share_passes_and_get_their_own_rows(batcher: MicroBatcher) -> None:
    model = Recorder("v1")
    requests = [[f"text {i}", f"text {i + 500}"] for i in range(40)]
    with ThreadPoolExecutor(max_workers=20) as pool:
        futures = [pool.submit(batcher.predict_proba, model, texts) for texts in requests]
        model.gate.set()
        answers = [future.result(timeout=10) for future in futures]
    for texts, answer in zip(requests, answers, strict=True):
        expected = [float(t.split()[-1]) / 1000 for t in texts]
        assert answer[:, 0].tolist() == pytest.approx(expected)
    assert sum(model.passes) == 80 and len(model.passes) < 40 and max(model.passes) <= 64


def test_two_versions_never_share_a_pass_and_an_error_reaches_each_waiting_request(
    batcher: MicroBatcher,
) -> None:
    old, new, broken = Recorder("v1"), Recorder("v2"), Recorder("v3", fail=True)
    with ThreadPoolExecutor(max_workers=12) as pool:
        futures = [
            (model, pool.submit(batcher.predict_proba, model, [f"text {i}"]))
            for i in range(12)
            for model in ([old, new, broken][i % 3],)
        ]
        for model in (old, new, broken):
            model.gate.set()
        for model, future in futures:
            if model is broken:
                with pytest.raises(RuntimeError, match="v3 failed"):
                    future.result(timeout=10)
            else:
                assert future.result(timeout=10).shape == (1, 2)
    assert sum(old.passes) == 4 and sum(new.passes) == 4  # each pass held only its own version's texts
