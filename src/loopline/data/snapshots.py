"""Content-addressed dataset snapshots: the same rows always give the same version.

A snapshot lives in ``data_dir/snapshots/<version>/`` as ``data.parquet`` plus ``meta.json``.
The version is ``"ds-"`` + the first 12 hex digits of a SHA-256 over the ``(text, label)`` rows
in order, so re-saving identical content is a no-op that returns the existing version.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from loopline.errors import DataError

logger = logging.getLogger(__name__)

DATA_FILE = "data.parquet"
META_FILE = "meta.json"
SNAPSHOTS_DIR = "snapshots"


@dataclass(frozen=True)
class DatasetVersion:
    """One immutable dataset snapshot and what is known about it."""

    version: str
    content_hash: str
    num_rows: int
    label_counts: dict[str, int]
    source: str
    path: Path
    created_at: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (used for meta.json, MLflow params and results files)."""
        return {**asdict(self), "path": str(self.path)}


def snapshot_dir(data_dir: Path, version: str) -> Path:
    """Folder of one snapshot (it may not exist yet)."""
    return Path(data_dir) / SNAPSHOTS_DIR / version


def compute_content_hash(df: pd.DataFrame) -> str:
    """SHA-256 over the ``(text, label)`` rows in order; nulls hash as JSON ``null``."""
    digest = hashlib.sha256()
    for text, label in zip(_nullable(df["text"]), _nullable(df["label"]), strict=True):
        # One JSON array per row: unambiguous whatever the text holds (commas, newlines, quotes).
        digest.update(json.dumps([text, label], ensure_ascii=False).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def save_snapshot(
    df: pd.DataFrame,
    data_dir: Path,
    source: str,
    label_units: Callable[[pd.Series], pd.Series] | None = None,
) -> DatasetVersion:
    """Save ``df`` (text, label[, source_row]) as a snapshot; return the existing one if already saved.

    ``label_units`` says what ``label_counts`` counts (the task's: labels, or entity mentions by type)."""
    _check_columns(df, source)
    content_hash = compute_content_hash(df)
    version = "ds-" + content_hash[:12]
    target = snapshot_dir(data_dir, version)
    if (target / META_FILE).is_file():
        logger.info("Snapshot %s already exists; not rewriting it", version)
        return _read_meta(target)
    dataset = DatasetVersion(
        version=version,
        content_hash=content_hash,
        num_rows=len(df),
        label_counts=_label_counts(
            df["label"].dropna() if label_units is None else label_units(df["label"].dropna())
        ),
        source=source,
        path=target,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    _write_atomically(target, _stored_frame(df), dataset)
    logger.info("Saved snapshot %s: %d rows, %d labels", version, len(df), len(dataset.label_counts))
    return dataset


def load_snapshot(data_dir: Path, version: str) -> tuple[DatasetVersion, pd.DataFrame]:
    """Read a snapshot back: its metadata and its rows."""
    target = snapshot_dir(data_dir, version)
    if not (target / META_FILE).is_file():
        known = ", ".join(list_snapshot_versions(data_dir)) or "none"
        raise DataError(
            f"Dataset version '{version}' not found (known versions: {known})",
            where=str(target),
            hint="Use a version printed by a training run or listed in the data folder.",
        )
    return _read_meta(target), pd.read_parquet(target / DATA_FILE)


def list_snapshot_versions(data_dir: Path) -> list[str]:
    """Versions saved under ``data_dir``, sorted by name."""
    root = Path(data_dir) / SNAPSHOTS_DIR
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / META_FILE).is_file())


def _check_columns(df: pd.DataFrame, source: str) -> None:
    missing = [c for c in ("text", "label") if c not in df.columns]
    if missing:
        raise DataError(
            f"Cannot snapshot a frame without column(s) {', '.join(missing)}",
            where=source,
            hint="Load the data with load_labelled_text, which returns text and label.",
        )


def _nullable(values: Iterable[Any]) -> list[Any]:
    return [v if isinstance(v, str) else None if pd.isna(v) else str(v) for v in values]


def _label_counts(labels: pd.Series) -> dict[str, int]:
    counts = labels.dropna().astype(str).value_counts()
    return {str(label): int(counts[label]) for label in sorted(counts.index)}


def _stored_frame(df: pd.DataFrame) -> pd.DataFrame:
    columns = [c for c in ("text", "label", "source_row") if c in df.columns]
    stored = df[columns].reset_index(drop=True).copy()
    stored["text"] = pd.Series(_nullable(stored["text"]), dtype=object)
    stored["label"] = pd.Series(_nullable(stored["label"]), dtype=object)
    return stored


def _write_atomically(target: Path, frame: pd.DataFrame, dataset: DatasetVersion) -> None:
    """Write into a temporary sibling folder and rename it, so a crash never leaves half a snapshot."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        frame.to_parquet(tmp / DATA_FILE, index=False)
        (tmp / META_FILE).write_text(json.dumps(dataset.to_dict(), indent=2, ensure_ascii=False))
        os.replace(tmp, target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (target / META_FILE).is_file():  # a concurrent writer may have won the rename
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _read_meta(target: Path) -> DatasetVersion:
    meta = json.loads((target / META_FILE).read_text())
    # The stored path may come from another machine; the folder we read is the truth.
    return DatasetVersion(**{**meta, "path": target})
