"""Fake classifiers with the ``loopline.inference.Classifier`` predict interface (no model needed)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest


class KeywordClassifier:
    """Case-sensitive keyword rules: "refund" → refund, "parcel" → shipping, otherwise billing."""

    def __init__(self) -> None:
        self.labels = ["billing", "refund", "shipping"]
        self.calls = 0

    def _label(self, text: str) -> str:
        if "refund" in text:
            return "refund"
        if "parcel" in text:
            return "shipping"
        return "billing"

    def predict(self, texts: Sequence[str]) -> tuple[list[str], np.ndarray]:
        self.calls += 1
        labels = [self._label(t) for t in texts]
        return labels, np.full(len(labels), 0.8)


class ConstantClassifier:
    """Always says "billing": invariant to every perturbation by construction."""

    def __init__(self) -> None:
        self.labels = ["billing", "refund"]

    def predict(self, texts: Sequence[str]) -> tuple[list[str], np.ndarray]:
        return ["billing"] * len(texts), np.full(len(texts), 0.9)


@pytest.fixture()
def keyword_classifier() -> KeywordClassifier:
    return KeywordClassifier()


@pytest.fixture()
def constant_classifier() -> ConstantClassifier:
    return ConstantClassifier()
