"""Tiny keyword-separable frames: even a 2-layer random BERT learns them in a few epochs."""

from __future__ import annotations

import random
from collections.abc import Callable

import pandas as pd
import pytest

from loopline.config import TrainingConfig

KEYWORDS = {"billing": "invoice", "delivery": "parcel", "login": "password"}
_FILLER = ["please", "help", "me", "today", "with", "my", "account", "the", "app", "again", "now", "thanks"]


def make_frame(n_rows: int, seed: int, labels: dict[str, str] = KEYWORDS) -> pd.DataFrame:
    """``n_rows`` texts, labels cycling; each text holds its label's keyword among 2-9 filler words."""
    rng = random.Random(seed)
    rows = []
    names = list(labels)
    for i in range(n_rows):
        label = names[i % len(names)]
        words = rng.sample(_FILLER, rng.randint(2, 9))
        words.insert(rng.randint(0, len(words)), labels[label])
        rows.append({"text": " ".join(words), "label": label, "source_row": i + 2})
    return pd.DataFrame(rows)


@pytest.fixture(scope="session")
def frame_maker() -> Callable[..., pd.DataFrame]:
    """``make_frame`` for tests and module-scoped fixtures that need frames of their own."""
    return make_frame


@pytest.fixture()
def train_df() -> pd.DataFrame:
    return make_frame(60, seed=1)


@pytest.fixture()
def val_df() -> pd.DataFrame:
    return make_frame(30, seed=2)


@pytest.fixture()
def fast_cfg() -> TrainingConfig:
    """Settings that make the tiny model learn the keyword task in a few short epochs."""
    return TrainingConfig(
        epochs=2,
        learning_rate=1e-2,
        batch_size=8,
        eval_batch_size=32,
        max_length=32,
        warmup_ratio=0.0,
        early_stopping_patience=0,
        seed=3,
        num_threads=1,  # a tiny model gains nothing from threads, and they stall on a busy machine
    )
