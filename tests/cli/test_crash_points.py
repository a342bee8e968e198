"""Fault injection: SIGKILL a command at each named step (``LOOPLINE_CRASH_AT``), then check that the stores
are consistent and that running the same command again completes the work, once.
"""

from __future__ import annotations

import shutil
import signal
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cli.conftest import COLUMNS, Cli, Result, TokenProjects, copy_project

MODEL = "loopline-classifier"


def sql(db: Path, query: str, *args: object) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(query, args).fetchall()
    finally:
        conn.close()


@dataclass
class Home:
    """A project folder (user files + loopline.toml) and its home, with views of what the stores hold."""

    folder: Path
    cli: Cli

    @property
    def path(self) -> Path:
        return self.folder / ".loopline"

    def aliases(self) -> dict[str, str]:
        rows = sql(
            self.path / "mlflow.db", "SELECT alias, version FROM registered_model_aliases WHERE name=?", MODEL
        )
        return {str(alias): str(version) for alias, version in rows}

    def versions(self) -> list[str]:
        rows = sql(
            self.path / "mlflow.db", "SELECT version FROM model_versions WHERE name=? ORDER BY version", MODEL
        )
        return [str(v) for (v,) in rows]

    def history(self) -> list[tuple[str, str, str, str]]:
        """(status, alias, version, at) of every promotion record, oldest first."""
        rows = sql(
            self.path / "mlflow.db",
            "SELECT r.status, a.value, v.value, t.value FROM runs r "
            "JOIN experiments e ON r.experiment_id = e.experiment_id "
            "JOIN tags a ON a.run_uuid = r.run_uuid AND a.key = 'loopline.alias' "
            "JOIN tags v ON v.run_uuid = r.run_uuid AND v.key = 'loopline.version' "
            "JOIN tags t ON t.run_uuid = r.run_uuid AND t.key = 'loopline.at' "
            "WHERE e.name = ? ORDER BY t.value",
            f"{MODEL}-promotions",
        )
        return [tuple(str(x) for x in row) for row in rows]  # type: ignore[misc]

    def card(self, version: str) -> str:
        rows = sql(
            self.path / "mlflow.db",
            "SELECT description FROM model_versions WHERE name=? AND version=?",
            MODEL,
            int(version),
        )
        return str(rows[0][0] or "") if rows else ""

    def feedback(self) -> dict[str, int]:
        rows = sql(self.path / "feedback.db", "SELECT status, count(*) FROM feedback GROUP BY status")
        return {str(status): int(count) for status, count in rows}  # type: ignore[call-overload]

    def batches(self) -> list[tuple[str, str]]:
        return [
            (str(i), str(s))
            for i, s in sql(self.path / "feedback.db", "SELECT id, status FROM feedback_batches")
        ]

    def running_runs(self) -> int:
        return int(sql(self.path / "mlflow.db", "SELECT count(*) FROM runs WHERE status = 'RUNNING'")[0][0])  # type: ignore[call-overload]

    def assert_registry_agrees(self) -> None:
        """After any command: no unfinished promotion record; each alias's latest record is its version."""
        history = self.history()
        assert not [h for h in history if h[0] == "RUNNING"], history
        latest = {alias: version for status, alias, version, _ in history if status == "FINISHED"}
        assert latest == self.aliases(), (latest, self.aliases(), history)


def killed(result: Result) -> None:
    assert result.returncode == -signal.SIGKILL, result.explain()


def project(kind: str, projects: dict[str, Path], tmp_path: Path, prefect_api: str) -> Home:
    folder = tmp_path / kind
    copy_project(projects[kind], folder)
    return Home(folder, Cli(cwd=folder, user_home=tmp_path / "user", prefect_api=prefect_api))


@pytest.fixture()
def home(tmp_path: Path, projects: dict[str, Path], prefect_api: str) -> Home:
    """v1 in production and accepted feedback waiting."""
    return project("feedback", projects, tmp_path, prefect_api)


@pytest.fixture()
def v1(tmp_path: Path, projects: dict[str, Path], prefect_api: str) -> Home:
    return project("v1", projects, tmp_path, prefect_api)


@pytest.fixture()
def empty(tmp_path: Path, projects: dict[str, Path], prefect_api: str) -> Home:
    """The user files, nothing trained yet."""
    return project("empty", projects, tmp_path, prefect_api)


# ---- feedback import and review ---------------------------------------------------------------------

FEEDBACK_POINTS = {
    # point: batch state the kill leaves behind
    "feedback.import": [],  # inside the import transaction: nothing stored
    "feedback.imported": ["imported"],  # imported, not reviewed yet
    "feedback.review": ["imported"],  # inside the review transaction: rolled back
}


@pytest.mark.parametrize("point", list(FEEDBACK_POINTS))
def test_feedback_import_killed(point: str, v1: Home) -> None:
    killed(v1.cli.run("feedback", "import", "feedback.csv", *COLUMNS, LOOPLINE_CRASH_AT=point))
    assert [status for _, status in v1.batches()] == FEEDBACK_POINTS[point]
    stored = v1.feedback()
    assert set(stored) <= {"pending"}, stored  # never half reviewed
    done = v1.cli.ok("feedback", "import", "feedback.csv", *COLUMNS)
    assert "accepted" in done.output
    assert [status for _, status in v1.batches()] == ["accepted"]
    after = v1.feedback()
    assert "pending" not in after and sum(after.values()) == 200, after  # every row once, none left over
    again = v1.cli.ok("feedback", "import", "feedback.csv", *COLUMNS)
    assert "already imported" in again.output and v1.feedback() == after


# ---- promotion and rollback ---------------------------------------------------------------------------


@pytest.mark.parametrize("point", ["promote.intent", "promote.moved"])
def test_promotion_killed_between_alias_and_history(point: str, home: Home) -> None:
    home.cli.ok("retrain")  # v2 in production
    assert home.aliases()["production"] == "2"
    killed(home.cli.run("promote", "1", "--reason", "back to v1", LOOPLINE_CRASH_AT=point))
    moved = point == "promote.moved"
    assert home.aliases()["production"] == ("1" if moved else "2")
    shown = home.cli.ok("history")  # never crashes on an unfinished record; reconciles it
    home.assert_registry_agrees()
    assert ("back to v1" in shown.output) == moved
    if not moved:  # the move never happened: doing it again completes it, recorded once
        home.cli.ok("promote", "1", "--reason", "back to v1")
        home.assert_registry_agrees()
    records = [h for h in home.history() if h[1] == "production" and h[0] == "FINISHED"]
    assert [version for _, _, version, _ in records] == ["1", "2", "1"]
    # Rollback walks back from the recovered state: to v2, the version before.
    assert "v1 → v2 (rollback)" in home.cli.ok("rollback").output
    home.assert_registry_agrees()


def test_rollback_killed_after_moving_the_alias(home: Home) -> None:
    home.cli.ok("retrain")
    killed(home.cli.run("rollback", LOOPLINE_CRASH_AT="promote.moved"))
    assert home.aliases()["production"] == "1"
    home.cli.ok("history")
    home.assert_registry_agrees()
    # The reconciled rollback counts: v2 was rolled back from, so a second rollback has nowhere to go.
    refused = home.cli.run("rollback")
    assert refused.returncode == 2 and "rolled back from" in refused.output, refused.explain()


# ---- training, registration, retraining ---------------------------------------------------------------


@pytest.mark.parametrize(
    "point", ["train.trained", "publish.logged", "publish.registered", "publish.candidate"]
)
def test_train_killed(point: str, empty: Home) -> None:
    killed(empty.cli.run("train", "--data", "data.csv", *COLUMNS, LOOPLINE_CRASH_AT=point))
    registered = point in ("publish.registered", "publish.candidate")
    assert empty.versions() == (["1"] if registered else [])
    assert "production" not in empty.aliases()
    done = empty.cli.ok("train", "--data", "data.csv", *COLUMNS)
    assert empty.versions() == ["1"], "a rerun must not register the same training twice"
    assert empty.aliases() == {"candidate": "1", "production": "1"}
    assert ("Already trained" in done.output) == registered
    empty.assert_registry_agrees()
    # Killed between registering and writing the card: the rerun writes it.
    assert empty.card("1").startswith("# Model card: loopline-classifier v1\n")
    assert empty.running_runs() == 0  # the killed run is marked KILLED, not left running


RETRAIN_POINTS = {
    # point: (versions after the kill, production after the kill)
    "retrain.trained": (["1"], "1"),
    "publish.candidate": (["1", "2"], "1"),  # registered and candidate, not yet production
    "publish.production": (["1", "2"], "2"),
    "retrain.buffers": (["1", "2"], "2"),
}


@pytest.mark.parametrize("point", list(RETRAIN_POINTS))
def test_retrain_killed(point: str, home: Home) -> None:
    before = home.feedback()
    killed(home.cli.run("retrain", LOOPLINE_CRASH_AT=point))
    versions, production = RETRAIN_POINTS[point]
    assert home.versions() == versions and home.aliases()["production"] == production
    assert home.feedback() == before, "feedback is marked used only when the round is complete"
    done = home.cli.ok("retrain")
    assert ("reused" if len(versions) == 2 else "promoted") in done.output, done.explain()
    assert home.versions() == ["1", "2"] and home.aliases()["production"] == "2"
    after = home.feedback()
    assert after.get("used") == before["accepted"] and "accepted" not in after, after
    home.assert_registry_agrees()
    assert home.running_runs() == 0
    assert "skipped" in home.cli.ok("retrain").output  # nothing left to train on


@pytest.fixture()
def token_home(tmp_path: Path, token_projects: TokenProjects, prefect_api: str) -> Home:
    """A token (NER) tagger v1 in production and accepted corrections with a new type waiting."""
    folder = tmp_path / "token"
    copy_project(token_projects.feedback, folder)
    return Home(folder, Cli(cwd=folder, user_home=tmp_path / "user", prefect_api=prefect_api))


@pytest.mark.xdist_group("token-projects")  # built once, on the worker of the token tests
@pytest.mark.parametrize("point", ["publish.candidate"])  # registered, not yet production: the subtle one
def test_token_retrain_killed(point: str, token_home: Home) -> None:
    """As test_retrain_killed, on a token champion (relabelled O words, a head grown by B-/I- rows)."""
    before, batches = token_home.feedback(), token_home.batches()
    killed(token_home.cli.run("retrain", LOOPLINE_CRASH_AT=point))
    versions, production = RETRAIN_POINTS[point]
    assert token_home.versions() == versions and token_home.aliases()["production"] == production
    assert token_home.feedback() == before and token_home.batches() == batches
    token_home.assert_registry_agrees()
    done = token_home.cli.ok("retrain")
    assert "reused" in done.output, done.explain()  # the registered v2 is finished, not trained again
    assert token_home.versions() == ["1", "2"] and token_home.aliases()["production"] == "2"
    after = token_home.feedback()
    assert after.get("used") == before["accepted"] and "accepted" not in after, after
    assert after.get("quarantined") == before["quarantined"], after  # the bad rows stay, with reasons
    token_home.assert_registry_agrees()
    assert token_home.running_runs() == 0


def test_model_download_killed_before_the_rename(home: Home) -> None:
    shutil.rmtree(home.path / "models")
    evaluate = ["evaluate", "--data", "other.csv", *COLUMNS, "--version", "1"]
    killed(home.cli.run(*evaluate, LOOPLINE_CRASH_AT="fetch.downloaded"))
    models = home.path / "models"
    left = [p.name for p in models.iterdir()]
    assert len(left) == 1 and left[0].startswith(f"{MODEL}-v1.partial-"), left  # never a half model
    assert "accuracy" in home.cli.ok(*evaluate).output
    assert sorted(p.name for p in models.iterdir()) == [f"{MODEL}-v1"]  # the partial copy is gone


def damage(path: Path, how: Callable[[bytes], bytes]) -> None:
    path.write_bytes(how(path.read_bytes()))


def test_a_damaged_cached_model_is_fetched_again_and_a_damaged_registry_copy_is_named(home: Home) -> None:
    evaluate = ["evaluate", "--data", "other.csv", *COLUMNS, "--version", "1"]
    home.cli.ok(*evaluate)
    (cached,) = (home.path / "models").rglob("model.safetensors")
    damage(cached, lambda data: data[: len(data) // 2])  # truncated
    assert "accuracy" in home.cli.ok(*evaluate).output  # fetched again, silently repaired
    for stored in (home.path / "mlartifacts").rglob("model.safetensors"):  # v1 is the only version
        damage(stored, lambda data: data[:100] + bytes(len(data) - 100))  # overwritten, same size
    shutil.rmtree(home.path / "models")
    refused = home.cli.run(*evaluate)
    assert (
        refused.returncode == 2 and "damaged" in refused.output and "model.safetensors" in refused.output
    ), refused.explain()
    assert not list((home.path / "models").glob("*v1*")), "nothing damaged is left in the cache"
