"""One-shot commands, each its own process, the way cron, CI and people run them.

Every command runs in a fresh working folder with a user home of its own and none of the caller's
``LOOPLINE_*``/MLflow/Prefect variables, so nothing leaks in from this test process and anything written
outside the loopline home shows. Flow commands talk to one ``prefect server start`` for the session
(what the README recommends for repeated one-shot commands) unless a test asks for Prefect's default,
the temporary server each command starts itself.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest

from loopline.config import load_settings
from loopline.data.demo import write_demo_files
from loopline.data.demo_ner import NerRoundKind, ner_round
from loopline.stores import relocate_home
from tests.processes import PREFECT_START_TIMEOUT_S, TELEMETRY_OFF, launch_prefect
from tests.tiny_settings import TINY_TRAINING_AND_GATE

LOOPLINE = str(Path(sys.executable).parent / "loopline")
COMMAND_TIMEOUT_S = 600
# Small, quick and lenient: the tiny random model learns little, and these tests are about processes.
TINY_TOML = (
    'base_model = "{base_model}"\n'
    + TINY_TRAINING_AND_GATE
    + "[monitor]\nmin_labelled_feedback = 100000\nreference_size = 200\n"
)


@dataclass(frozen=True)
class Result:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def explain(self) -> str:
        return f"loopline {' '.join(self.args)} → exit {self.returncode}\n{self.output[-6000:]}"


@dataclass
class Cli:
    """Runs ``loopline`` as a subprocess in ``cwd`` with a clean environment."""

    cwd: Path
    user_home: Path
    prefect_api: str | None = None
    env_extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.user_home.mkdir(parents=True, exist_ok=True)  # a real user has one (Prefect needs it)

    def env(self, **extra: str) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items() if not k.startswith(("LOOPLINE_", "MLFLOW_", "PREFECT_"))}
        env = {
            **keep,
            **TELEMETRY_OFF,
            "HOME": str(self.user_home),
            "PREFECT_HOME": str(self.user_home / ".prefect"),
            "HF_HUB_OFFLINE": "1",
            "COLUMNS": "200",
            **self.env_extra,
            **extra,
        }
        if self.prefect_api:
            env["PREFECT_API_URL"] = self.prefect_api
        return env

    def run(self, *args: str, timeout: float = COMMAND_TIMEOUT_S, **env: str) -> Result:
        done = subprocess.run(
            [LOOPLINE, *args],
            cwd=self.cwd,
            env=self.env(**env),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return Result(tuple(args), done.returncode, done.stdout, done.stderr)

    def ok(self, *args: str, **env: str) -> Result:
        result = self.run(*args, **env)
        assert result.returncode == 0, result.explain()
        assert "Traceback" not in result.output, result.explain()
        return result


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One Prefect server for the session's one-shot flow commands."""
    server, url = launch_prefect(tmp_path_factory.mktemp("prefect-cli"))
    try:
        server.wait_healthy(PREFECT_START_TIMEOUT_S)
        yield url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def user_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A user's files, columns named utterance/intent: training data, another labelled file, feedback
    (with a new intent, so a retrain grows the head)."""
    folder = tmp_path_factory.mktemp("user-files")
    demo = write_demo_files(folder / "demo", seed=3)
    rename = {"text": "utterance", "label": "intent"}
    train = pd.read_csv(demo["train"]).rename(columns=rename)
    files = {
        "data.csv": train.sample(n=400, random_state=0),
        "other.csv": train.sample(n=120, random_state=1),
        "feedback.csv": pd.read_csv(demo["feedback_round2"]).rename(columns=rename).head(200),
    }
    paths = {}
    for name, frame in files.items():
        paths[name] = folder / name
        frame.to_csv(paths[name], index=False)
    return paths


def copy_project(source: Path, target: Path, *, relocate: bool = True) -> None:
    """Copy a project folder; its home (``.loopline``) is relocated so that it is its own. Run folders
    (checkpoints) are left behind: nothing reads them once a run has finished."""

    def run_folders(folder: str, names: list[str]) -> list[str]:
        return ["runs"] if Path(folder).name == ".loopline" and "runs" in names else []

    shutil.copytree(source, target, symlinks=True, ignore=run_folders)
    if relocate and (target / ".loopline" / "mlflow.db").is_file():
        relocate_home(load_settings(home=target / ".loopline"))


COLUMNS = ["--text-col", "utterance", "--label-col", "intent"]


@pytest.fixture(scope="session")
def projects(
    tmp_path_factory: pytest.TempPathFactory,
    user_files: dict[str, Path],
    tiny_model_dir: Path,
    prefect_api: str,
) -> dict[str, Path]:
    """Project folders for tests to copy (``copy_project``): "empty" (the user's files and loopline.toml),
    "v1" (v1 trained, in production), "feedback" (v1 and an accepted feedback batch with a new intent)."""
    root = tmp_path_factory.mktemp("projects")
    empty = root / "empty"
    empty.mkdir()
    for name, path in user_files.items():
        shutil.copy(path, empty / name)
    (empty / "loopline.toml").write_text(tiny_toml(tiny_model_dir))
    copy_project(empty, root / "v1")
    Cli(cwd=root / "v1", user_home=root / "user", prefect_api=prefect_api).ok(
        "train", "--data", "data.csv", *COLUMNS
    )
    copy_project(root / "v1", root / "feedback")
    feedback = Cli(cwd=root / "feedback", user_home=root / "user", prefect_api=prefect_api)
    feedback.ok("feedback", "import", "feedback.csv", *COLUMNS)
    return {"empty": empty, "v1": root / "v1", "feedback": root / "feedback"}


NER_TOML = 'task = "token"\n'
# Corrected sentences a reviewer got wrong: an I- tag after O (JSONL must be BIO), more tags than tokens.
BAD_TOKEN_ROWS = [
    {"tokens": ["Then", "Anna", "Smith", "spoke"], "tags": ["O", "I-PER", "I-PER", "O"]},
    {"tokens": ["Rome", "and"], "tags": ["B-LOC", "O", "O"]},
]


def write_token_jsonl(path: Path, rows: list[dict[str, list[str]]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def token_rows(kind: NerRoundKind, n: int, seed: int) -> list[dict[str, list[str]]]:
    """Sentences of the NER demo generator as token JSONL rows."""
    return [{"tokens": list(s.tokens), "tags": list(s.tags)} for s in ner_round(kind, n, seed=seed)]


@dataclass(frozen=True)
class TokenProjects:
    """Token (NER) project folders for tests to copy, and what the commands that made them said."""

    v1: Path  # a tagger of PER/LOC/ORG in production, trained on train.jsonl (one misaligned row)
    feedback: Path  # v1 and an accepted batch (corrections.jsonl): a new type, PRODUCT, and 2 bad rows
    trained: Result
    imported: Result


@pytest.fixture(scope="session")
def token_projects(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, prefect_api: str
) -> TokenProjects:
    root = tmp_path_factory.mktemp("token-projects")
    v1 = root / "v1"
    v1.mkdir()
    (v1 / "loopline.toml").write_text(NER_TOML + tiny_toml(tiny_model_dir))
    write_token_jsonl(v1 / "train.jsonl", [*token_rows("base", 200, seed=1), BAD_TOKEN_ROWS[1]])
    write_token_jsonl(v1 / "corrections.jsonl", [*token_rows("new_type", 80, seed=3), *BAD_TOKEN_ROWS])
    trained = Cli(cwd=v1, user_home=root / "user", prefect_api=prefect_api).ok(
        "train", "--data", "train.jsonl"
    )
    copy_project(v1, root / "feedback")
    feedback = Cli(cwd=root / "feedback", user_home=root / "user", prefect_api=prefect_api)
    imported = feedback.ok("feedback", "import", "corrections.jsonl")
    return TokenProjects(v1, root / "feedback", trained, imported)


def tiny_toml(base_model: Path) -> str:
    return TINY_TOML.format(base_model=base_model)


def folder_listing(folder: Path) -> set[str]:
    """Every path under ``folder``, relative (what a command left there)."""
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


def store_fingerprint(home: Path) -> dict[str, object]:
    """What bad input must not change: versions, aliases, promotion records, feedback rows and batches."""

    def query(db: Path, sql: str) -> list[tuple[object, ...]]:
        if not db.is_file():
            return []
        conn = sqlite3.connect(db)
        try:
            return conn.execute(sql).fetchall()
        except sqlite3.DatabaseError:  # a broken file: the case is about it
            return []
        finally:
            conn.close()

    mlflow_db, feedback_db = home / "mlflow.db", home / "feedback.db"
    return {
        "versions": query(mlflow_db, "SELECT name, version FROM model_versions ORDER BY name, version"),
        "aliases": query(
            mlflow_db, "SELECT name, alias, version FROM registered_model_aliases ORDER BY 1, 2"
        ),
        "history": query(
            mlflow_db,
            "SELECT r.status, count(*) FROM runs r JOIN experiments e ON r.experiment_id = e.experiment_id "
            "WHERE e.name LIKE '%-promotions' GROUP BY r.status ORDER BY 1",
        ),
        "feedback": query(feedback_db, "SELECT status, count(*) FROM feedback GROUP BY status ORDER BY 1"),
        "batches": query(feedback_db, "SELECT id, status, row_count FROM feedback_batches ORDER BY id"),
    }
