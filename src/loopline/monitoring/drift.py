"""Drift and decay checks of a window of production texts against the champion's reference.

Every signal is calibrated on the reference itself, at the size of the window it judges, so a
window drawn from the reference distribution alarms rarely (about ``alpha`` per signal) whatever
the number of classes or rows:

* **Novelty (meaning).** For each current text, the cosine distance to its k-th nearest reference
  neighbour. A text is *novel* when that distance exceeds a high quantile (``quantile``) of the
  same statistic on the reference, measured leave-one-out (each reference text against all the
  others). So a same-distribution text is novel with probability ``p0 ≈ 1 - quantile``; the
  window alarms when its novel share exceeds ``p0`` by more than chance allows (one-sided
  two-sample proportion bound at ``alpha``: the window's own binomial noise *and* the noise of
  the calibration set). Texts of new intents land far from the reference, so with a reference
  of a few thousand texts a 10–20% share of them moves the novel share above the bound, where
  domain classifiers over all texts (Evidently's defaults) dilute it (benchmarks/RESULTS.md:
  95% / 100% detected at 10% / 20% new intents with 3,000 reference texts, 2% false alarms).
* **Label / predicted-label drift.** Total-variation distance between the two label
  distributions; the alarm threshold is the ``1 - alpha`` quantile of the same distance between
  multinomial resamples of the reference distribution at the reference and window sizes.
  Chi-square p-values over-alarm with many classes and small counts; this does not.
* **Confidence drift.** Mean confidence drop plus a two-sample KS test; alarms need both a
  significant KS test and a drop of at least ``confidence_min_drop``.
* **Text descriptors.** Mean length (characters) and out-of-vocabulary rate against the
  reference vocabulary (the reference's own rate is measured leave-one-out: words seen in no
  other reference text). Advisory: reported and flagged, but they do not set ``drift_detected``.
* **Performance decay.** Accuracy of the production predictions on newly labelled feedback
  against the champion's test accuracy: needs ``decay_min_rows`` rows, a drop of at least
  ``cfg.decay_threshold`` and a one-sided binomial test below ``decay_alpha``.

Reference predictions and confidences should come from held-out data (``ReferenceScores``: the
frozen validation and test splits): on its own training texts a model is over-confident. Measured
on BANKING77 (bench_drift_scores: MiniLM, 50 windows of 500 unseen test texts): against 3,000 of
its training texts confidence drift alarmed on 50 of 50 same-distribution windows and prediction
drift on 9; against its held-out validation split, on none.
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
from scipy import stats

from loopline.config import MonitorConfig
from loopline.errors import DataError

logger = logging.getLogger(__name__)

Calibration = Literal["loo", "split"]
Bound = Literal["two-sample", "binomial"]
_WORD = re.compile(r"\w+")


# --------------------------------------------------------------------------- nearest neighbours


def _as_embeddings(values: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float32)
    if array.ndim != 2 or not np.isfinite(array).all():
        raise DataError(
            f"{name} must be a finite 2-D array (rows x dimensions), got shape {array.shape}.",
            where=name,
            hint="Pass the output of loopline.monitoring.embeddings.embed_texts.",
        )
    return array


def knn_distances(
    queries: np.ndarray,
    index: np.ndarray,
    k: int,
    *,
    self_positions: np.ndarray | None = None,
    chunk_size: int = 2048,
) -> np.ndarray:
    """Cosine distance of each query to its k-th nearest row of ``index`` (rows L2-normalised).

    ``self_positions[i]`` is the row of ``index`` that *is* query i, skipped for leave-one-out.
    Works in chunks of queries, so memory stays ``chunk_size x len(index)`` floats.
    """
    available = len(index) - (1 if self_positions is not None else 0)
    if k < 1 or available < k:
        raise DataError(
            f"Need at least {k} reference rows for the {k}-th neighbour, have {available}.",
            where="NoveltyDetector",
            hint="Use a larger reference set or a smaller k.",
        )
    out = np.empty(len(queries), dtype=np.float32)
    for start in range(0, len(queries), chunk_size):
        sims = queries[start : start + chunk_size] @ index.T
        if self_positions is not None:
            sims[np.arange(sims.shape[0]), self_positions[start : start + chunk_size]] = -np.inf
        out[start : start + chunk_size] = 1.0 - np.partition(sims, -k, axis=1)[:, -k]
    return out


# --------------------------------------------------------------------------- novelty detector


@dataclass(frozen=True)
class NoveltyResult:
    """Share of current texts far from the reference, and whether it is more than chance."""

    novel_share: float
    threshold: float  # cosine distance to the k-th neighbour above which a text is novel
    expected_share: float  # novel share of same-distribution texts (leave-one-out on the reference)
    bound: float  # the window alarms when novel_share > bound
    alarm: bool
    window_size: int
    per_text_novel: np.ndarray = field(repr=False, compare=False)
    distances: np.ndarray = field(repr=False, compare=False)

    @property
    def novel_count(self) -> int:
        return int(self.per_text_novel.sum())

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe numbers (the per-text arrays are left out)."""
        return {
            "novel_share": self.novel_share,
            "novel_count": self.novel_count,
            "threshold": self.threshold,
            "expected_share": self.expected_share,
            "bound": self.bound,
            "alarm": self.alarm,
            "window_size": self.window_size,
        }


@dataclass(frozen=True)
class FittedNoveltyDetector:
    """A novelty detector calibrated on one reference; ``score`` judges windows against it."""

    index: np.ndarray = field(repr=False, compare=False)
    k: int
    quantile: float
    alpha: float
    bound_method: Bound
    calibration: Calibration
    threshold: float
    expected_share: float
    calibration_size: int

    def share_bound(self, window_size: int) -> float:
        """Novel share above which a window of ``window_size`` texts alarms (one-sided, ``alpha``)."""
        if window_size < 1:
            return 1.0
        p0 = self.expected_share
        inverse_n = 1.0 / window_size + (
            1.0 / self.calibration_size if self.bound_method == "two-sample" else 0
        )
        z = float(stats.norm.ppf(1.0 - self.alpha))
        return min(1.0, p0 + z * math.sqrt(p0 * (1.0 - p0) * inverse_n) + 0.5 / window_size)

    def score(self, current_embeddings: np.ndarray) -> NoveltyResult:
        """Novel share of a window of current embeddings (same encoder as the reference)."""
        current = _as_embeddings(current_embeddings, "current_embeddings")
        if current.shape[1] != self.index.shape[1]:
            raise DataError(
                f"Current embeddings have {current.shape[1]} dimensions, "
                f"the reference {self.index.shape[1]}.",
                where="FittedNoveltyDetector.score",
                hint="Embed current and reference texts with the same model.",
            )
        distances = knn_distances(current, self.index, self.k) if len(current) else np.zeros(0, np.float32)
        novel = distances > self.threshold
        share = float(novel.mean()) if len(novel) else 0.0
        bound = self.share_bound(len(current))
        return NoveltyResult(
            novel_share=share,
            threshold=self.threshold,
            expected_share=self.expected_share,
            bound=bound,
            alarm=bool(len(current) > 0 and share > bound),
            window_size=len(current),
            per_text_novel=novel,
            distances=distances,
        )


@dataclass(frozen=True)
class NoveltyDetector:
    """Settings of the k-NN novelty detector; ``fit`` calibrates it on reference embeddings.

    Defaults chosen on BANKING77 with 12 of 77 intents held out as new, windows of 500
    (benchmarks/bench_drift.py, RESULTS.md): k=1, the 95th percentile, leave-one-out
    calibration, two-sample bound at alpha=0.01. With a 3,000-text reference: 2% false alarms,
    95% / 100% of windows with 10% / 20% new intents detected; with 1,000 texts: 0%, 26% / 89%.
    The reference size is the lever: a denser reference shrinks in-distribution distances more
    than those of new intents. k=3/5, split-half calibration (``calibration="split"``: half the
    reference against the other half, scoring against that half) and ``bound="binomial"``
    (window noise only, ignores the calibration's own noise: more false alarms) measured worse
    and are kept for comparison.
    """

    k: int = 1
    quantile: float = 0.95
    alpha: float = 0.01
    bound: Bound = "two-sample"
    calibration: Calibration = "loo"
    max_calibration_rows: int = 5000

    def __post_init__(self) -> None:
        if not (0.5 <= self.quantile < 1 and 0 < self.alpha < 0.5 and self.k >= 1):
            raise ValueError("Need k >= 1, 0.5 <= quantile < 1 and 0 < alpha < 0.5")

    def fit(self, reference_embeddings: np.ndarray, seed: int = 0) -> FittedNoveltyDetector:
        """Calibrate the per-text distance threshold and the expected novel share on the reference."""
        reference = _as_embeddings(reference_embeddings, "reference_embeddings")
        rng = np.random.default_rng(seed)
        if self.calibration == "split":
            order = rng.permutation(len(reference))
            index, held_out = reference[order[: len(order) // 2]], reference[order[len(order) // 2 :]]
            scores = knn_distances(held_out[: self.max_calibration_rows], index, self.k)
        else:
            index = reference
            rows = np.sort(rng.permutation(len(reference))[: self.max_calibration_rows])
            scores = knn_distances(reference[rows], reference, self.k, self_positions=rows)
        threshold = float(np.quantile(scores, self.quantile))
        expected = float(np.clip((scores > threshold).mean(), 1.0 / len(scores), 0.5))
        logger.info(
            "Novelty detector: k=%d, threshold %.4f (q%.2f of %d %s scores), expected novel share %.3f",
            self.k, threshold, self.quantile, len(scores), self.calibration, expected,
        )  # fmt: skip
        return FittedNoveltyDetector(
            index=index,
            k=self.k,
            quantile=self.quantile,
            alpha=self.alpha,
            bound_method=self.bound,
            calibration=self.calibration,
            threshold=threshold,
            expected_share=expected,
            calibration_size=len(scores),
        )


# --------------------------------------------------------------------------- categorical drift


@dataclass(frozen=True)
class CategoricalDrift:
    """Total-variation distance between two label distributions, with a resampled threshold."""

    column: str
    distance: float
    threshold: float
    alarm: bool
    reference_rows: int
    current_rows: int
    new_categories: tuple[str, ...]
    top_shifts: tuple[tuple[str, float], ...]  # (category, current share - reference share)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["new_categories"] = list(self.new_categories)
        data["top_shifts"] = [[name, shift] for name, shift in self.top_shifts]
        return data


def _shares(values: Sequence[str], categories: list[str]) -> np.ndarray:
    counts = Counter(values)
    total = max(len(values), 1)
    return np.array([counts.get(name, 0) / total for name in categories], dtype=np.float64)


def tv_null_threshold(
    reference_shares: np.ndarray,
    reference_rows: int,
    window_rows: int,
    alpha: float,
    resamples: int,
    seed: int,
) -> float:
    """``1 - alpha`` quantile of the TV distance between two samples of the reference distribution."""
    rng = np.random.default_rng(seed)
    ref = rng.multinomial(reference_rows, reference_shares, size=resamples) / reference_rows
    cur = rng.multinomial(window_rows, reference_shares, size=resamples) / window_rows
    return float(np.quantile(0.5 * np.abs(ref - cur).sum(axis=1), 1.0 - alpha))


def categorical_drift(
    column: str,
    reference: Sequence[str],
    current: Sequence[str],
    *,
    alpha: float = 0.01,
    resamples: int = 1000,
    seed: int = 0,
) -> CategoricalDrift:
    """TV distance of ``current`` vs ``reference`` categories; alarm above the resampled threshold."""
    reference, current = [str(v) for v in reference], [str(v) for v in current]
    if not reference or not current:
        raise DataError(f"No {column} values to compare.", where=column, hint="Pass non-empty label lists.")
    known = sorted(set(reference))
    new = sorted(set(current) - set(known))
    categories = known + new
    ref_shares, cur_shares = _shares(reference, categories), _shares(current, categories)
    distance = float(0.5 * np.abs(ref_shares - cur_shares).sum())
    threshold = tv_null_threshold(
        ref_shares[: len(known)], len(reference), len(current), alpha, resamples, seed
    )
    shifts = cur_shares - ref_shares
    top = np.argsort(-np.abs(shifts))[:5]
    return CategoricalDrift(
        column=column,
        distance=distance,
        threshold=threshold,
        alarm=distance > threshold,
        reference_rows=len(reference),
        current_rows=len(current),
        new_categories=tuple(new),
        top_shifts=tuple((categories[i], round(float(shifts[i]), 4)) for i in top if shifts[i] != 0),
    )


# --------------------------------------------------------------------------- confidence, descriptors


@dataclass(frozen=True)
class ConfidenceDrift:
    """Mean confidence drop and a two-sample KS test of the confidence distributions."""

    reference_mean: float
    current_mean: float
    mean_drop: float
    ks_statistic: float
    ks_pvalue: float
    alarm: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def confidence_drift(
    reference: np.ndarray, current: np.ndarray, *, alpha: float = 0.01, min_drop: float = 0.03
) -> ConfidenceDrift:
    """Alarm when confidences fall by at least ``min_drop`` on average and KS says so at ``alpha``."""
    ref, cur = np.asarray(reference, dtype=np.float64), np.asarray(current, dtype=np.float64)
    test = stats.ks_2samp(ref, cur)
    drop = float(ref.mean() - cur.mean())
    return ConfidenceDrift(
        reference_mean=float(ref.mean()),
        current_mean=float(cur.mean()),
        mean_drop=drop,
        ks_statistic=float(test.statistic),
        ks_pvalue=float(test.pvalue),
        alarm=bool(test.pvalue < alpha and drop >= min_drop),
    )


def _tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower()) if isinstance(text, str) else []


def text_lengths(texts: Sequence[str]) -> np.ndarray:
    """Characters per text (missing texts count 0)."""
    return np.array([len(t) if isinstance(t, str) else 0 for t in texts], dtype=np.float64)


def oov_rates(texts: Sequence[str], vocabulary: set[str]) -> np.ndarray:
    """Share of each text's words that are not in ``vocabulary`` (0 for texts without words)."""
    rates = np.zeros(len(texts), dtype=np.float64)
    for i, text in enumerate(texts):
        words = _tokens(text)
        if words:
            rates[i] = sum(word not in vocabulary for word in words) / len(words)
    return rates


def reference_vocabulary(texts: Sequence[str]) -> tuple[set[str], np.ndarray]:
    """Vocabulary of the reference and each reference text's leave-one-out OOV rate.

    A word is out of vocabulary for text i, leave-one-out, when no *other* reference text has it
    (document frequency 1): the honest baseline for texts the vocabulary was not built from.
    """
    tokenised = [_tokens(t) for t in texts]
    document_frequency = Counter(word for words in tokenised for word in set(words))
    rates = np.zeros(len(texts), dtype=np.float64)
    for i, words in enumerate(tokenised):
        if words:
            rates[i] = sum(document_frequency[word] == 1 for word in words) / len(words)
    return set(document_frequency), rates


@dataclass(frozen=True)
class TextDescriptors:
    """Cheap text statistics of the window against the reference (advisory signals)."""

    reference_mean_length: float
    current_mean_length: float
    length_low: float
    length_high: float
    length_alarm: bool
    reference_oov_rate: float
    current_oov_rate: float
    oov_bound: float
    oov_alarm: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _mean_bound(reference: np.ndarray, window: int, z: float) -> float:
    """Half-width of a two-sample CLT interval for a window mean against the reference mean."""
    return z * float(reference.std()) * math.sqrt(1.0 / max(window, 1) + 1.0 / max(len(reference), 1))


def text_descriptors(
    reference_texts: Sequence[str], current_texts: Sequence[str], *, alpha: float = 0.01
) -> TextDescriptors:
    """Mean length (two-sided) and OOV rate (one-sided rise) against CLT bounds at ``alpha``."""
    vocabulary, ref_oov = reference_vocabulary(reference_texts)
    cur_oov = oov_rates(current_texts, vocabulary)
    ref_len, cur_len = text_lengths(reference_texts), text_lengths(current_texts)
    m = len(current_texts)
    half = _mean_bound(ref_len, m, float(stats.norm.ppf(1 - alpha / 2)))
    oov_bound = float(ref_oov.mean()) + _mean_bound(ref_oov, m, float(stats.norm.ppf(1 - alpha)))
    cur_mean_len = float(cur_len.mean()) if m else 0.0
    cur_mean_oov = float(cur_oov.mean()) if m else 0.0
    low, high = float(ref_len.mean()) - half, float(ref_len.mean()) + half
    return TextDescriptors(
        reference_mean_length=float(ref_len.mean()),
        current_mean_length=cur_mean_len,
        length_low=low,
        length_high=high,
        length_alarm=bool(m and not low <= cur_mean_len <= high),
        reference_oov_rate=float(ref_oov.mean()),
        current_oov_rate=cur_mean_oov,
        oov_bound=oov_bound,
        oov_alarm=bool(m and cur_mean_oov > oov_bound),
    )


# --------------------------------------------------------------------------- performance decay


@dataclass(frozen=True)
class DecayCheck:
    """Accuracy of production predictions on labelled feedback against the champion's test accuracy."""

    labelled_rows: int
    accuracy: float | None
    reference_accuracy: float
    accuracy_drop: float | None
    pvalue: float | None
    min_rows: int
    alarm: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def performance_decay(
    labels: Sequence[str | None],
    predicted: Sequence[str],
    reference_accuracy: float,
    *,
    min_drop: float,
    min_rows: int = 30,
    alpha: float = 0.05,
) -> DecayCheck:
    """Alarm when accuracy on ≥ ``min_rows`` labelled rows is ``min_drop`` below the reference and
    a one-sided binomial test (H0: accuracy = reference accuracy) rejects at ``alpha``."""
    pairs = [(str(y), str(p)) for y, p in zip(labels, predicted, strict=True) if _present(y)]
    n = len(pairs)
    if n == 0:
        return DecayCheck(0, None, reference_accuracy, None, None, min_rows, False)
    correct = sum(y == p for y, p in pairs)
    accuracy = correct / n
    pvalue = float(stats.binomtest(correct, n, min(max(reference_accuracy, 1e-9), 1.0), "less").pvalue)
    drop = reference_accuracy - accuracy
    alarm = n >= min_rows and drop >= min_drop and pvalue < alpha
    return DecayCheck(n, accuracy, reference_accuracy, drop, pvalue, min_rows, bool(alarm))


# --------------------------------------------------------------------------- the window check


def _present(value: object) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value)) and value != ""


@dataclass(frozen=True)
class DriftInputs:
    """One side of a drift check. ``labels`` may hold None for rows without labelled feedback."""

    texts: Sequence[str]
    embeddings: np.ndarray
    labels: Sequence[str | None] | None = None
    predicted_labels: Sequence[str] | None = None
    confidences: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.texts)
        for name in ("embeddings", "labels", "predicted_labels", "confidences"):
            value = getattr(self, name)
            if value is not None and len(value) != n:
                raise DataError(
                    f"DriftInputs.{name} has {len(value)} rows but texts has {n}.",
                    where=f"DriftInputs.{name}",
                    hint="Pass one value per text, in the same order.",
                )

    def __len__(self) -> int:
        return len(self.texts)

    def labelled(self) -> list[str]:
        """The labels that are present (rows with labelled feedback)."""
        return [str(v) for v in (self.labels or []) if _present(v)]


@dataclass(frozen=True)
class ReferenceScores:
    """The champion's predicted labels and confidences on rows it never trained on: the reference of
    prediction and confidence drift (its own training texts would make every window look unsure)."""

    predicted_labels: Sequence[str]
    confidences: np.ndarray

    def __post_init__(self) -> None:
        if len(self.predicted_labels) != len(self.confidences) or not len(self.confidences):
            raise DataError(
                f"ReferenceScores needs one confidence per predicted label and at least one row; got "
                f"{len(self.predicted_labels)} labels and {len(self.confidences)} confidences.",
                where="ReferenceScores",
                hint="Predict the held-out texts once and pass both outputs.",
            )


@dataclass(frozen=True)
class DriftSettings:
    """Significance levels and effect floors of ``check_drift`` (beyond ``MonitorConfig``)."""

    alpha: float = 0.01  # per-signal false-alarm rate of label, prediction, confidence, descriptors
    label_resamples: int = 1000
    confidence_min_drop: float = 0.03
    decay_min_rows: int = 30
    decay_alpha: float = 0.05
    seed: int = 0


@dataclass(frozen=True)
class DriftReport:
    """Everything a drift check measured, per-signal alarms and the two verdicts."""

    window_size: int
    reference_size: int
    min_window: int
    too_small: bool
    novelty: NoveltyResult
    label: CategoricalDrift | None
    prediction: CategoricalDrift | None
    confidence: ConfidenceDrift | None
    descriptors: TextDescriptors
    decay: DecayCheck | None
    novelty_alarm: bool
    label_alarm: bool
    prediction_alarm: bool
    confidence_alarm: bool
    descriptor_alarm: bool
    decay_alarm: bool
    drift_detected: bool
    decay_detected: bool
    #: ``monitor.watch_label``'s predicted share in the window and on the reference (reported, not judged).
    watched: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe nested dict (no per-text arrays)."""
        data: dict[str, Any] = {
            name: getattr(self, name)
            for name in ("window_size", "reference_size", "min_window", "too_small", "novelty_alarm")
        }
        for name in (
            "label_alarm",
            "prediction_alarm",
            "confidence_alarm",
            "descriptor_alarm",
            "decay_alarm",
        ):
            data[name] = getattr(self, name)
        data.update(drift_detected=self.drift_detected, decay_detected=self.decay_detected)
        for name in ("novelty", "label", "prediction", "confidence", "descriptors", "decay"):
            part = getattr(self, name)
            data[name] = part.to_dict() if part is not None else None
        if self.watched is not None:
            data["watched"] = dict(self.watched)
        return data

    def summary(self) -> str:
        """One paragraph with the numbers, for logs and trigger reasons."""
        return "; ".join(_summary_parts(self))


def _summary_parts(report: DriftReport) -> list[str]:
    n = report.novelty
    parts = [f"window {report.window_size} rows vs reference {report.reference_size}"]
    watched = report.watched or {}
    if watched.get("share") is not None:
        reference = watched.get("reference_share")
        against = f" (reference {reference:.1%})" if reference is not None else ""
        parts.append(f"predicted '{watched['label']}' share {watched['share']:.1%}{against}")
    if report.too_small:
        parts.append(f"too small to judge (< {report.min_window} rows), no alarms")
    parts.append(
        f"novel share {n.novel_share:.1%} (expected {n.expected_share:.1%}, bound {n.bound:.1%})"
        + (" ALARM" if report.novelty_alarm else "")
    )
    for part, alarm in ((report.label, report.label_alarm), (report.prediction, report.prediction_alarm)):
        if part is not None:
            new = f", new: {', '.join(part.new_categories[:5])}" if part.new_categories else ""
            flag = " ALARM" if alarm else ""
            parts.append(f"{part.column} TV {part.distance:.3f} (threshold {part.threshold:.3f}{new}){flag}")
    if report.confidence is not None:
        c = report.confidence
        parts.append(
            f"mean confidence {c.reference_mean:.3f} -> {c.current_mean:.3f} (KS p={c.ks_pvalue:.2g})"
            + (" ALARM" if report.confidence_alarm else "")
        )
    d = report.descriptors
    parts.append(
        f"OOV rate {d.reference_oov_rate:.1%} -> {d.current_oov_rate:.1%}, "
        f"mean length {d.reference_mean_length:.0f} -> {d.current_mean_length:.0f} chars"
        + (" (advisory flag)" if report.descriptor_alarm else "")
    )
    if report.decay is not None and report.decay.accuracy is not None:
        k = report.decay
        parts.append(
            f"feedback accuracy {k.accuracy:.1%} on {k.labelled_rows} rows vs reference "
            f"{k.reference_accuracy:.1%}" + (" DECAY" if report.decay_alarm else "")
        )
    return parts


def _optional_categorical(
    column: str, reference: list[str], current: list[str], settings: DriftSettings
) -> CategoricalDrift | None:
    if not reference or not current:
        return None
    return categorical_drift(
        column,
        reference,
        current,
        alpha=settings.alpha,
        resamples=settings.label_resamples,
        seed=settings.seed,
    )


def _decay(
    current: DriftInputs,
    reference_accuracy: float | None,
    cfg: MonitorConfig,
    settings: DriftSettings,
    per_word: bool = False,
) -> DecayCheck | None:
    if reference_accuracy is None or current.labels is None or current.predicted_labels is None:
        return None
    labels, predicted = current.labels, current.predicted_labels
    if per_word:
        labels, predicted = _per_word(labels, predicted)
    return performance_decay(
        labels,
        predicted,
        reference_accuracy,
        min_drop=cfg.decay_threshold,
        min_rows=settings.decay_min_rows,
        alpha=settings.decay_alpha,
    )


@dataclass(frozen=True)
class _Signals:
    novelty: NoveltyResult
    label: CategoricalDrift | None
    prediction: CategoricalDrift | None
    confidence: ConfidenceDrift | None
    descriptors: TextDescriptors
    decay: DecayCheck | None


LabelUnits = Callable[[Sequence[str]], list[str]]


def _per_word(labels: Sequence[str | None], predicted: Sequence[str]) -> tuple[list[str | None], list[str]]:
    """Tag strings as one (true, predicted) pair per word, so decay compares token-level accuracy."""
    true_words: list[str | None] = []
    predicted_words: list[str] = []
    for y, p in zip(labels, predicted, strict=True):
        if _present(y):
            tags, guesses = str(y).split(), str(p).split()
            true_words += tags
            predicted_words += (guesses + ["O"] * len(tags))[: len(tags)]
    return true_words, predicted_words


def _measure(
    reference: DriftInputs,
    current: DriftInputs,
    cfg: MonitorConfig,
    detector: FittedNoveltyDetector,
    reference_accuracy: float | None,
    settings: DriftSettings,
    held_out: ReferenceScores | None,
    units: LabelUnits | None,
) -> _Signals:
    scored = held_out or reference  # what the window's predictions and confidences are compared with
    unit = units or (lambda values: [str(v) for v in values])
    confidence = None
    if scored.confidences is not None and current.confidences is not None and len(current):
        confidence = confidence_drift(
            scored.confidences,
            current.confidences,
            alpha=settings.alpha,
            min_drop=settings.confidence_min_drop,
        )
    return _Signals(
        novelty=detector.score(current.embeddings),
        label=_optional_categorical("label", unit(reference.labelled()), unit(current.labelled()), settings),
        prediction=_optional_categorical(
            "predicted_label",
            unit(scored.predicted_labels or []),
            unit(current.predicted_labels or []),
            settings,
        ),
        confidence=confidence,
        descriptors=text_descriptors(reference.texts, current.texts, alpha=settings.alpha),
        decay=_decay(current, reference_accuracy, cfg, settings, per_word=units is not None),
    )


def _alarms(signals: _Signals, too_small: bool, min_window: int) -> dict[str, bool]:
    """Per-signal alarms; none at all when the window is too small to judge."""

    def judged(flag: object) -> bool:
        return bool(flag) and not too_small

    label, d = signals.label, signals.descriptors
    return {
        "novelty_alarm": judged(signals.novelty.alarm),
        # Label drift is judged on the labelled rows only, so it needs min_window of those.
        "label_alarm": judged(label is not None and label.alarm and label.current_rows >= min_window),
        "prediction_alarm": judged(signals.prediction is not None and signals.prediction.alarm),
        "confidence_alarm": judged(signals.confidence is not None and signals.confidence.alarm),
        "descriptor_alarm": judged(d.length_alarm or d.oov_alarm),
        "decay_alarm": judged(signals.decay is not None and signals.decay.alarm),
    }


#: Signals that set ``drift_detected``; text descriptors are advisory (benign causes are common:
#: a new channel with longer messages, a product name) and are only shown.
DRIFT_SIGNALS = ("novelty_alarm", "label_alarm", "prediction_alarm", "confidence_alarm")


def check_drift(
    reference: DriftInputs,
    current: DriftInputs,
    cfg: MonitorConfig,
    detector: FittedNoveltyDetector,
    *,
    reference_accuracy: float | None = None,
    settings: DriftSettings | None = None,
    held_out: ReferenceScores | None = None,
    label_units: LabelUnits | None = None,
) -> DriftReport:
    """Judge a window of production data against the reference; no alarm below ``cfg.min_window``.

    ``label_units`` turns the label strings of rows into what label and prediction drift compare
    (token task: one entity type per mention, ``O`` for a sentence with none, so the type mix and the
    entity density are watched); with it, decay compares accuracy per word, as the test accuracy is.

    ``detector`` must be fitted on ``reference.embeddings``. Label drift uses the rows of
    ``current`` with a label; decay needs ``reference_accuracy`` (the champion's test accuracy),
    current labels and predictions. Prediction and confidence drift compare with ``held_out``
    when given, else with ``reference``'s own predictions. Signals whose inputs are missing are
    None and never alarm.
    """
    settings = settings or DriftSettings()
    too_small = len(current) < cfg.min_window
    signals = _measure(reference, current, cfg, detector, reference_accuracy, settings, held_out, label_units)
    alarms = _alarms(signals, too_small, cfg.min_window)
    report = DriftReport(
        window_size=len(current),
        reference_size=len(reference),
        min_window=cfg.min_window,
        too_small=too_small,
        novelty=signals.novelty,
        label=signals.label,
        prediction=signals.prediction,
        confidence=signals.confidence,
        descriptors=signals.descriptors,
        decay=signals.decay,
        drift_detected=any(alarms[name] for name in DRIFT_SIGNALS),
        decay_detected=alarms["decay_alarm"],
        novelty_alarm=alarms["novelty_alarm"],
        label_alarm=alarms["label_alarm"],
        prediction_alarm=alarms["prediction_alarm"],
        confidence_alarm=alarms["confidence_alarm"],
        descriptor_alarm=alarms["descriptor_alarm"],
        decay_alarm=alarms["decay_alarm"],
    )
    logger.info("Drift check: %s", report.summary())
    return report
