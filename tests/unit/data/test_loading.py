"""load_labelled_text: every format round-trips, and bad input gives an actionable DataError."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from loopline.data.loading import load_labelled_text
from loopline.errors import DataError

ROWS = pd.DataFrame(
    {
        "text": ["where is my card", "refund, please", 'he said "hi"', "ünïcødé ☕"],
        "label": ["card_arrival", "refund_request", "NA", "None"],
    }
)


def _assert_round_trip(frame: pd.DataFrame) -> None:
    assert list(frame.columns) == ["text", "label", "source_row"]
    assert frame["text"].tolist() == ROWS["text"].tolist()
    assert frame["label"].tolist() == ROWS["label"].tolist()


@pytest.mark.parametrize(("suffix", "sep"), [(".csv", ","), (".tsv", "\t")])
def test_delimited_round_trip_numbers_data_rows_from_one(tmp_path: Path, suffix: str, sep: str) -> None:
    path = tmp_path / f"data{suffix}"
    ROWS.to_csv(path, sep=sep, index=False)
    frame = load_labelled_text(path)
    _assert_round_trip(frame)
    assert frame["source_row"].tolist() == [1, 2, 3, 4]


def test_csv_keeps_na_like_labels_as_strings_and_empty_cells_as_null(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("text,label\nhello there,NA\n,None\nbye now,\nok then,null\n")
    frame = load_labelled_text(path)
    assert frame["label"].tolist() == ["NA", "None", None, "null"]
    assert frame["text"].tolist() == ["hello there", None, "bye now", "ok then"]
    assert frame["source_row"].tolist() == [1, 2, 3, 4]  # no row dropped


def test_csv_custom_columns_utf8_bom_and_other_encoding(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes("\ufeffmessage,intent\ncafé crème,order\n".encode())
    frame = load_labelled_text(path, text_column="message", label_column="intent")
    assert frame["text"].tolist() == ["café crème"]
    latin = tmp_path / "latin.csv"
    latin.write_bytes("text,label\ncafé,order\n".encode("latin-1"))
    assert load_labelled_text(latin, encoding="latin-1")["text"].tolist() == ["café"]


def test_jsonl_round_trip_uses_file_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    lines = [json.dumps(r, ensure_ascii=False) for r in ROWS.to_dict("records")]
    path.write_text(lines[0] + "\n\n" + "\n".join(lines[1:]) + "\n", encoding="utf-8")
    frame = load_labelled_text(path)
    _assert_round_trip(frame)
    assert frame["source_row"].tolist() == [1, 3, 4, 5]


def test_jsonl_numbers_become_strings_and_nulls_stay_null(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text('{"text": "a\u2028b", "label": 1}\r\n{"text": null, "label": 0}\n{"text": "c d"}\n')
    frame = load_labelled_text(path)
    assert frame["label"].tolist() == ["1", "0", None]
    assert frame["text"].tolist() == ["a\u2028b", None, "c d"]  # U+2028 is no line end in JSONL


@pytest.mark.parametrize("wrap", [False, True])
def test_json_list_of_records_round_trip(tmp_path: Path, wrap: bool) -> None:
    records = ROWS.to_dict("records")
    path = tmp_path / "data.json"
    path.write_text(json.dumps({"data": records} if wrap else records))
    frame = load_labelled_text(path)
    _assert_round_trip(frame)
    assert frame["source_row"].tolist() == [1, 2, 3, 4]


def test_parquet_round_trip_and_integer_labels(tmp_path: Path) -> None:
    path = tmp_path / "data.parquet"
    ROWS.to_parquet(path)
    _assert_round_trip(load_labelled_text(path))
    ints = tmp_path / "ints.parquet"
    pd.DataFrame({"text": ["x y", "z w"], "label": [0, 1]}).to_parquet(ints)
    assert load_labelled_text(ints)["label"].tolist() == ["0", "1"]


def test_datasets_dir_takes_train_split_names_class_labels_and_honours_split(tmp_path: Path) -> None:
    import datasets

    features = datasets.Features(
        {"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])}
    )
    train = datasets.Dataset.from_dict(
        {"text": ["bad", "good", "fine"], "label": [0, 1, 1]}, features=features
    )
    test = datasets.Dataset.from_dict({"text": ["meh"], "label": [0]}, features=features)
    datasets.DatasetDict({"train": train, "test": test}).save_to_disk(str(tmp_path / "ds"))
    frame = load_labelled_text(tmp_path / "ds")
    assert frame["text"].tolist() == ["bad", "good", "fine"]
    assert frame["label"].tolist() == ["neg", "pos", "pos"]
    assert load_labelled_text(tmp_path / "ds", split="test")["label"].tolist() == ["neg"]
    with pytest.raises(DataError, match="Split 'validation' not found; the dataset has train, test"):
        load_labelled_text(tmp_path / "ds", split="validation")


def _error(path: Path, **kwargs: str) -> DataError:
    with pytest.raises(DataError) as info:
        load_labelled_text(path, **kwargs)
    return info.value


def test_missing_file(tmp_path: Path) -> None:
    err = _error(tmp_path / "nope.csv")
    assert "not found" in err.what
    assert err.where == str(tmp_path / "nope.csv")


def test_directory_that_is_not_a_datasets_dir(tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    err = _error(tmp_path / "folder")
    assert "not a dataset saved with datasets' save_to_disk" in err.what
    assert err.where == str(tmp_path / "folder")


def test_unsupported_suffix_lists_supported_ones(tmp_path: Path) -> None:
    path = tmp_path / "data.xlsx"
    path.write_bytes(b"PK")
    err = _error(path)
    assert "Unsupported file type '.xlsx'" in err.what
    assert err.where == str(path)
    assert ".csv" in (err.hint or "") and ".jsonl" in (err.hint or "")


@pytest.mark.parametrize(
    ("name", "content"),
    [("zero.csv", ""), ("header.csv", "text,label\n"), ("blank.jsonl", "\n\n"), ("empty.json", "[]")],
)
def test_empty_files(tmp_path: Path, name: str, content: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    err = _error(path)
    assert "empty" in err.what
    assert err.where == str(path)


@pytest.mark.parametrize(
    ("kwargs", "missing", "flag"),
    [
        ({"text_column": "message"}, "message", "--text-col"),
        ({"label_column": "intent"}, "intent", "--label-col"),
    ],
)
def test_missing_column_lists_available_columns_and_flag(
    tmp_path: Path, kwargs: dict[str, str], missing: str, flag: str
) -> None:
    path = tmp_path / "data.csv"
    ROWS.to_csv(path, index=False)
    err = _error(path, **kwargs)
    assert f"Column '{missing}' not found; available columns: text, label" in err.what
    assert err.where == str(path)
    assert flag in (err.hint or "")


def test_undecodable_bytes_report_line_and_byte_offset(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    head = b"text,label\nfine row,a\n"
    path.write_bytes(head + b"caf\xe9,b\n")
    err = _error(path)
    assert "Cannot decode the file as utf-8" in err.what
    assert err.where == f"{path}, line 3, byte offset {len(head) + 3}"
    assert "UTF-8" in (err.hint or "") and "--encoding" in (err.hint or "")


def test_unparseable_json_line_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text('{"text": "a", "label": "b"}\n{"text": "broken", \n')
    err = _error(path)
    assert "Invalid JSON in line 2" in err.what
    assert err.where == f"{path}, line 2"


def test_jsonl_line_that_is_not_an_object(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text('{"text": "a", "label": "b"}\n["a", "b"]\n')
    err = _error(path)
    assert "Line 2 is a JSON list, not an object" in err.what


def test_json_that_is_not_a_list_of_objects(tmp_path: Path) -> None:
    path = tmp_path / "data.json"
    path.write_text('{"text": "a", "label": "b"}')
    assert "not a list of objects" in _error(path).what


def test_malformed_csv_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("text,label\na,b\nc,d,e,f\n")
    err = _error(path)
    assert "Cannot parse the file as CSV" in err.what
    assert err.where == str(path)
