"""Behavioural tests of a classifier (CheckList style): invariance and minimum functionality.

Invariance: the predicted label must not change when a text is lower-cased, upper-cased, stripped of
punctuation, ended with "?!", or given one small typo (two adjacent letters swapped in a word of at least
four letters). A perturbation that leaves a text unchanged is not counted. Minimum functionality: each
(text, label) example of a given frame must be predicted right.
"""

from __future__ import annotations

import logging
import random
import re
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from loopline.errors import DataError

logger = logging.getLogger(__name__)

MAX_SAMPLE = 200
MAX_FAILURES = 10
_PUNCTUATION = str.maketrans("", "", string.punctuation)
_WORD = re.compile(r"[^\W\d_]{4,}")


class SupportsPredict(Protocol):
    """What the checks need of a classifier (``loopline.inference.Classifier`` has it)."""

    labels: list[str]

    def predict(self, texts: Sequence[str]) -> tuple[list[str], np.ndarray]: ...


@dataclass(frozen=True)
class BehaviourCheck:
    """Outcome of one check over ``n`` cases; ``failures`` holds at most ``MAX_FAILURES`` examples."""

    name: str
    kind: str  # "invariance" or "mft"
    n: int
    passed: int
    failures: list[dict[str, str]] = field(default_factory=list)

    @property
    def pass_rate(self) -> float:
        return self.passed / self.n if self.n else 1.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "n": self.n,
            "passed": self.passed,
            "pass_rate": self.pass_rate,
            "failures": [dict(f) for f in self.failures],
        }


@dataclass(frozen=True)
class BehaviourReport:
    """Per-check results. ``overall_pass_rate`` is the mean of the pass rates of the checks that ran
    (each check weighs the same, so a few failing minimum-functionality cases are not drowned by
    hundreds of invariance cases); 1.0 when no check ran."""

    checks: list[BehaviourCheck]
    num_texts: int
    seed: int

    @property
    def overall_pass_rate(self) -> float:
        ran = [check.pass_rate for check in self.checks if check.n]
        return float(np.mean(ran)) if ran else 1.0

    @property
    def pass_rates(self) -> dict[str, float]:
        return {check.name: check.pass_rate for check in self.checks}

    def check(self, name: str) -> BehaviourCheck:
        for item in self.checks:
            if item.name == name:
                return item
        raise KeyError(f"No behaviour check named {name!r}; have {[c.name for c in self.checks]}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "overall_pass_rate": self.overall_pass_rate,
            "num_texts": self.num_texts,
            "seed": self.seed,
            "checks": [check.to_dict() for check in self.checks],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BehaviourReport:
        checks = [
            BehaviourCheck(
                name=c["name"], kind=c["kind"], n=int(c["n"]), passed=int(c["passed"]), failures=c["failures"]
            )
            for c in data["checks"]
        ]
        return cls(checks=checks, num_texts=int(data["num_texts"]), seed=int(data["seed"]))


def add_typo(text: str, seed: int = 0) -> str:
    """Swap two different adjacent inner letters of one word of ≥4 letters; the same text and seed
    always give the same typo. Returns ``text`` unchanged when no word qualifies."""
    rng = random.Random(f"{seed}:{text}")
    words = list(_WORD.finditer(text))
    rng.shuffle(words)
    for match in words:
        word = match.group()
        # Keep the first and last letter: swap positions (i, i+1) with 1 <= i <= len-3.
        spots = [i for i in range(1, len(word) - 2) if word[i] != word[i + 1]]
        if spots:
            i = rng.choice(spots)
            typo = word[:i] + word[i + 1] + word[i] + word[i + 2 :]
            return text[: match.start()] + typo + text[match.end() :]
    return text


def _perturbations(seed: int) -> dict[str, Callable[[str], str]]:
    return {
        "lowercase": str.lower,
        "uppercase": str.upper,
        "no_punctuation": lambda t: " ".join(t.translate(_PUNCTUATION).split()),
        "added_punctuation": lambda t: t.rstrip() + "?!",
        "typo": lambda t: add_typo(t, seed),
    }


def sample_texts(texts: Sequence[str], seed: int = 0, max_texts: int = MAX_SAMPLE) -> list[str]:
    """Up to ``max_texts`` distinct non-blank texts, drawn with ``seed``, in their original order."""
    unique = list(dict.fromkeys(t for t in texts if isinstance(t, str) and t.strip()))
    if len(unique) <= max_texts:
        return unique
    picked = np.random.default_rng(seed).choice(len(unique), size=max_texts, replace=False)
    return [unique[i] for i in sorted(picked)]


def _invariance_checks(
    originals: list[str], predicted: dict[str, str], perturbed: dict[str, dict[int, str]]
) -> list[BehaviourCheck]:
    checks = []
    for name, variants in perturbed.items():
        failures: list[dict[str, str]] = []
        passed = 0
        for i, variant in variants.items():
            expected, got = predicted[originals[i]], predicted[variant]
            if got == expected:
                passed += 1
            elif len(failures) < MAX_FAILURES:
                failures.append(
                    {"text": originals[i], "perturbed": variant, "expected": expected, "got": got}
                )
        checks.append(BehaviourCheck(name, "invariance", len(variants), passed, failures))
    return checks


def _mft_frame(mft: pd.DataFrame, known: set[str] | None) -> pd.DataFrame:
    missing = {"text", "label"} - set(mft.columns)
    if missing:
        raise DataError(
            f"Minimum-functionality frame lacks column(s) {sorted(missing)}.",
            hint="Pass a DataFrame with 'text' and 'label' columns.",
        )
    frame = mft[["text", "label"]].astype(str)
    if known is not None:
        unknown = frame[~frame["label"].isin(known)]
        if len(unknown):
            logger.info(
                "Skipping %d minimum-functionality cases of labels the model lacks: %s",
                len(unknown),
                sorted(set(unknown["label"])),
            )
        frame = frame[frame["label"].isin(known)]
    return frame


def _mft_check(frame: pd.DataFrame, predicted: dict[str, str]) -> BehaviourCheck:
    failures: list[dict[str, str]] = []
    passed = 0
    for text, label in zip(frame["text"], frame["label"], strict=True):
        got = predicted[text]
        if got == label:
            passed += 1
        elif len(failures) < MAX_FAILURES:
            failures.append({"text": text, "expected": label, "got": got})
    return BehaviourCheck("minimum_functionality", "mft", len(frame), passed, failures)


def run_behaviour_checks(
    classifier: SupportsPredict,
    texts: Sequence[str],
    mft: pd.DataFrame | None = None,
    seed: int = 0,
    max_texts: int = MAX_SAMPLE,
) -> BehaviourReport:
    """Run the invariance checks on a seeded sample of ``texts`` and the minimum-functionality frame.

    All texts are predicted in one call to ``classifier.predict``. MFT cases whose label the classifier
    does not know (``classifier.labels``) are skipped: a model cannot be blamed for a label it never saw.
    """
    originals = sample_texts(texts, seed, max_texts)
    perturbed: dict[str, dict[int, str]] = {}
    for name, perturb in _perturbations(seed).items():
        variants = {i: perturb(t) for i, t in enumerate(originals)}
        perturbed[name] = {i: v for i, v in variants.items() if v != originals[i] and v.strip()}
    known = set(map(str, classifier.labels)) if getattr(classifier, "labels", None) is not None else None
    frame = _mft_frame(mft, known) if mft is not None else None
    to_predict = list(
        dict.fromkeys(
            [*originals, *(v for vs in perturbed.values() for v in vs.values())]
            + (frame["text"].tolist() if frame is not None else [])
        )
    )
    labels, _ = classifier.predict(to_predict) if to_predict else ([], None)
    predicted = dict(zip(to_predict, map(str, labels), strict=True))
    checks = _invariance_checks(originals, predicted, perturbed)
    if frame is not None:
        checks.append(_mft_check(frame, predicted))
    report = BehaviourReport(checks=checks, num_texts=len(originals), seed=seed)
    logger.info(
        "Behaviour checks on %d texts: overall pass rate %.3f (%s)",
        len(originals),
        report.overall_pass_rate,
        ", ".join(f"{c.name} {c.pass_rate:.2f}/{c.n}" for c in checks),
    )
    return report
