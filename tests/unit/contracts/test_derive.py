"""The derived columns the rules look at."""

from __future__ import annotations

import pandas as pd

from loopline.contracts.derive import (
    add_duplicate_columns,
    add_feedback_label_columns,
    add_text_columns,
    normalise_text,
    prepare_frame,
)


def frame(rows: list[tuple[object, object]], **extra: list[object]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=["text", "label"]).assign(**extra)
    df["source_row"] = range(2, len(df) + 2)
    return prepare_frame(df)


def test_text_lengths_ignore_surrounding_whitespace_and_nulls() -> None:
    out = add_text_columns(frame([("  ab ", "a"), (None, "a"), (123, "a")]))
    assert out["text_length"].tolist()[0] == 5 and out["text_content_length"].tolist()[0] == 2
    assert pd.isna(out["text_length"].iloc[1])
    assert out["text"].iloc[2] == "123", "non-string texts are read as strings"


def test_normalise_text() -> None:
    assert normalise_text("  Where IS\tmy  card? ") == "where is my card?"


def test_duplicates_and_conflicts() -> None:
    out = add_duplicate_columns(
        frame([("Hello there", "a"), ("hello  there", "a"), ("Other text", "a"), ("other text", "b")])
    )
    assert out["is_duplicate"].tolist() == [False, True, False, False]
    assert out["duplicate_of"].iloc[1] == 2
    assert out["has_conflicting_label"].tolist() == [False, False, True, True]
    assert out["conflicting_labels"].iloc[2] == "a, b"


def test_user_share_prefers_user_and_falls_back_to_source() -> None:
    rows = [(f"t{i}", "x") for i in range(4)]
    out = add_feedback_label_columns(
        frame(rows, user=["u1", None, "u1", None], source=["s", "s", "s", None]), known_labels={"x"}
    )
    assert out["user_share"].tolist()[:3] == [0.5, 0.25, 0.5]
    assert pd.isna(out["user_share"].iloc[3])
    assert out["flood_by"].tolist()[:2] == ["user 'u1'", "source 's'"]
    assert out["label_is_known"].all() and (out["batch_rows"] == 4).all()


def test_conflicting_labels_join_the_distinct_labels_of_each_text() -> None:
    rows = [("a", "x"), ("B", "y"), ("b", "z"), ("b ", "y"), ("c", "x"), ("A", "x"), ("d", "q"), ("D", "p")]
    out = add_duplicate_columns(frame(rows))
    # Conflicting texts list their labels sorted, once each; the others show their one label.
    assert out["conflicting_labels"].tolist() == ["x", "y, z", "y, z", "y, z", "x", "x", "p, q", "p, q"]
    assert out["has_conflicting_label"].tolist() == [False, True, True, True, False, False, True, True]
    assert out["is_duplicate"].tolist() == [False, False, False, False, False, True, False, False]
    none = add_duplicate_columns(frame([("e", "x"), ("f", "y")]))  # no conflict at all
    assert none["conflicting_labels"].tolist() == ["x", "y"]
    assert not none["has_conflicting_label"].any()
