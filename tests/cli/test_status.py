"""``loopline status`` and ``--json`` on the list commands, as scripts and people run them: one process
per command on a trained project; stdout holds only JSON with ``--json``, stderr no warnings."""

from __future__ import annotations

import json
import re
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.states import Scheduled

from loopline.feedback.predictions import PredictionRecord
from loopline.feedback.store import FeedbackStore
from tests.cli.conftest import Cli, Result, copy_project
from tests.unit.orchestration.test_artifacts import DRIFT

LIST_COMMANDS = (("models",), ("history",), ("decisions",), ("feedback", "quarantined"))


def table_rows(stdout: str) -> list[list[str]]:
    """Body rows of a Rich table (first line of each row: a wrapped cell continues on the next)."""
    rows = []
    for line in stdout.splitlines():
        if line.startswith("│"):
            cells = [cell.strip() for cell in line.strip().strip("│").split("│")]
            if cells[0]:
                rows.append(cells)
    return rows


def quiet(result: Result) -> Result:
    """No warning of any library on stderr (loopline's own lines only)."""
    assert not re.search(r"warning", result.stderr, re.IGNORECASE), result.explain()
    return result


def test_status_of_a_fresh_home_says_there_is_nothing_yet(tmp_path: Path) -> None:
    cli = Cli(cwd=tmp_path / "fresh", user_home=tmp_path / "user")
    cli.cwd.mkdir()

    shown = quiet(cli.ok("status"))
    assert "Nothing here yet" in shown.stdout and "loopline train" in shown.stdout
    as_json = json.loads(quiet(cli.ok("status", "--json")).stdout)
    assert as_json["champion"] is None and as_json["last_monitor"] is None
    assert as_json["next_run"]["note"] == "no schedule (run `loopline schedule`)"
    assert list(cli.cwd.iterdir()) == []  # looking created no store


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, projects: dict[str, Path]) -> Path:
    """v1 in production, an accepted feedback batch, a monitor decision and 3 flagged served predictions."""
    folder = tmp_path_factory.mktemp("status") / "project"
    copy_project(projects["feedback"], folder)
    with FeedbackStore(f"sqlite:///{folder / '.loopline' / 'feedback.db'}") as store:
        store.record_decision("monitor", True, "Retrain: drift detected", {"drift": DRIFT}, model_version="1")
        store.log_predictions(
            [PredictionRecord(f"hello {i}", "card_arrival", 0.2, "1", flagged=i < 3) for i in range(5)]
        )
    return folder


@pytest.fixture(scope="module")
def outputs(project: Path, tmp_path_factory: pytest.TempPathFactory, prefect_api: str) -> dict[str, Result]:
    """Each list command as a table and as JSON, and status both ways."""
    cli = Cli(cwd=project, user_home=tmp_path_factory.mktemp("user"), prefect_api=prefect_api)
    found = {}
    for command in (*LIST_COMMANDS, ("status",)):
        found[" ".join(command)] = quiet(cli.ok(*command))
        found[" ".join(command) + " --json"] = quiet(cli.ok(*command, "--json"))
    return found


def test_json_of_the_list_commands_parses_and_matches_the_tables(outputs: dict[str, Result]) -> None:
    models = json.loads(outputs["models --json"].stdout)
    assert [[m["version"], ", ".join(m["aliases"])] for m in models] == [
        row[:2] for row in table_rows(outputs["models"].stdout)
    ]
    assert models[0]["aliases"] == ["candidate", "production"] and "test.macro_f1" in models[0]["metrics"]

    history = json.loads(outputs["history --json"].stdout)
    assert [[e["alias"], e["kind"], e["version"]] for e in history] == [
        [row[1], row[2], row[4]] for row in table_rows(outputs["history"].stdout)
    ]
    assert {e["alias"] for e in history} == {"candidate", "production"}

    decisions = json.loads(outputs["decisions --json"].stdout)
    assert [[d["kind"], str(d["retrain"]), d["model_version"]] for d in decisions] == [
        row[1:4] for row in table_rows(outputs["decisions"].stdout)
    ]
    assert decisions[0]["details"]["drift"]["novelty"]["novel_share"] == DRIFT["novelty"]["novel_share"]

    quarantined = json.loads(outputs["feedback quarantined --json"].stdout)
    assert f"Quarantined feedback ({len(quarantined)} rows)" in outputs["feedback quarantined"].stdout
    assert [str(row["id"]) for row in quarantined] == [
        row[0] for row in table_rows(outputs["feedback quarantined"].stdout)
    ]
    assert all(row["reason"] for row in quarantined)


def test_status_shows_champion_last_decision_waiting_feedback_and_flagged(outputs: dict[str, Result]) -> None:
    status = json.loads(outputs["status --json"].stdout)
    models = json.loads(outputs["models --json"].stdout)
    assert status["champion"]["version"] == "1"
    assert status["champion"]["value"] == pytest.approx(models[0]["metrics"]["test.macro_f1"])
    assert status["last_monitor"]["retrain"] is True
    assert status["last_monitor"]["main_signal"] == "novelty 42.0% novel (50 texts) (above bound 12.0%)"
    assert status["feedback_waiting"] > 0 and status["flagged_for_labelling"] == 3
    assert status["next_run"]["expected_start"] is None  # the server holds no loopline deployment

    shown = outputs["status"].stdout
    assert f"v1, test macro-F1 {status['champion']['value']:.4f}" in shown
    assert "retrain — novelty 42.0% novel" in shown
    assert f"{status['feedback_waiting']} labelled rows not yet trained on" in shown
    assert "3 served predictions flagged" in shown
    assert "no schedule (run `loopline schedule`)" in shown


def test_status_names_the_next_scheduled_run(project: Path, tmp_path: Path, prefect_api: str) -> None:
    when = datetime.now(UTC) + timedelta(hours=1)
    with temporary_settings({PREFECT_API_URL: prefect_api}), get_client(sync_client=True) as client:
        deployment_id = client.create_deployment(client.create_flow_from_name("monitor"), "hourly")
        run = client.create_flow_run_from_deployment(deployment_id, state=Scheduled(scheduled_time=when))
        try:
            status = Cli(cwd=project, user_home=tmp_path / "user", prefect_api=prefect_api).ok(
                "status", "--json"
            )
        finally:  # the session's server serves other tests
            client.delete_flow_run(run.id)
            client.delete_deployment(deployment_id)
    next_run = json.loads(status.stdout)["next_run"]
    assert next_run["deployment"] == "monitor/hourly" and next_run["note"] == "scheduled"
    assert abs(datetime.fromisoformat(next_run["expected_start"]) - when) < timedelta(seconds=1)


def test_status_does_not_wait_on_a_prefect_server_that_is_down(project: Path, tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cli = Cli(cwd=project, user_home=tmp_path / "user", prefect_api=f"http://127.0.0.1:{port}/api")
    shown = cli.ok("status", timeout=60)
    assert f"Prefect server http://127.0.0.1:{port}/api not reachable" in shown.stdout
    assert "v1, test macro-F1" in shown.stdout
