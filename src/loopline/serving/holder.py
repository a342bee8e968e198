"""The model the service answers with: the version behind the ``production`` alias, swapped atomically.

A background thread polls the registry. When the alias moves, the new version is downloaded (checked
against its manifest), loaded and put through the canary; only then does one reference assignment make
it the answering model. A request reads that reference once, so it is answered by one version from
start to end, and no request waits for a load. A version that fails to load or fails the canary is not
served; the old one stays, and ``status`` says why.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from loopline.config import Settings
from loopline.errors import LooplineError
from loopline.inference import ProbabilityClassifier, TokenClassifier, load_classifier
from loopline.pipeline.canary import run_canary
from loopline.pipeline.champion import PRODUCTION, fetch_model_dir, test_version_of
from loopline.registry.lookups import get_alias_version
from loopline.serving.runtime import TORCH, RuntimeVerdict, fast_classifier

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Served:
    """One loaded version: what answers requests."""

    version: str
    classifier: ProbabilityClassifier | TokenClassifier
    tags: dict[str, str]
    loaded_at: str
    runtime: RuntimeVerdict


@dataclass
class HolderStatus:
    """What ``/model`` shows beyond the served version: the last failed load, the last check."""

    last_check: str | None = None
    last_error: str | None = None
    failed_version: str | None = None
    swaps: int = 0


@dataclass
class ModelHolder:
    settings: Settings
    canary: Callable[[ProbabilityClassifier | TokenClassifier], None] | None = None
    current: Served | None = None
    status: HolderStatus = field(default_factory=HolderStatus)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def refresh(self) -> bool:
        """Check the alias once; load and swap to its version if it moved. True when a swap happened."""
        with self._lock:  # one load at a time (a poll and a /reload may meet)
            self.status.last_check = _now()
            found = get_alias_version(self.settings.model_name, PRODUCTION)
            if found is None:
                self.status.last_error = (
                    f"no version of {self.settings.model_name} has the alias {PRODUCTION}"
                )
                return False
            version = str(found.version)
            if self.current is not None and self.current.version == version:
                self.status.failed_version = None  # the alias moved on from a failed version
                return False
            if version == self.status.failed_version:
                return False  # failed before; try again only when the alias moves on
            try:
                served = self._load(version, dict(found.tags or {}))
            except (LooplineError, OSError, RuntimeError, ValueError) as err:
                self.status.last_error = f"v{version} was not served: {err}"
                self.status.failed_version = version
                logger.error(
                    "Keeping v%s: v%s failed to load or its canary: %s", self._version(), version, err
                )
                return False
            previous, self.current = self._version(), served  # the swap: one reference assignment
            self.status.swaps += 1
            self.status.last_error = self.status.failed_version = None
            logger.info("Serving %s v%s (was v%s)", self.settings.model_name, version, previous)
            return True

    def _version(self) -> str:
        return "-" if self.current is None else self.current.version

    def _load(self, version: str, tags: dict[str, str]) -> Served:
        model_dir = fetch_model_dir(self.settings, version)
        torch_model = load_classifier(model_dir, device="cpu", max_length=self.settings.training.max_length)
        classifier: ProbabilityClassifier | TokenClassifier
        if isinstance(torch_model, TokenClassifier):
            why = "token (NER) models answer with torch: the ONNX export covers sequence classifiers"
            classifier, runtime = torch_model, RuntimeVerdict(self.settings.serve.runtime, TORCH, why)
        else:
            classifier, runtime = fast_classifier(
                self.settings, version, model_dir, torch_model, test_version_of(tags)
            )
        (self.canary or run_canary)(classifier)
        return Served(version, classifier, tags, _now(), runtime)

    def start(self) -> None:
        """Load the current version now, then follow the alias in a daemon thread."""
        try:
            self.refresh()
        except Exception as err:  # a registry hiccup at start: /ready says not ready, the poll retries
            self.status.last_error = f"registry check failed: {err}"
            logger.exception("First registry check failed")
        self._thread = threading.Thread(target=self._follow, name="loopline-alias-follower", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _follow(self) -> None:
        while not self._stop.wait(self.settings.serve.poll_seconds):
            try:
                self.refresh()
            except Exception as err:  # the next poll tries again; the served version stays
                self.status.last_error = f"registry check failed: {err}"
                logger.warning("Registry check failed: %s", err)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
