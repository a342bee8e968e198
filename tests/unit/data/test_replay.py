"""ReplayBuffer: class-balanced reservoirs that keep every label seen, deterministic and persisted."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from loopline.data.replay import ReplayBuffer, repeats_for_share
from loopline.errors import DataError


def _rows(label: str, n: int, tag: str = "") -> pd.DataFrame:
    return pd.DataFrame({"text": [f"{label}{tag} {i}" for i in range(n)], "label": label})


def _batch(**sizes: int) -> pd.DataFrame:
    return pd.concat([_rows(label, n) for label, n in sizes.items()], ignore_index=True)


def test_missing_file_is_an_empty_buffer(tmp_path: Path) -> None:
    buffer = ReplayBuffer.load(tmp_path / "replay.parquet")
    assert len(buffer) == 0 and buffer.labels == []
    assert list(buffer.sample().columns) == ["text", "label"]


def test_update_caps_each_class_and_keeps_small_ones_whole(tmp_path: Path) -> None:
    buffer = ReplayBuffer(tmp_path / "replay.parquet").update(_batch(a=100, b=50, c=3), per_class=10, seed=0)
    assert buffer.label_counts() == {"a": 10, "b": 10, "c": 3}


def test_labels_absent_from_an_update_are_kept(tmp_path: Path) -> None:
    buffer = ReplayBuffer(tmp_path / "r.parquet").update(_batch(a=20, b=20), per_class=5, seed=0)
    before = buffer.sample()
    buffer.update(_rows("c", 8), per_class=5, seed=1)
    assert buffer.label_counts() == {"a": 5, "b": 5, "c": 5}
    after = buffer.sample()
    pd.testing.assert_frame_equal(after[after.label != "c"].reset_index(drop=True), before)


def test_reservoir_keeps_old_and_new_rows_in_proportion(tmp_path: Path) -> None:
    buffer = ReplayBuffer(tmp_path / "r.parquet")
    buffer.update(_rows("a", 200, tag="-old"), per_class=50, seed=0)
    buffer.update(_rows("a", 200, tag="-new"), per_class=50, seed=1)
    kept_old = buffer.sample()["text"].str.contains("-old").sum()
    assert 15 <= kept_old <= 35  # about half of 50: a uniform sample of all 400 rows seen


def test_same_seed_same_sample_other_seed_other_sample(tmp_path: Path) -> None:
    def run(seed: int) -> pd.DataFrame:
        return (
            ReplayBuffer(tmp_path / "r.parquet").update(_batch(a=60, b=60), per_class=10, seed=seed).sample()
        )

    pd.testing.assert_frame_equal(run(3), run(3))
    assert not run(3).equals(run(4))


def test_save_and_load_round_trip_continues_the_reservoir(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "replay.parquet"
    live = ReplayBuffer(path).update(_batch(a=30, b=12), per_class=8, seed=0)
    assert live.save() == path
    loaded = ReplayBuffer.load(path)
    pd.testing.assert_frame_equal(loaded.sample(), live.sample())
    assert loaded.labels == ["a", "b"]
    # The "rows seen" counters persist, so a reloaded buffer continues exactly like the live one.
    more = _batch(a=30).assign(text=lambda f: f.text + " more")
    pd.testing.assert_frame_equal(
        loaded.update(more, per_class=8, seed=5).sample(), live.update(more, per_class=8, seed=5).sample()
    )


def test_null_rows_and_rows_already_held_are_skipped(tmp_path: Path) -> None:
    rows = pd.DataFrame({"text": ["x one", None, "x two"], "label": ["x", "x", None]})
    buffer = ReplayBuffer(tmp_path / "r.parquet").update(rows, per_class=5, seed=0)
    buffer.update(rows, per_class=5, seed=0)
    assert buffer.sample()["text"].tolist() == ["x one"]


def test_smaller_per_class_shrinks_and_zero_empties_but_remembers_labels(tmp_path: Path) -> None:
    buffer = ReplayBuffer(tmp_path / "r.parquet").update(_batch(a=20, b=20), per_class=10, seed=0)
    assert buffer.update(_batch(a=0), per_class=4, seed=0).label_counts() == {"a": 4, "b": 4}
    buffer.update(_batch(a=0), per_class=0, seed=0)
    assert len(buffer) == 0 and buffer.labels == ["a", "b"]


def test_unreadable_file_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "replay.parquet"
    path.write_text("not parquet")
    with pytest.raises(DataError, match="Cannot read the replay buffer") as info:
        ReplayBuffer.load(path)
    assert info.value.where == str(path)


@pytest.mark.parametrize(
    ("new", "replay", "share", "expected"),
    [
        (10, 90, None, 1),
        (10, 90, 0.5, 9),
        (10, 90, 0.9, 1),
        (10, 91, 0.9, 2),
        (0, 90, 0.5, 1),
        (10, 0, 0.5, 1),
    ],
)
def test_repeats_for_share(new: int, replay: int, share: float | None, expected: int) -> None:
    repeats = repeats_for_share(new, replay, share)
    assert repeats == expected
    if share is not None and new and replay:  # the smallest count that meets the share
        assert replay / (replay + repeats * new) <= share + 1e-12
        assert repeats == 1 or replay / (replay + (repeats - 1) * new) > share
