"""Micro-batching: concurrent requests answered by one forward pass (``serve.micro_batch``).

Requests queue here; one worker thread takes every request waiting (plus, once one is in, those arriving
within ``wait`` seconds, up to ``max_texts`` texts), runs one forward pass and hands each request its
rows. Requests answered by different versions (a swap in between) never share a pass, so every answer
still names the version that computed it. Off by default: on two CPU cores a larger pass is not cheaper
per text for short texts, and ``benchmarks/bench_serve.py`` measures both.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from loopline.inference import ProbabilityClassifier


@dataclass
class _Request:
    classifier: ProbabilityClassifier
    texts: list[str]
    answer: Future[np.ndarray] = field(default_factory=Future)


class MicroBatcher:
    def __init__(self, wait_seconds: float, max_texts: int) -> None:
        self.wait_seconds, self.max_texts = wait_seconds, max_texts
        self._queue: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._held: _Request | None = None  # taken from the queue for the next pass (another version)
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.passes = 0

    def predict_proba(self, classifier: ProbabilityClassifier, texts: list[str]) -> np.ndarray:
        """Probabilities for ``texts`` from ``classifier``, computed in a shared pass; blocks until done."""
        request = _Request(classifier, texts)
        self._queue.put(request)
        return request.answer.result()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._work, name="loopline-micro-batcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _work(self) -> None:
        while not self._stopping:
            first = self._held if self._held is not None else self._queue.get()
            self._held = None
            if first is None:
                return
            batch = self._gather(first)
            texts = [text for request in batch for text in request.texts]
            try:
                probabilities = first.classifier.predict_proba(texts)
            except Exception as err:  # each waiting request gets the error, the worker goes on
                for request in batch:
                    request.answer.set_exception(err)
                continue
            self.passes += 1
            start = 0
            for request in batch:
                request.answer.set_result(probabilities[start : start + len(request.texts)])
                start += len(request.texts)

    def _gather(self, first: _Request) -> list[_Request]:
        batch, count = [first], len(first.texts)
        deadline = time.monotonic() + self.wait_seconds
        while count < self.max_texts:
            try:
                remaining = deadline - time.monotonic()
                request = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if request is None:
                self._stopping = True  # after this pass
                break
            if request.classifier is not first.classifier:
                self._held = request  # another version: the next pass
                break
            batch.append(request)
            count += len(request.texts)
        return batch
