"""Snapshots are content-addressed, idempotent and read back exactly."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest

from loopline.data.snapshots import DatasetVersion, compute_content_hash, load_snapshot, save_snapshot
from loopline.errors import DataError


@pytest.fixture()
def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "text": ["where is my card", None, "refund, please", "a\nb"],
            "label": ["card_arrival", "refund_request", "refund_request", "NA"],
            "source_row": [1, 2, 3, 4],
        }
    )


def test_save_writes_parquet_and_meta_under_the_version(frame: pd.DataFrame, tmp_path: Path) -> None:
    dataset = save_snapshot(frame, tmp_path, source="train.csv")
    lines = [json.dumps(pair, ensure_ascii=False) + "\n" for pair in frame[["text", "label"]].values.tolist()]
    expected_hash = hashlib.sha256("".join(lines).encode()).hexdigest()
    assert dataset.content_hash == expected_hash
    assert dataset.version == "ds-" + expected_hash[:12]
    assert dataset.path == tmp_path / "snapshots" / dataset.version
    assert (dataset.path / "data.parquet").is_file()
    assert json.loads((dataset.path / "meta.json").read_text())["version"] == dataset.version
    assert dataset.num_rows == 4
    assert dataset.label_counts == {"NA": 1, "card_arrival": 1, "refund_request": 2}
    assert dataset.source == "train.csv"


def test_load_round_trip(frame: pd.DataFrame, tmp_path: Path) -> None:
    saved = save_snapshot(frame, tmp_path, source="train.csv")
    loaded, rows = load_snapshot(tmp_path, saved.version)
    assert loaded == saved
    assert rows["text"].tolist() == frame["text"].tolist()
    assert rows["label"].tolist() == frame["label"].tolist()
    assert rows["source_row"].tolist() == [1, 2, 3, 4]


def test_same_content_is_idempotent_and_not_rewritten(frame: pd.DataFrame, tmp_path: Path) -> None:
    first = save_snapshot(frame, tmp_path, source="a.csv")
    data_file = first.path / "data.parquet"
    mtime = data_file.stat().st_mtime_ns
    # Other index, other source_row and other source: the (text, label) content is what counts.
    again = save_snapshot(
        frame.assign(source_row=[9, 8, 7, 6]).set_index(pd.Index([5, 6, 7, 8])), tmp_path, "b"
    )
    assert again == first
    assert data_file.stat().st_mtime_ns == mtime
    assert len(list((tmp_path / "snapshots").iterdir())) == 1


def test_different_content_or_order_gives_a_different_version(frame: pd.DataFrame) -> None:
    base = compute_content_hash(frame)
    relabelled = frame.assign(label=["card_arrival", "refund_request", "refund_request", "NB"])
    assert compute_content_hash(relabelled) != base
    assert compute_content_hash(frame.iloc[::-1]) != base
    # A null text and the string "None" must not collide.
    assert compute_content_hash(frame.assign(text=frame.text.fillna("None"))) != base


def test_to_dict_is_json_safe(frame: pd.DataFrame, tmp_path: Path) -> None:
    dataset = save_snapshot(frame, tmp_path, source="train.csv")
    restored = json.loads(json.dumps(dataset.to_dict()))
    assert DatasetVersion(**{**restored, "path": Path(restored["path"])}) == dataset


def test_unknown_version_lists_known_ones(frame: pd.DataFrame, tmp_path: Path) -> None:
    saved = save_snapshot(frame, tmp_path, source="train.csv")
    with pytest.raises(DataError) as info:
        load_snapshot(tmp_path, "ds-000000000000")
    assert "Dataset version 'ds-000000000000' not found" in info.value.what
    assert saved.version in info.value.what
    assert info.value.where == str(tmp_path / "snapshots" / "ds-000000000000")


def test_frame_without_label_column_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"without column\(s\) label.*Where: train.csv"):
        save_snapshot(pd.DataFrame({"text": ["a"]}), tmp_path, source="train.csv")
