"""Derived columns the suites' rules look at; computed here, judged by Great Expectations.

Each ``add_*`` function takes the rows still alive at that stage and returns a copy with the
columns the stage's expectations name. Batch-relative columns (support, duplicates, floods) are
computed on the surviving rows only, so a row that already failed does not count for others.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import pandas as pd

from loopline.contracts.gx_runner import ROW_ID
from loopline.data.text import normalise_text, visible_text

FLOOD_KEYS = ("user", "source")  # who gave the feedback, in order of preference


def _as_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if value is None or (not isinstance(value, (list, tuple, dict)) and pd.isna(value)):
        return None
    return str(value)


def prepare_frame(df: pd.DataFrame) -> pd.DataFrame:
    """The working frame (index = ROW_ID): text and label as str-or-None, source_row, flood keys."""
    work = pd.DataFrame({ROW_ID: range(len(df))})  # positional: the input index may repeat
    work["text"] = df["text"].map(_as_text).astype(object).to_numpy()
    work["label"] = df["label"].map(_as_text).astype(object).to_numpy()
    if "source_row" in df.columns:
        work["source_row"] = df["source_row"].to_numpy()
    else:
        work["source_row"] = range(1, len(df) + 1)
    for key in FLOOD_KEYS:
        if key in df.columns:
            work[key] = df[key].map(_as_text).astype(object).to_numpy()
    return work


def add_text_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """text_length (characters) and text_content_length (characters without surrounding whitespace and
    invisible zero-width characters)."""
    out = frame.copy()
    out["text_length"] = out["text"].str.len()
    out["text_content_length"] = out["text"].map(visible_text, na_action="ignore").str.len()
    return out


def add_duplicate_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """has_conflicting_label (+ conflicting_labels), is_duplicate (+ duplicate_of: first source_row)."""
    out = frame.copy()
    key = out["text"].map(normalise_text)
    by_text = out.groupby(key)["label"]
    out["has_conflicting_label"] = by_text.transform("nunique").gt(1).astype(bool)
    out["conflicting_labels"] = by_text.transform(lambda labels: ", ".join(sorted(set(labels))))
    repeated = pd.Series(
        pd.MultiIndex.from_arrays([key, out["label"]]).duplicated(keep="first"), index=out.index
    )
    out["is_duplicate"] = (~out["has_conflicting_label"] & repeated).astype(bool)
    out["duplicate_of"] = out.groupby([key, out["label"]])["source_row"].transform("first")
    return out


def add_label_support(frame: pd.DataFrame) -> pd.DataFrame:
    """label_support: rows of the row's label among the surviving rows."""
    out = frame.copy()
    out["label_support"] = out.groupby("label")["label"].transform("size").astype(int)
    return out


def add_feedback_label_columns(frame: pd.DataFrame, known_labels: Collection[str]) -> pd.DataFrame:
    """label_support, label_is_known, and the flood columns batch_rows, user_share, flood_by."""
    out = add_label_support(frame)
    out["label_is_known"] = out["label"].isin(set(known_labels)).astype(bool)
    out["batch_rows"] = len(out)
    who, kind = _flood_key(out)
    out["flood_by"] = kind + " '" + who.fillna("") + "'"
    counts = out.groupby([who, out["label"]], dropna=True)["label"].transform("size")
    out["user_share"] = (counts / max(len(out), 1)).where(who.notna()).astype(float)
    return out


def _flood_key(frame: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Who gave each row: the user if known, else the source; and which of the two it is."""
    who = pd.Series(None, index=frame.index, dtype=object)
    kind = pd.Series("user", index=frame.index, dtype=object)
    for key in reversed(FLOOD_KEYS):  # later keys first, so the preferred key wins
        if key in frame.columns:
            present = frame[key].notna()
            who = who.where(~present, frame[key])
            kind = kind.where(~present, key)
    return who, kind


def batch_frame(
    work: pd.DataFrame, quarantined: set[int], counted: set[int], flags: pd.DataFrame
) -> pd.DataFrame:
    """One row per input row with what the batch rules look at.

    ``quarantined``/``counted``: ROW_IDs quarantined / quarantined for a rule that counts towards
    the quarantine rate. ``flags``: is_duplicate and has_conflicting_label by ROW_ID (missing = 0).
    """
    ids = work[ROW_ID]
    out = pd.DataFrame({ROW_ID: ids.to_numpy()}, index=work.index)
    out["is_accepted"] = ~ids.isin(quarantined)
    out["accepted_label"] = work["label"].where(out["is_accepted"], None)
    out["is_quarantined"] = ids.isin(counted).astype(float)
    for column in ("is_duplicate", "has_conflicting_label"):
        values = flags.set_index(ROW_ID)[column].astype(float) if column in flags.columns else pd.Series()
        out[column] = ids.map(values).astype(float).fillna(0.0).to_numpy()
    return out
