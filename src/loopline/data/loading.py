"""Load labelled text from CSV/TSV, JSONL/JSON, Parquet or a saved ``datasets`` folder.

Every reader returns the canonical frame: ``text`` and ``label`` as strings (nulls kept as ``None``
so the data contract can quarantine them with their row number) and ``source_row``, the 1-based
data row (CSV/TSV/Parquet/JSON records, header excluded) or line number (JSONL) in the file.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from loopline.errors import DataError

logger = logging.getLogger(__name__)

CSV_SUFFIXES = {".csv": ",", ".tsv": "\t"}
JSONL_SUFFIXES = (".jsonl", ".ndjson")
JSON_SUFFIXES = (".json",)
PARQUET_SUFFIXES = (".parquet", ".pq")
SUPPORTED_SUFFIXES = (*CSV_SUFFIXES, *JSONL_SUFFIXES, *JSON_SUFFIXES, *PARQUET_SUFFIXES)
CANONICAL_COLUMNS = ["text", "label", "source_row"]
NO_LABEL = "\0no label"  # stands in for the label column of texts that have none
DATASETS_MARKERS = ("dataset_dict.json", "state.json")


def load_labelled_text(
    path: str | Path,
    text_column: str = "text",
    label_column: str | None = "label",
    encoding: str = "utf-8",
    *,
    split: str | None = None,
    extra_columns: Sequence[str] = (),
    label_map: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Read a labelled text file into the canonical ``text, label, source_row`` frame.

    ``label_column=None`` reads texts to score: every label is None. ``split`` picks the split of a saved
    ``DatasetDict`` (default ``"train"``). ``extra_columns`` present
    in the file are kept beside them (as strings, nulls as None), in one parse. ``label_map`` turns stored
    labels (e.g. class ids ``"0"``) into names; labels not in it are kept. A UTF-8 or UTF-16 byte-order
    mark wins over ``encoding``. Raises :class:`DataError` saying what is wrong, in which file and what
    to do, for any bytes that are not such a file.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(
            f"Data file not found: {path}",
            where=str(path),
            hint="Check the path, or run `loopline demo` to write example data.",
        )
    frame = _read_datasets_dir(path, split) if path.is_dir() else _read_file(path, encoding)
    result = _to_canonical(frame, path, text_column, label_column, extra_columns)
    if label_map:
        result["label"] = result["label"].map(lambda label: label_map.get(label, label) if label else label)
    logger.info("Loaded %d rows from %s", len(result), path)
    return result


def _read_file(path: Path, encoding: str) -> pd.DataFrame | pa.Table:
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise DataError(
            f"Unsupported file type '{path.suffix or '(none)'}'",
            where=str(path),
            hint=f"Use one of {', '.join(SUPPORTED_SUFFIXES)} or a folder saved with datasets' save_to_disk.",
        )
    if path.stat().st_size == 0:
        raise _empty_file(path)
    if suffix in PARQUET_SUFFIXES:
        return _read_parquet(path)
    text = decode_file(path, encoding)
    if not text.strip():
        raise _empty_file(path)
    if suffix in CSV_SUFFIXES:
        return _read_delimited(text, path, CSV_SUFFIXES[suffix])
    if suffix in JSONL_SUFFIXES:
        return _read_jsonl(text, path)
    return _read_json(text, path)


def _empty_file(path: Path) -> DataError:
    return DataError(
        "The data file is empty (no data rows)",
        where=str(path),
        hint="Export the data again; the file needs a header and at least one labelled row.",
    )


# Byte-order marks, longest first (UTF-32 LE starts like UTF-16 LE).
BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def decode_file(path: Path, encoding: str) -> str:
    """Decode the whole file (a byte-order mark picks the codec), locating the first bad byte for errors.
    Also the token task's reader (CoNLL, token JSONL): one decoder, one message for every format."""
    raw = path.read_bytes()
    codec = next((name for bom, name in BOMS if raw.startswith(bom)), None)
    if codec is None:
        # utf-8-sig also drops a BOM that would otherwise become part of the first column's name.
        codec = "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding
    try:
        text = raw.decode(codec)
    except LookupError as err:
        raise DataError(
            f"Unknown text encoding '{encoding}'", where=str(path), hint="Pass e.g. --encoding latin-1."
        ) from err
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise DataError(
            f"Cannot decode the file as {codec}: byte 0x{raw[err.start]:02x} is not valid",
            where=f"{path}, line {line}, byte offset {err.start}",
            hint=_encoding_hint(raw),
        ) from err
    if text[:4096].count("\x00") > len(text[:4096]) // 4:  # valid UTF-8, but every other byte is NUL
        raise DataError(
            f"The file does not look like {codec} text: a quarter of its first characters are NUL bytes",
            where=str(path),
            hint=_encoding_hint(raw),
        )
    return text


def _encoding_hint(raw: bytes) -> str:
    sample = raw[:4096]
    if len(sample) >= 4 and max(sample[0::2].count(0), sample[1::2].count(0)) > len(sample) // 4:
        return "It looks like UTF-16 without a byte-order mark: pass --encoding utf-16-le (or utf-16-be)."
    return "Pass the file's encoding, e.g. --encoding latin-1 (or cp1252), or re-save it as UTF-8."


def _read_delimited(text: str, path: Path, sep: str) -> pd.DataFrame:
    try:
        header = next(csv.reader(io.StringIO(text.replace("\x00", ""), newline=""), delimiter=sep), [])
    except csv.Error:
        header = []  # pandas says what is wrong below
    _check_unique_columns(header, path)  # pandas would rename a repeated name to "name.1" silently
    try:
        # Strings only: "NA"/"None"/"null" are real labels here; only an empty cell is missing.
        # pandas' C parser ends a field at a NUL byte (the rest of the text would vanish); the Python
        # parser keeps it, so the contract can quarantine the row with its reason.
        frame = pd.read_csv(
            io.StringIO(text),
            sep=sep,
            dtype=str,
            keep_default_na=False,
            na_values=[""],
            engine="python" if "\x00" in text else "c",
        )
    except pd.errors.EmptyDataError as err:
        raise _empty_file(path) from err
    except (pd.errors.ParserError, csv.Error, ValueError) as err:
        raise DataError(
            f"Cannot parse the file as {'TSV' if sep == chr(9) else 'CSV'}: {err}",
            where=str(path),
            hint="Quote fields that contain the separator or line breaks, then export again.",
        ) from err
    if frame.empty:
        raise _empty_file(path)
    if not isinstance(frame.index, pd.RangeIndex):
        # pandas silently takes the first fields as an index when the first rows are wider than the header.
        raise _ragged(text, path, sep)
    return frame.assign(source_row=range(1, len(frame) + 1))


def _ragged(text: str, path: Path, sep: str) -> DataError:
    hint = "Quote fields that contain the separator, or fix the header, then export again."
    try:
        rows = csv.reader(io.StringIO(text.replace("\x00", ""), newline=""), delimiter=sep)
        header = len(next(rows, []))
        for number, row in enumerate(rows, start=1):
            if len(row) > header:
                return DataError(
                    f"Data row {number} has {len(row)} fields but the header has {header}",
                    where=f"{path}, data row {number}",
                    hint=hint,
                )
    except csv.Error:
        pass
    return DataError("Rows have more fields than the header", where=str(path), hint=hint)


def _read_jsonl(text: str, path: Path) -> pd.DataFrame:
    records: list[dict[str, Any]] = []
    line_numbers: list[int] = []
    # split("\n"), not splitlines(): JSON strings may hold U+2028 etc., which are not line ends here.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        record = _parse_json(line, path, f"line {number}")
        if not isinstance(record, dict):
            raise DataError(
                f"Line {number} is a JSON {type(record).__name__}, not an object",
                where=f"{path}, line {number}",
                hint='Write one object per line, e.g. {"text": "...", "label": "..."}.',
            )
        records.append(record)
        line_numbers.append(number)
    if not records:
        raise _empty_file(path)
    return pd.DataFrame(records, dtype=object).assign(source_row=line_numbers)


def _read_json(text: str, path: Path) -> pd.DataFrame:
    payload = _parse_json(text, path, "the document")
    # A list of records, or an object holding one under "data" (a common export shape).
    records = payload.get("data") if isinstance(payload, dict) else payload
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise DataError(
            "The JSON file is not a list of objects",
            where=str(path),
            hint='Use [{"text": ..., "label": ...}, ...] or JSON Lines (.jsonl).',
        )
    if not records:
        raise _empty_file(path)
    return pd.DataFrame(records, dtype=object).assign(source_row=range(1, len(records) + 1))


def _parse_json(text: str, path: Path, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        where = f"{path}, {what}" if what.startswith("line") else f"{path}, line {err.lineno}"
        raise DataError(
            f"Invalid JSON in {what}: {err.msg} (column {err.colno})",
            where=where,
            hint="Fix or remove that line; each line must be one complete JSON object.",
        ) from err


def _read_parquet(path: Path) -> pa.Table:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as err:
        raise DataError(
            f"Cannot read the Parquet file: {err}", where=str(path), hint="Write the file again."
        ) from err
    if table.num_rows == 0:
        raise _empty_file(path)
    return table


def _read_datasets_dir(path: Path, split: str | None) -> pa.Table:
    if not any((path / marker).is_file() for marker in DATASETS_MARKERS):
        raise DataError(
            "The folder is not a dataset saved with datasets' save_to_disk",
            where=str(path),
            hint="Point to a data file (.csv, .jsonl, .parquet...) or to a save_to_disk folder.",
        )
    import datasets  # imported here: it is slow to import and only this reader needs it

    loaded = datasets.load_from_disk(str(path))
    if isinstance(loaded, datasets.DatasetDict):
        loaded = _pick_split(loaded, split or "train", path)
    table = loaded.with_format("arrow")[:]
    if table.num_rows == 0:
        raise _empty_file(path)
    return _class_labels_to_names(table, loaded.features)


def _pick_split(dataset_dict: Any, split: str, path: Path) -> Any:
    if split not in dataset_dict:
        raise DataError(
            f"Split '{split}' not found; the dataset has {', '.join(dataset_dict) or 'no splits'}",
            where=str(path),
            hint="Pass one of those splits (split=...).",
        )
    return dataset_dict[split]


def _class_labels_to_names(table: pa.Table, features: Any) -> pa.Table:
    """ClassLabel columns hold ids; the canonical frame holds their names."""
    import datasets

    for name, feature in features.items():
        if isinstance(feature, datasets.ClassLabel):
            ids = table.column(name).to_pylist()
            names = [None if i is None or i < 0 else feature.int2str(i) for i in ids]
            table = table.set_column(table.schema.get_field_index(name), name, pa.array(names, pa.string()))
    return table


def _check_unique_columns(columns: Sequence[object], path: Path) -> None:
    duplicated = sorted({str(c) for c in columns if columns.count(c) > 1})
    if duplicated:
        raise DataError(
            f"Column name(s) {', '.join(duplicated)} appear more than once in the header",
            where=str(path),
            hint="Give every column its own name, then export again.",
        )


def _to_canonical(
    frame: pd.DataFrame | pa.Table,
    path: Path,
    text_column: str,
    label_column: str | None,
    extra: Sequence[str],
) -> pd.DataFrame:
    columns = list(frame.column_names if isinstance(frame, pa.Table) else frame.columns)
    _check_unique_columns(columns, path)
    if label_column is None:  # texts to score: no labels
        label_column = NO_LABEL
        if isinstance(frame, pa.Table):
            frame = frame.append_column(NO_LABEL, pa.nulls(frame.num_rows, pa.string()))
        else:
            frame = frame.assign(**{NO_LABEL: None})
        columns.append(NO_LABEL)
    for column, flag in ((text_column, "--text-col"), (label_column, "--label-col")):
        if column not in columns:
            available = ", ".join(str(c) for c in columns if c != "source_row") or "none"
            raise DataError(
                f"Column '{column}' not found; available columns: {available}",
                where=str(path),
                hint=f"Pass the right column name with {flag} NAME.",
            )
    kept = [c for c in extra if c in columns and c not in (text_column, label_column, *CANONICAL_COLUMNS)]
    if isinstance(frame, pa.Table):
        return _canonical_from_arrow(frame, path, text_column, label_column, kept)
    return pd.DataFrame(
        {
            "text": _as_str_or_none(frame[text_column]),
            "label": _as_str_or_none(frame[label_column]),
            "source_row": frame["source_row"].astype("int64"),
            **{column: _as_str_or_none(frame[column]) for column in kept},
        }
    )


def _canonical_from_arrow(
    table: pa.Table, path: Path, text_column: str, label_column: str, extra: Sequence[str]
) -> pd.DataFrame:
    def as_strings(column: str) -> list[str | None]:
        try:
            # Arrow's cast keeps nulls and writes ints as "1", not pandas' "1.0".
            return table.column(column).cast(pa.string()).to_pylist()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
            raise DataError(
                f"Column '{column}' has type {table.schema.field(column).type}, not text",
                where=str(path),
                hint="Use a column of strings (or numbers) for text and label.",
            ) from err

    return pd.DataFrame(
        {
            "text": pd.Series(as_strings(text_column), dtype=object),
            "label": pd.Series(as_strings(label_column), dtype=object),
            "source_row": pd.Series(range(1, table.num_rows + 1), dtype="int64"),
            **{column: pd.Series(as_strings(column), dtype=object) for column in extra},
        }
    )


def _as_str_or_none(values: pd.Series) -> pd.Series:
    """Non-null values as ``str`` (JSON may hold numbers), nulls as ``None``."""
    return pd.Series(
        [None if _is_null(v) else v if isinstance(v, str) else _json_scalar(v) for v in values],
        index=values.index,
        dtype=object,
    )


def _is_null(value: Any) -> bool:
    return value is None or (not isinstance(value, (list, dict)) and bool(pd.isna(value)))


def _json_scalar(value: Any) -> str:
    # Labels like 1 or true in JSON become "1"/"true", matching what a CSV export would hold.
    return json.dumps(value, ensure_ascii=False) if isinstance(value, (bool, list, dict)) else str(value)
