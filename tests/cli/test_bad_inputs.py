"""A catalogue of bad inputs, each fed to the real command in its own process.

Every row names the input, the command, the exit code it must end with (2 for bad input or a refusal,
never 0 for a refused batch, never a traceback) and a fragment of the message; stores must be unchanged
by a refused input, or the refused rows must be quarantined on disk. A few rows are the good twin of a
bad one (the option the error suggests really works).
"""

from __future__ import annotations

import codecs
import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest

from tests.cli.conftest import Cli, Result, copy_project, folder_listing, store_fingerprint

Files = dict[str, bytes]
KNOWN = ["card_arrival", "change_pin", "refund_request", "account_locked", "transfer_failed"]


def csv_bytes(rows: list[tuple[str, str]], header: str = "text,label", encoding: str = "utf-8") -> bytes:
    frame = pd.DataFrame(rows, columns=header.split(","))
    return frame.to_csv(index=False).encode(encoding)


def good_rows(n: int = 60, labels: list[str] = KNOWN, prefix: str = "message") -> list[tuple[str, str]]:
    return [
        (f"{prefix} number {i} about {labels[i % len(labels)].replace('_', ' ')}", labels[i % len(labels)])
        for i in range(n)
    ]


def with_row(text: str, label: str = "card_arrival", n: int = 60) -> bytes:
    return csv_bytes([*good_rows(n), (text, label)])


@dataclass(frozen=True)
class Case:
    id: str
    args: list[str]
    exit: int
    says: list[str]
    files: Files = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    unchanged: bool = True  # the stores hold exactly what they held before
    check: Callable[[Path, Path, Result], None] | None = None  # (case folder, home, result)
    prepare: Callable[[Path, Path], None] | None = None  # (case folder, project folder): more files
    # "project": the shared trained home; "fresh": an empty one; "h": the case's folder h (its files may
    # put broken stores there); "none": no --home added (the case's arguments say where, if anywhere).
    home: str = "project"


def quarantined_with(fragment: str) -> Callable[[Path, Path, Result], None]:
    """The row is in a quarantine CSV of the home, with a reason containing ``fragment``."""

    def check(folder: Path, home: Path, result: Result) -> None:
        files = list((home / "quarantine").rglob("*.csv"))
        reasons = [r for f in files for r in pd.read_csv(f, dtype=str)["reason"].dropna()]
        assert any(fragment in reason for reason in reasons), (fragment, reasons[-5:])

    return check


def no_model_folder(version: str) -> Callable[[Path, Path, Result], None]:
    def check(folder: Path, home: Path, result: Result) -> None:
        leftovers = [p.name for p in (home / "models").iterdir() if f"-v{version}" in p.name]
        assert not leftovers, leftovers

    return check


def reexport_with_one_row_changed(folder: Path, project: Path) -> None:
    """The batch the project imported, exported again with one text edited."""
    frame = pd.read_csv(project / "feedback.csv", dtype=str)
    frame.loc[0, "utterance"] = frame.loc[0, "utterance"] + " (edited)"
    frame.to_csv(folder / "fb.csv", index=False)


def one_more_feedback_row(folder: Path, home: Path, result: Result) -> None:
    conn = sqlite3.connect(home / "feedback.db")
    try:
        (latest,) = conn.execute(
            "SELECT row_count FROM feedback_batches ORDER BY imported_at DESC"
        ).fetchone()
    finally:
        conn.close()
    assert latest == 1, latest


def feedback_rows_added(expected_quarantined_min: int) -> Callable[[Path, Path, Result], None]:
    def check(folder: Path, home: Path, result: Result) -> None:
        conn = sqlite3.connect(home / "feedback.db")
        try:
            (count,) = conn.execute("SELECT count(*) FROM feedback WHERE status = 'quarantined'").fetchone()
        finally:
            conn.close()
        assert count >= expected_quarantined_min

    return check


def runs_explain_themselves(folder: Path, home: Path, result: Result) -> None:
    """The project's train and retrain runs are named for what they made, by whom; v1 has its card too."""
    conn = sqlite3.connect(home / "mlflow.db")
    try:
        names = [n for (n,) in conn.execute("SELECT value FROM tags WHERE key = 'mlflow.runName'")]
        users = {u for (u,) in conn.execute("SELECT value FROM tags WHERE key = 'mlflow.user'")}
        cards = dict(conn.execute("SELECT version, description FROM model_versions ORDER BY version"))
    finally:
        conn.close()
    assert any(n.startswith("train v1 (") and n.endswith(" rows)") for n in names), names
    assert any(n.startswith("retrain v2 ← v1 (") and n.endswith(" feedback rows)") for n in names), names
    assert len(users) == 1 and "" not in users, users
    assert str(cards[1]).startswith("# Model card: loopline-classifier v1\n"), cards[1]
    assert cards[2] in result.stdout.replace("\r", ""), "the card is printed as stored"


TOML_BASE = "[training]\nepochs = 1\n"
LATIN1 = csv_bytes([*good_rows(40), ("café crème brûlée for my card", "card_arrival")], encoding="latin-1")
UTF16_BOM = codecs.BOM_UTF16_LE + csv_bytes(good_rows(40)).decode().encode("utf-16-le")
UTF16_NO_BOM = csv_bytes(good_rows(40)).decode().encode("utf-16-le")
UTF8_BOM = codecs.BOM_UTF8 + csv_bytes(good_rows(40))
JSONL_GOOD = "\n".join(json.dumps({"text": t, "label": lab}) for t, lab in good_rows(40)).encode()
U2028 = (
    JSONL_GOOD
    + b"\n"
    + json.dumps({"text": "line\u2028separator inside", "label": "change_pin"}, ensure_ascii=False).encode()
)
INT_LABELS = csv_bytes([(f"integer labelled feedback {i}", str(i % 3)) for i in range(30)])

CASES = [
    # ---- settings -------------------------------------------------------------------------------
    Case(
        "toml-unknown-key",
        ["models"],
        2,
        ["unknown setting 'training.epoch'", "did you mean 'training.epochs'"],
        {"loopline.toml": b"[training]\nepoch = 3\n"},
    ),
    Case(
        "toml-negative-epochs",
        ["models"],
        2,
        ["training.epochs = -3", "loopline.toml"],
        {"loopline.toml": b"[training]\nepochs = -3\n"},
    ),
    Case(
        "toml-syntax",
        ["models"],
        2,
        ["Cannot parse the config file", "line 1"],
        {"loopline.toml": b"[training\n"},
    ),
    Case(
        "toml-split-too-big",
        ["models"],
        2,
        ["below 0.6"],
        {"loopline.toml": b"[split]\nvalidation_fraction = 0.4\ntest_fraction = 0.4\n"},
    ),
    Case(
        "toml-not-utf8",
        ["models"],
        2,
        ["Cannot parse the config file"],
        {"loopline.toml": b'model_name = "\xff"\n'},
    ),
    Case("config-missing", ["models", "--config", "nope.toml"], 2, ["Config file not found", "nope.toml"]),
    Case(
        "env-typo",
        ["models"],
        2,
        ["LOOPLINE_MODEL_NAM", "Did you mean LOOPLINE_MODEL_NAME"],
        env={"LOOPLINE_MODEL_NAM": "x"},
    ),
    Case(
        "env-nested-typo",
        ["models"],
        2,
        ["LOOPLINE_TRAINING__EPOCH", "LOOPLINE_TRAINING__EPOCHS"],
        env={"LOOPLINE_TRAINING__EPOCH": "3"},
    ),
    Case(
        "env-not-a-number",
        ["models"],
        2,
        ["training.epochs", "LOOPLINE_TRAINING__EPOCHS"],
        env={"LOOPLINE_TRAINING__EPOCHS": "zero"},
    ),
    Case(
        "tracking-uri-scheme",
        ["models"],
        2,
        ["not an MLflow tracking URI"],
        env={"LOOPLINE_TRACKING_URI": "htp:/x"},
    ),
    Case(
        "tracking-server-down",
        ["models"],
        2,
        ["does not answer", "127.0.0.1:9"],
        env={"LOOPLINE_TRACKING_URI": "http://127.0.0.1:9"},
    ),
    Case(
        "feedback-db-url",
        ["decisions"],
        2,
        ["sqlite or postgresql"],
        env={"LOOPLINE_FEEDBACK_DB_URL": "mysql://x/y"},
    ),
    Case("home-is-a-file", ["models", "--home", "afile"], 2, ["is a file"], {"afile": b"x"}, home="none"),
    Case(
        "encoding-unknown",
        ["validate", "d.csv", "--encoding", "klingon"],
        2,
        ["unknown text encoding"],
        {"d.csv": csv_bytes(good_rows(20))},
    ),
    Case(
        "label-map-malformed",
        ["validate", "d.csv", "--label-map", "0:bearish"],
        2,
        ["Cannot read --label-map"],
        {"d.csv": csv_bytes(good_rows(20))},
    ),
    Case(
        "mlflow-db-garbage", ["models"], 2, ["MLflow"], {"h/mlflow.db": b"this is not sqlite" * 100}, home="h"
    ),
    Case(
        "feedback-db-garbage",
        ["decisions"],
        2,
        ["feedback store"],
        {"h/feedback.db": b"not sqlite" * 100},
        home="h",
    ),
    Case("bad-option-value", ["decisions", "--limit", "many"], 2, ["Invalid value"]),
    # ---- model cards ----------------------------------------------------------------------------
    Case(
        "models-show",
        ["models", "show", "2"],
        0,
        ["# Model card: loopline-classifier v2", "## Intended use", "continual retrain of v1", "## Gate"],
        check=runs_explain_themselves,
    ),
    Case(
        "models-show-unknown",
        ["models", "show", "99"],
        2,
        ["has no version '99'", "Existing versions: [1, 2]"],
    ),
    # ---- validate: the loader -------------------------------------------------------------------
    Case("missing-file", ["validate", "absent.csv"], 2, ["not found", "absent.csv"]),
    Case("folder-not-dataset", ["validate", "adir"], 2, ["not a dataset saved with"], {"adir/x.txt": b"x"}),
    Case(
        "unsupported-suffix", ["validate", "d.xlsx"], 2, ["Unsupported file type"], {"d.xlsx": b"PK\x03\x04"}
    ),
    Case("empty-file", ["validate", "d.csv"], 2, ["empty"], {"d.csv": b""}),
    Case("header-only", ["validate", "d.csv"], 2, ["empty"], {"d.csv": b"text,label\n"}),
    Case(
        "no-text-column",
        ["validate", "d.csv"],
        2,
        ["Column 'text' not found", "--text-col"],
        {"d.csv": csv_bytes(good_rows(20), header="utterance,label")},
    ),
    Case(
        "no-label-column",
        ["validate", "d.csv"],
        2,
        ["Column 'label' not found", "--label-col"],
        {"d.csv": csv_bytes(good_rows(20), header="text,intent")},
    ),
    Case(
        "latin1",
        ["validate", "d.csv"],
        2,
        ["Cannot decode", "line 42", "--encoding latin-1"],
        {"d.csv": LATIN1},
    ),
    Case(
        "latin1-with-option",
        ["validate", "d.csv", "--encoding", "latin-1"],
        0,
        ["accepted"],
        {"d.csv": LATIN1},
    ),
    Case("utf16-bom", ["validate", "d.csv"], 0, ["accepted"], {"d.csv": UTF16_BOM}),
    Case("utf16-no-bom", ["validate", "d.csv"], 2, ["utf-16"], {"d.csv": UTF16_NO_BOM}),
    Case("utf8-bom", ["validate", "d.csv"], 0, ["accepted"], {"d.csv": UTF8_BOM}),
    Case(
        "nul-in-text",
        ["validate", "d.csv", "--home", "h"],
        0,
        ["quarantined"],
        {"d.csv": with_row("my card\x00 has not arrived yet")},
        home="none",
        check=lambda f, h, r: quarantined_with("control character")(f, f / "h", r),
    ),
    Case(
        "bell-in-text",
        ["validate", "d.csv", "--home", "h"],
        0,
        ["quarantined"],
        {"d.csv": with_row("ring the bell \x07 please")},
        home="none",
        check=lambda f, h, r: quarantined_with("control character")(f, f / "h", r),
    ),
    Case(
        "zero-width-only-text",
        ["validate", "d.csv", "--home", "h"],
        0,
        ["quarantined"],
        {"d.csv": with_row("\u200b\u200b\u200d")},
        home="none",
        check=lambda f, h, r: quarantined_with("zero-width")(f, f / "h", r),
    ),
    Case(
        "ragged-row",
        ["validate", "d.csv"],
        2,
        ["has 3 fields but the header has 2"],
        {"d.csv": b"text,label\nhello there,card_arrival,extra\n"},
    ),
    Case(
        "unclosed-quote",
        ["validate", "d.csv"],
        2,
        ["Cannot parse the file as CSV"],
        {"d.csv": b'text,label\n"never closed,card_arrival\nnext,change_pin\n' + b"x,y\n" * 3},
    ),
    Case(
        "jsonl-bad-line",
        ["validate", "d.jsonl"],
        2,
        ["Invalid JSON in line 41"],
        {"d.jsonl": JSONL_GOOD + b"\n{oops"},
    ),
    Case(
        "jsonl-list-line",
        ["validate", "d.jsonl"],
        2,
        ["Line 41 is a JSON list"],
        {"d.jsonl": JSONL_GOOD + b"\n[1, 2]"},
    ),
    Case(
        "json-not-a-list", ["validate", "d.json"], 2, ["not a list of objects"], {"d.json": b'{"text": "x"}'}
    ),
    Case("jsonl-u2028", ["validate", "d.jsonl"], 0, ["accepted"], {"d.jsonl": U2028}),
    Case(
        "parquet-corrupt",
        ["validate", "d.parquet"],
        2,
        ["Cannot read the Parquet file"],
        {"d.parquet": b"PAR1garbagePAR1"},
    ),
    Case(
        "duplicate-header",
        ["validate", "d.csv", "--text-col", "text"],
        2,
        ["appear more than once"],
        {"d.csv": b"text,label,text\na,b,c\n"},
    ),
    Case(
        "markup-column-and-label",
        ["validate", "d.csv", "--text-col", "[/bold]", "--label-col", "[red]"],
        0,
        ["accepted"],
        {"d.csv": csv_bytes([(t, f"[/]{lab}") for t, lab in good_rows(40)], header="[/bold],[red]")},
    ),
    Case(
        "markup-in-missing-column",
        ["validate", "d.csv", "--text-col", "[/bold]"],
        2,
        ["Column '[/bold]' not found"],
        {"d.csv": csv_bytes(good_rows(20))},
    ),
    # ---- validate: the contract -----------------------------------------------------------------
    Case(
        "one-label-only",
        ["validate", "d.csv", "--home", "h"],
        2,
        ["min_labels", "Nothing was lost"],
        {"d.csv": csv_bytes(good_rows(30, labels=["card_arrival"]))},
        home="none",
    ),
    Case(
        "too-many-empty-texts",
        ["validate", "d.csv", "--home", "h"],
        2,
        ["max_quarantine_rate", "quarantined row"],
        {"d.csv": csv_bytes([*good_rows(30), *[("", "card_arrival")] * 10])},
        home="none",
        check=lambda f, h, r: quarantined_with("text is missing")(f, f / "h", r),
    ),
    Case(
        "all-duplicates",
        ["validate", "d.csv"],
        2,
        ["max_duplicate_rate"],
        {"d.csv": csv_bytes([("same text again", "card_arrival")] * 20 + good_rows(10))},
    ),
    Case(
        "conflicting-labels",
        ["validate", "d.csv"],
        2,
        ["max_conflict_rate"],
        {
            "d.csv": csv_bytes(
                [(f"ambiguous {i}", lab) for i in range(10) for lab in KNOWN[:2]] + good_rows(20)
            )
        },
    ),
    # ---- train ----------------------------------------------------------------------------------
    Case("train-missing-data", ["train", "--data", "absent.csv"], 2, ["not found", "absent.csv"]),
    Case(
        "train-one-label",
        ["train", "--data", "d.csv"],
        2,
        ["min_labels"],
        {"d.csv": csv_bytes(good_rows(30, labels=["card_arrival"]))},
    ),
    Case("train-latin1", ["train", "--data", "d.csv"], 2, ["--encoding latin-1"], {"d.csv": LATIN1}),
    Case(
        "train-bad-epochs-flag",
        ["train", "--data", "d.csv", "--epochs", "0"],
        2,
        ["training.epochs"],
        {"d.csv": csv_bytes(good_rows(20))},
    ),
    # ---- evaluate -------------------------------------------------------------------------------
    Case(
        "evaluate-unknown-version",
        ["evaluate", "--data", "d.csv", "--version", "99"],
        2,
        ["has no version '99'", "Existing versions: [1, 2]"],
        {"d.csv": csv_bytes(good_rows(20))},
        check=no_model_folder("99"),
    ),
    Case(
        "evaluate-version-not-a-number",
        ["evaluate", "--data", "d.csv", "--version", "two"],
        2,
        ["not a model version number"],
        {"d.csv": csv_bytes(good_rows(20))},
    ),
    Case(
        "evaluate-unset-alias",
        ["evaluate", "--data", "d.csv", "--alias", "staging"],
        2,
        ["No model version has alias 'staging'"],
        {"d.csv": csv_bytes(good_rows(20))},
    ),
    Case(
        "evaluate-reserved-alias",
        ["evaluate", "--data", "d.csv", "--alias", "latest"],
        2,
        ["not a usable alias"],
        {"d.csv": csv_bytes(good_rows(20))},
    ),
    Case(
        "evaluate-no-label-column",
        ["evaluate", "--data", "d.csv"],
        2,
        ["--label-col"],
        {"d.csv": csv_bytes(good_rows(20), header="text,intent")},
    ),
    Case(
        "evaluate-no-model-yet",
        ["evaluate", "--data", "d.csv"],
        2,
        ["No registered model"],
        {"d.csv": csv_bytes(good_rows(20))},
        home="fresh",
    ),
    # ---- registry -------------------------------------------------------------------------------
    Case("promote-unknown-version", ["promote", "99"], 2, ["has no version '99'"]),
    Case("promote-bad-alias", ["promote", "1", "--alias", "prod uction"], 2, ["not a usable alias"]),
    Case("promote-reserved-alias", ["promote", "1", "--alias", "v2"], 2, ["not a usable alias"]),
    Case("promote-no-model", ["promote", "1"], 2, ["No registered model named"], home="fresh"),
    Case("rollback-unused-alias", ["rollback", "--alias", "staging"], 2, ["no promotion of this alias"]),
    Case("rollback-to-unknown", ["rollback", "--to", "99"], 2, ["has no version '99'"]),
    Case("history-bad-alias", ["history", "--alias", "no way"], 2, ["not a usable alias"]),
    Case(
        "models-unknown-name",
        ["models"],
        2,
        ["No registered model named 'nope'"],
        env={"LOOPLINE_MODEL_NAME": "nope"},
    ),
    # ---- feedback import ------------------------------------------------------------------------
    Case("feedback-missing-file", ["feedback", "import", "absent.csv"], 2, ["not found"]),
    Case(
        "feedback-integer-labels",
        ["feedback", "import", "fb.csv"],
        2,
        ["look like class ids", "--label-map"],
        {"fb.csv": INT_LABELS},
    ),
    Case(
        "feedback-integer-labels-mapped",
        ["feedback", "import", "fb.csv", "--label-map", "0=card_arrival,1=change_pin,2=refund_request"],
        0,
        ["accepted"],
        {"fb.csv": INT_LABELS},
        unchanged=False,
    ),
    Case(
        "feedback-all-rejected",
        ["feedback", "import", "fb.csv"],
        2,
        ["rejected", "quarantined"],
        {"fb.csv": csv_bytes([*[("", "card_arrival")] * 30, *good_rows(5, prefix="kept")])},
        unchanged=False,
        check=feedback_rows_added(35),
    ),
    Case("feedback-latin1", ["feedback", "import", "fb.csv"], 2, ["--encoding latin-1"], {"fb.csv": LATIN1}),
    Case(
        "feedback-no-label-column",
        ["feedback", "import", "fb.csv"],
        2,
        ["--label-col"],
        {"fb.csv": csv_bytes(good_rows(20), header="text,intent")},
    ),
    Case(
        "feedback-nul-in-text",
        ["feedback", "import", "fb.csv"],
        0,
        ["1 quarantined"],
        {"fb.csv": csv_bytes([*good_rows(30, prefix="nul case"), ("bad\x00row of text", "change_pin")])},
        unchanged=False,
        check=lambda f, h, r: quarantined_with("control character")(f, h, r),
    ),
    Case(
        "feedback-u2028-jsonl",
        ["feedback", "import", "fb.jsonl"],
        0,
        ["accepted"],
        {"fb.jsonl": U2028.replace(b"message number", b"u2028 message")},
        unchanged=False,
    ),
    Case(
        "feedback-markup-label",
        ["feedback", "import", "fb.csv"],
        0,
        ["quarantined"],
        {"fb.csv": csv_bytes([*good_rows(30, prefix="markup"), ("label with markup inside", "[/]")])},
        unchanged=False,
    ),
    Case(
        "feedback-long-prediction-id",
        ["feedback", "import", "fb.csv"],
        2,
        ["prediction_id longer than"],
        {"fb.csv": b"text,label,prediction_id\nhello there friend,card_arrival," + b"p" * 80 + b"\n"},
    ),
    Case("feedback-quarantined-markup", ["feedback", "quarantined"], 0, ["[/]"]),
    Case(
        "feedback-reexported-one-row-changed",
        ["feedback", "import", "fb.csv", "--text-col", "utterance", "--label-col", "intent"],
        0,
        ["199 row(s) already stored from earlier batches"],
        unchanged=False,
        prepare=reexport_with_one_row_changed,
        check=one_more_feedback_row,
    ),
    Case(
        "retrain-nothing-waits",
        ["retrain"],
        0,
        ["skipped: no accepted, unused labelled feedback"],
        home="fresh",
        unchanged=False,
    ),
]


def test_the_catalogue_is_big_enough() -> None:
    assert len(CASES) >= 60
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input(case: Case, tmp_path: Path, project: Path, prefect_api: str) -> None:
    """Each case in its own folder, with its own copy of the home: cases cannot see each other."""
    folder = tmp_path / "case"
    folder.mkdir()
    for name, content in case.files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(content)
    if case.prepare is not None:
        case.prepare(folder, project)
    if case.home == "project":
        copy_project(project, tmp_path / "project")
    # "none": the case's own arguments say where (or there is no home); the others pass --home.
    home = {"project": tmp_path / "project" / ".loopline", "fresh": tmp_path / "fresh"}.get(
        case.home, folder / "h"
    )
    home_args = [] if case.home == "none" else ["--home", str(home)]
    before, listed = store_fingerprint(home), folder_listing(folder)
    cli = Cli(cwd=folder, user_home=tmp_path / "user", prefect_api=prefect_api, env_extra=case.env)
    result = cli.run(*case.args, *home_args)
    assert result.returncode == case.exit, result.explain()
    assert "Traceback" not in result.output, result.explain()
    for fragment in case.says:
        assert fragment in " ".join(result.output.split()), (fragment, result.explain())
    if case.unchanged:
        assert store_fingerprint(home) == before, result.explain()
    if case.check is not None:
        case.check(folder, home, result)
    stray = {p for p in folder_listing(folder) - listed if not p.startswith("h")}
    assert not stray, f"written outside the home: {sorted(stray)[:10]}"


@pytest.fixture(scope="session")
def project(tmp_path_factory: pytest.TempPathFactory, projects: dict[str, Path], prefect_api: str) -> Path:
    """A trained home: v1, then feedback with a new intent retrained into v2 (production); one feedback
    row, labelled '[/]', quarantined."""
    folder = tmp_path_factory.mktemp("catalogue") / "project"
    copy_project(projects["feedback"], folder)
    cli = Cli(cwd=folder, user_home=folder.parent / "user", prefect_api=prefect_api)
    # A refused row whose label is Rich markup, for `feedback quarantined` to show as it is.
    (folder / "markup.csv").write_bytes(csv_bytes([*good_rows(30, prefix="seed"), ("marked up", "[/]")]))
    cli.ok("feedback", "import", "markup.csv")
    cli.ok("retrain")
    (folder / "loopline.toml").unlink()  # cases run with the defaults, or their own settings
    return folder
