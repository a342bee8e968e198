"""Class-balanced replay buffer of past training rows, mixed into continual fine-tunes.

Each label keeps at most ``per_class`` rows chosen by reservoir sampling (Algorithm R) over every
row of that label ever offered, so old and new data have the same chance to stay. A label once
seen is never dropped by later updates that lack it: that is what protects against forgetting.
The buffer is one Parquet file; per-label "rows seen" counters ride in its schema metadata.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from loopline.errors import DataError

logger = logging.getLogger(__name__)

COLUMNS = ["text", "label"]
_META_KEY = b"loopline.replay.seen"
_APPLIED_KEY = b"loopline.replay.applied"  # keys of the updates already folded in (idempotent reruns)


class ReplayBuffer:
    """Up to ``per_class`` rows per label, persisted at ``path``."""

    def __init__(
        self,
        path: Path,
        rows: pd.DataFrame | None = None,
        seen: dict[str, int] | None = None,
        applied: list[str] | None = None,
    ):
        self.path = Path(path)
        self._rows = _empty() if rows is None else rows[COLUMNS].reset_index(drop=True)
        self._seen: dict[str, int] = dict(seen or {})
        self._applied: list[str] = list(applied or [])

    @classmethod
    def load(cls, path: Path) -> ReplayBuffer:
        """Read the buffer at ``path``; a missing file is an empty buffer."""
        path = Path(path)
        if not path.exists():
            return cls(path)
        try:
            table = pq.read_table(path)
            metadata = table.schema.metadata or {}
            seen = json.loads(metadata.get(_META_KEY, b"{}"))
            applied = json.loads(metadata.get(_APPLIED_KEY, b"[]"))
        except (pa.ArrowInvalid, OSError, ValueError) as err:
            raise DataError(
                f"Cannot read the replay buffer: {err}",
                where=str(path),
                hint="Delete the file to start an empty buffer; the next training run refills it.",
            ) from err
        seen = {str(k): int(v) for k, v in seen.items()}
        return cls(path, table.to_pandas()[COLUMNS], seen, [str(key) for key in applied])

    def save(self) -> Path:
        """Write the buffer atomically (temporary file, then rename)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pandas(self._rows, preserve_index=False)
        table = table.replace_schema_metadata(
            {_META_KEY: json.dumps(self._seen).encode(), _APPLIED_KEY: json.dumps(self._applied).encode()}
        )
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        pq.write_table(table, tmp)
        os.replace(tmp, self.path)
        return self.path

    def update(
        self,
        df: pd.DataFrame,
        per_class: int,
        seed: int,
        *,
        key: str | None = None,
        strata: Callable[[pd.Series], pd.Series] | None = None,
    ) -> ReplayBuffer:
        """Offer ``df``'s rows to the reservoirs; returns ``self``.

        Rows with a null text or label, and rows already in the buffer, are skipped. Deterministic
        for the same buffer, rows, ``per_class`` and ``seed``. An update under a ``key`` already
        applied does nothing, so a round finished again after a crash does not offer its rows twice.
        """
        if key is not None and key in self._applied:
            logger.info("Replay buffer %s already holds update %s; nothing to do", self.path.name, key)
            return self
        if key is not None:
            self._applied.append(key)
        rng = np.random.default_rng(seed)
        incoming = self._new_rows(df)
        kept: list[pd.DataFrame] = []

        # A "class" is a label, or the task's stratum of it (a sentence's entity types, for tagging).
        def group(frame: pd.DataFrame) -> pd.Series:
            return frame["label"] if strata is None else strata(frame["label"])

        held, offered = group(self._rows), group(incoming)
        for label in sorted(set(held) | set(offered)):
            old = self._rows[(held == label).to_numpy()]
            new = incoming[(offered == label).to_numpy()]
            kept.append(self._reservoir(label, old, new, per_class, rng))
        self._rows = pd.concat(kept, ignore_index=True) if kept else _empty()
        logger.info("Replay buffer: %d rows over %d labels (per_class=%d)", len(self), len(kept), per_class)
        return self

    def sample(self) -> pd.DataFrame:
        """The buffered rows (text, label), sorted by label; a copy."""
        return self._rows.copy()

    @property
    def labels(self) -> list[str]:
        """Every label ever offered, including those whose rows were dropped (``per_class=0``)."""
        return sorted(self._seen)

    def label_counts(self) -> dict[str, int]:
        """Rows held per label."""
        return {str(k): int(v) for k, v in self._rows["label"].value_counts().sort_index().items()}

    def __len__(self) -> int:
        return len(self._rows)

    def _new_rows(self, df: pd.DataFrame) -> pd.DataFrame:
        rows = df[COLUMNS].dropna().astype(str).drop_duplicates()
        held = set(zip(self._rows["text"], self._rows["label"], strict=True))
        fresh = np.array([pair not in held for pair in zip(rows["text"], rows["label"], strict=True)], bool)
        return rows[fresh].reset_index(drop=True)

    def _reservoir(
        self, label: str, old: pd.DataFrame, new: pd.DataFrame, per_class: int, rng: np.random.Generator
    ) -> pd.DataFrame:
        """Algorithm R over the label's stream: the n-th row replaces a random slot with prob k/n."""
        slots = [*old.itertuples(index=False, name=None)]
        if len(slots) > per_class:  # per_class shrank: keep a random subset of what is held
            slots = [slots[i] for i in sorted(rng.choice(len(slots), per_class, replace=False))]
        seen = max(self._seen.get(label, 0), len(slots))
        for row in new.itertuples(index=False, name=None):
            seen += 1
            if len(slots) < per_class:
                slots.append(row)
            elif per_class > 0:
                j = int(rng.integers(0, seen))
                if j < per_class:
                    slots[j] = row
        self._seen[label] = seen
        return pd.DataFrame(slots, columns=COLUMNS, dtype=object)


def repeats_for_share(new_rows: int, replay_rows: int, max_share: float | None) -> int:
    """How often the new rows go into a fine-tune so that replay is at most ``max_share`` of its rows."""
    if max_share is None or new_rows == 0 or replay_rows == 0:
        return 1
    # replay / (replay + k * new) <= share  <=>  k >= replay * (1 - share) / (share * new)
    return max(1, math.ceil(replay_rows * (1 - max_share) / (max_share * new_rows) - 1e-9))


def _empty() -> pd.DataFrame:
    return pd.DataFrame({column: pd.Series(dtype=object) for column in COLUMNS})
