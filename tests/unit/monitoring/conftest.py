"""Synthetic data for the drift tests: clusters of unit vectors and texts from per-cluster words."""

from __future__ import annotations

import numpy as np
import pytest

DIM = 32


def cluster_centres(n: int, seed: int) -> np.ndarray:
    centres = np.random.default_rng(seed).normal(size=(n, DIM))
    return centres / np.linalg.norm(centres, axis=1, keepdims=True)


def sample_clusters(centres: np.ndarray, n: int, rng: np.random.Generator, noise: float = 0.35) -> np.ndarray:
    """``n`` unit vectors around randomly chosen centres."""
    picks = rng.integers(0, len(centres), size=n)
    points = centres[picks] + noise * rng.normal(size=(n, DIM)) / np.sqrt(DIM)
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="session")
def known_centres() -> np.ndarray:
    """Twenty 'intents' seen in the reference."""
    return cluster_centres(20, seed=1)


@pytest.fixture(scope="session")
def new_centre() -> np.ndarray:
    """One 'intent' the reference never saw."""
    return cluster_centres(1, seed=99)


@pytest.fixture(scope="session")
def reference_embeddings(known_centres: np.ndarray) -> np.ndarray:
    return sample_clusters(known_centres, 1000, np.random.default_rng(0))


WORDS = [f"word{i}" for i in range(300)]


def make_texts(n: int, rng: np.random.Generator, words: list[str] | None = None) -> list[str]:
    vocabulary = words or WORDS
    return [" ".join(rng.choice(vocabulary, size=rng.integers(4, 12))) for _ in range(n)]
