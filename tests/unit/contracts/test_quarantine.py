"""The files a contract run leaves: their names come from the input's content hash."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from loopline.contracts import quarantine
from loopline.contracts.quarantine import content_hash


def _whole_csv_digest(df: pd.DataFrame) -> str:
    return hashlib.sha256(df.to_csv(index=False).encode("utf-8", errors="surrogatepass")).hexdigest()


@pytest.mark.parametrize("chunk", [1, 2, 3, 1000])
def test_hash_in_chunks_is_the_hash_of_the_whole_csv(monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    monkeypatch.setattr(quarantine, "HASH_CHUNK_ROWS", chunk)
    frame = pd.DataFrame(
        {
            "text": ["a, b", None, 'say "hi"\nthere', "é \ud800", "x", "y", "z"],
            "label": ["p", "q", None, "p", "q", "p", "q"],
            "score": [0.1, np.nan, 1.0, 2.5, 1e-9, 3.0, 7.25],
            "source_row": [1, 2, 3, 4, 5, 6, 7],
        }
    )
    # The same bytes as one CSV, so quarantine file names of earlier runs stay what they were.
    assert content_hash(frame) == _whole_csv_digest(frame)
    assert content_hash(frame.iloc[:0]) == _whole_csv_digest(frame.iloc[:0])
    assert content_hash(frame) != content_hash(frame.iloc[::-1])
