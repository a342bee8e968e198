"""Files a contract run leaves behind: the quarantined rows (CSV) and the validation report (JSON)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import pandas as pd

logger = logging.getLogger(__name__)

REASON_COLUMN = "reason"


HASH_CHUNK_ROWS = 50_000  # rows written to CSV at a time while hashing


def content_hash(df: pd.DataFrame) -> str:
    """sha256 of the frame's CSV form: the same input always gives the same quarantine file name.

    Hashed a chunk of rows at a time (the same bytes as the whole CSV): a million rows as one CSV string
    held a second copy of the data, as text, twice (str and bytes)."""
    digest = hashlib.sha256()
    for start in range(0, max(len(df), 1), HASH_CHUNK_ROWS):
        part = df.iloc[start : start + HASH_CHUNK_ROWS].to_csv(index=False, header=start == 0)
        digest.update(part.encode("utf-8", errors="surrogatepass"))
    return digest.hexdigest()


def output_stem(source: str, digest: str) -> str:
    """``<name>-<hash8>`` for the files of one validated input."""
    name = Path(str(source)).stem or "data"
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
    return f"{safe}-{digest[:8]}"


def save_quarantine(quarantined: pd.DataFrame, path: Path) -> Path:
    """Write the quarantined rows (original columns + ``reason``) as CSV, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    quarantined.to_csv(tmp, index=False)
    os.replace(tmp, path)
    logger.info("Quarantined %d row(s) -> %s", len(quarantined), path)
    return path


def save_report(report: dict[str, Any], path: Path) -> Path:
    """Write the JSON validation report, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(report, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def with_reasons(original: pd.DataFrame, reasons: pd.Series) -> pd.DataFrame:
    """The original rows plus ``reason`` (an input column called ``reason`` becomes ``reason_original``)."""
    out = original.copy()
    if REASON_COLUMN in out.columns:
        out = out.rename(columns={REASON_COLUMN: f"{REASON_COLUMN}_original"})
    out[REASON_COLUMN] = reasons.to_numpy()
    return out
