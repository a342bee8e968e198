"""Bad inputs of the token task (NER), each fed to the real command in its own process, and the refusal to
mix tasks in one model line (the other way round, a token line refusing sequence commands, goes through
the same checks: ``require_task``, ``champion_labels``, ``require_model_task``).

As in ``test_bad_inputs.py``: every case names the command, the exit code (2 for bad input or a refusal,
never a traceback) and fragments of the message, which must say what is wrong and where (file:line, or
the field). Rows a contract refuses are quarantined with their reason and the good rows go through; a
whole file is refused only when nothing usable remains, or when it cannot be read as tagged sentences.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest

from tests.cli.conftest import (
    BAD_TOKEN_ROWS,
    Cli,
    Result,
    TokenProjects,
    copy_project,
    folder_listing,
    store_fingerprint,
    token_rows,
    write_token_jsonl,
)

GOOD = token_rows("base", 40, seed=4)  # 40 sentences of PER/LOC/ORG: enough for the token contract


def jsonl(*rows: dict[str, object]) -> bytes:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode()


def conll(rows: list[dict[str, list[str]]]) -> str:
    return "\n".join("".join(f"{t} {g}\n" for t, g in zip(r["tokens"], r["tags"], strict=True)) for r in rows)


def quarantined(*fragments: str, rows: int) -> Callable[[Path, Result], None]:
    """The home's quarantine CSVs hold ``rows`` rows, with reasons containing each fragment."""

    def check(home: Path, result: Result) -> None:
        frames = [pd.read_csv(f, dtype=str) for f in (home / "quarantine").rglob("*.csv")]
        reasons = list(pd.concat(frames)["reason"]) if frames else []
        assert len(reasons) == rows, reasons
        for fragment in fragments:
            assert any(fragment in reason for reason in reasons), (fragment, reasons)

    return check


@dataclass(frozen=True)
class Case:
    id: str
    args: list[str]  # run with --home h (a fresh home in the case's folder)
    exit: int
    says: list[str]
    files: dict[str, bytes] = field(default_factory=dict)
    check: Callable[[Path, Result], None] | None = None  # (home, result)


MISALIGNED = {"tokens": ["Rome", "and"], "tags": ["B-LOC", "O", "O"]}
SPAN_TEXT = "Anna lives in Paris"  # 19 characters

CASES = [
    Case(
        "conll-line-without-tag",
        ["train", "--task", "token", "--data", "d.conll"],
        2,
        ["d.conll:3", "Line 3 has one column ('nice')", "'token ... tag'"],
        {"d.conll": b"Paris B-LOC\nis O\nnice\n\n" + conll(GOOD).encode()},
    ),
    Case(  # the reader keeps a misaligned row for the contract: quarantined with its reason, not the file
        "jsonl-tokens-tags-lengths-differ",
        ["validate", "d.jsonl", "--task", "token"],
        0,
        ["40 of 41 rows accepted, 1 quarantined", "row 41: tokens and tags are not aligned"],
        {"d.jsonl": jsonl(*GOOD, MISALIGNED)},
        quarantined("2 token(s) but 3 tag(s)", rows=1),
    ),
    Case(  # nothing usable remains: refused, and every row is in the quarantine file with its reason
        "jsonl-every-row-misaligned",
        ["validate", "d.jsonl", "--task", "token"],
        2,
        [
            "tokens and tags are not aligned: 3 token(s) but 2 tag(s)",
            "rows 1, 2, 3, 4, 5",
            "Nothing was lost",
        ],
        {"d.jsonl": jsonl(*[{"tokens": ["Rome", "and", f"x{i}"], "tags": ["B-LOC", "O"]} for i in range(5)])},
        quarantined("not aligned", rows=5),
    ),
    Case(
        "task-unknown",
        ["validate", "d.jsonl", "--task", "ner"],
        2,
        ["task = 'ner'", "'sequence' or 'token'", "command-line option for task"],
        {"d.jsonl": jsonl(*GOOD)},
    ),
    Case(
        "csv-of-sequence-rows",
        ["validate", "d.csv", "--task", "token"],
        2,
        ["A .csv file is not token-tagged data", "CoNLL", "JSONL", "Where: d.csv", "--task sequence"],
        {"d.csv": b"text,label\nmy card has not arrived,card_arrival\nchange my pin please,change_pin\n"},
    ),
    Case(
        "span-past-the-text",
        ["validate", "d.jsonl", "--task", "token"],
        2,
        ["d.jsonl:41", "Entity LOC at characters 14-40 is not a span of the text, which has 19 characters"],
        {
            "d.jsonl": jsonl(
                *GOOD, {"text": SPAN_TEXT, "entities": [{"start": 14, "end": 40, "label": "LOC"}]}
            )
        },
    ),
    Case(
        "conll-latin1",
        ["validate", "d.conll", "--task", "token"],
        2,
        ["Cannot decode", "d.conll, line 3", "--encoding latin-1"],
        {"d.conll": "Paris B-LOC\n\nCafé O\n".encode("latin-1")},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_token_input(case: Case, tmp_path: Path, prefect_api: str) -> None:
    folder = tmp_path / "case"
    folder.mkdir()
    for name, content in case.files.items():
        (folder / name).write_bytes(content)
    listed = folder_listing(folder)
    cli = Cli(cwd=folder, user_home=tmp_path / "user", prefect_api=prefect_api)
    result = cli.run(*case.args, "--home", str(folder / "h"))
    assert result.returncode == case.exit, result.explain()
    assert "Traceback" not in result.output, result.explain()
    for fragment in case.says:
        assert fragment in " ".join(result.output.split()), (fragment, result.explain())
    if case.check is not None:
        case.check(folder / "h", result)
    assert not (folder / "h" / "mlflow.db").exists() or store_fingerprint(folder / "h")["versions"] == []
    stray = {p for p in folder_listing(folder) - listed if not p.startswith("h")}
    assert not stray, f"written outside the home: {sorted(stray)[:10]}"


# ---- rows the token fixtures' own commands quarantined (no process of their own) ------------------------


@pytest.mark.xdist_group("token-projects")  # one worker builds the token homes (`make test`: loadgroup)
def test_a_misaligned_training_row_is_quarantined_and_the_rest_trains(token_projects: TokenProjects) -> None:
    assert "quarantined rows: 1" in token_projects.trained.output, token_projects.trained.explain()
    quarantined("2 token(s) but 3 tag(s)", rows=1)(token_projects.v1 / ".loopline", token_projects.trained)


@pytest.mark.xdist_group("token-projects")
def test_token_feedback_with_invalid_bio_is_quarantined_and_nothing_is_lost(
    token_projects: TokenProjects,
) -> None:
    """A JSONL batch must be BIO: an ``I-PER`` after ``O`` is not repaired (only CoNLL files are read
    as IOB1, where it opens an entity); the row is quarantined with its reason, the others accepted."""
    imported = token_projects.imported
    assert "accepted, 80 accepted, 2 quarantined" in imported.output, imported.explain()
    conn = sqlite3.connect(token_projects.feedback / ".loopline" / "feedback.db")
    try:
        stored = dict(conn.execute("SELECT status, count(*) FROM feedback GROUP BY status").fetchall())
        reasons = dict(
            conn.execute("SELECT label, reason FROM feedback WHERE status = 'quarantined'").fetchall()
        )
    finally:
        conn.close()
    assert stored == {"accepted": 80, "quarantined": 2}, stored  # every row of the file, once
    bad_bio, misaligned = (" ".join(row["tags"]) for row in BAD_TOKEN_ROWS)
    assert "token 1: I-PER does not continue a PER entity (after O)" in reasons[bad_bio], reasons
    assert "2 token(s) but 3 tag(s)" in reasons[misaligned], reasons
    files = list((token_projects.feedback / ".loopline" / "quarantine" / "feedback").glob("*.csv"))
    on_disk = pd.concat(pd.read_csv(f, dtype=str) for f in files)
    assert sorted(on_disk["label"]) == sorted(reasons) and on_disk["reason"].notna().all()


# ---- one model line, one task -------------------------------------------------------------------------


def refused(cli: Cli, home: Path, *args: str, says: list[str]) -> None:
    before = store_fingerprint(home)
    result = cli.run(*args)
    assert result.returncode == 2, result.explain()
    assert "Traceback" not in result.output, result.explain()
    for fragment in says:
        assert fragment in " ".join(result.output.split()), (fragment, result.explain())
    assert store_fingerprint(home) == before, result.explain()


SEQUENCE_LINE = ["is a sequence classifier, but the task is token", "pass --task sequence"]


def test_a_sequence_line_refuses_token_commands(
    tmp_path: Path, projects: dict[str, Path], prefect_api: str
) -> None:
    """v1 is an intent classifier with accepted feedback waiting: token feedback, a token retrain and a
    token evaluation are refused before anything is stored, trained or scored."""
    folder = tmp_path / "sequence"
    copy_project(projects["feedback"], folder)
    write_token_jsonl(folder / "corrections.jsonl", token_rows("new_type", 40, seed=5))
    (folder / "tagged.conll").write_text(conll(GOOD), encoding="utf-8")
    cli, home = Cli(cwd=folder, user_home=tmp_path / "user", prefect_api=prefect_api), folder / ".loopline"
    refused(
        cli, home, "retrain", "--task", "token", says=["loopline-classifier v1 (production)", *SEQUENCE_LINE]
    )
    refused(cli, home, "feedback", "import", "corrections.jsonl", "--task", "token", says=SEQUENCE_LINE)
    refused(cli, home, "evaluate", "--data", "tagged.conll", "--task", "token", says=SEQUENCE_LINE)
