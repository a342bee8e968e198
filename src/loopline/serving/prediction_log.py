"""The prediction log: served predictions go to the feedback store through a bounded queue.

Requests only ``put_nowait`` (never wait on the database); a writer thread takes what waits, in
batches, computes the texts' sentence embeddings (the drift check's input, computed once here and never
again per check) and writes them in one transaction. A full queue drops the event and counts it, so a
slow or unavailable store costs the log completeness, never a request; every drop is counted on
``/metrics`` and logged.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from loopline.feedback.predictions import PredictionRecord
from loopline.feedback.store import FeedbackStore

logger = logging.getLogger(__name__)

Embed = Callable[[Sequence[str]], np.ndarray]
LINGER_SECONDS = 0.25


@dataclass
class LogCounters:
    queued: int = 0
    written: int = 0
    dropped_full: int = 0  # the queue was full
    dropped_failed: int = 0  # the store refused the batch


@dataclass
class PredictionLog:
    store: FeedbackStore
    embed: Embed | None
    capacity: int = 10_000
    batch_size: int = 256
    counters: LogCounters = field(default_factory=LogCounters)
    _queue: queue.Queue[PredictionRecord] = field(init=False)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _pending: set[str] = field(default_factory=set)  # ids queued, not yet written (a label may race them)
    _pending_lock: threading.Condition = field(default_factory=threading.Condition)

    def __post_init__(self) -> None:
        self._queue = queue.Queue(maxsize=self.capacity)

    def put(self, records: Sequence[PredictionRecord]) -> int:
        """Queue records without waiting; returns how many were dropped because the queue was full."""
        dropped = 0
        for record in records:
            try:
                with self._pending_lock:
                    self._queue.put_nowait(record)
                    self._pending.add(record.id)
                self.counters.queued += 1
            except queue.Full:
                dropped += 1
        if dropped:
            self.counters.dropped_full += dropped
            logger.warning(
                "Prediction log full (%d waiting): %d prediction(s) not logged", self.capacity, dropped
            )
        return dropped

    @property
    def waiting(self) -> int:
        return self._queue.qsize()

    def wait_written(self, prediction_id: str, timeout: float = 30.0) -> bool:
        """Until a queued prediction is written (or dropped): a label sent right after its prediction
        must find it in the store. True at once for an id that is not waiting."""
        with self._pending_lock:
            return self._pending_lock.wait_for(lambda: prediction_id not in self._pending, timeout)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="loopline-prediction-log", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Write what waits, then stop the writer."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)

    def flush(self, timeout: float = 60.0) -> bool:
        """Wait until everything queued so far is written (or dropped); False on timeout."""
        done = threading.Event()

        def wait() -> None:
            self._queue.join()
            done.set()

        threading.Thread(target=wait, daemon=True).start()
        return done.wait(timeout)

    def _run(self) -> None:
        while not (self._stop.is_set() and self._queue.empty()):
            batch = self._take()
            if batch:
                self._write(batch)

    def _take(self) -> list[PredictionRecord]:
        """The next batch: once a record is in, what arrives within ``LINGER_SECONDS`` joins it (one
        embedding pass and one transaction for many requests, instead of one per request)."""
        try:
            batch = [self._queue.get(timeout=0.2)]
        except queue.Empty:
            return []
        deadline = time.monotonic() + (0 if self._stop.is_set() else LINGER_SECONDS)
        while len(batch) < self.batch_size:
            try:
                batch.append(self._queue.get(timeout=max(deadline - time.monotonic(), 1e-3)))
            except queue.Empty:
                break
        return batch

    def _write(self, batch: list[PredictionRecord]) -> None:
        try:
            if self.embed is not None:
                vectors = self.embed([record.text for record in batch])
                pairs = zip(batch, vectors, strict=True)
                batch = [replace(record, embedding=np.asarray(vec, np.float32)) for record, vec in pairs]
            self.store.log_predictions(batch)
            self.counters.written += len(batch)
        except Exception as err:  # the store is down or refused: count it, keep serving
            self.counters.dropped_failed += len(batch)
            logger.error("Could not log %d prediction(s): %s", len(batch), err)
        finally:
            with self._pending_lock:
                self._pending.difference_update(record.id for record in batch)
                self._pending_lock.notify_all()
            for _ in batch:
                self._queue.task_done()
