"""Rollback walks back through earlier good versions; intents left by a killed move are reconciled."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from loopline.errors import RegistryError
from loopline.registry.lookups import GATE_TAG, get_alias_version
from loopline.registry.packaging import log_model, register_model
from loopline.registry.promotion import (
    EVENT_TAG,
    PROMOTIONS_SUFFIX,
    promote,
    promotion_history,
    rollback,
)
from loopline.tracking import HOLDER_TAG

from .conftest import MlflowStore


@pytest.fixture(scope="module")
def model_uri(mlflow_store: MlflowStore, tiny_classifier_dir: Path) -> str:
    with mlflow.start_run(experiment_id=mlflow_store.experiment_id):
        return log_model(tiny_classifier_dir, max_length=32)


def registered(uri: str, name: str, versions: int, failed: tuple[int, ...] = ()) -> None:
    for number in range(1, versions + 1):
        register_model(uri, name, tags={GATE_TAG: "failed" if number in failed else "passed"})


def register(uri: str, name: str, versions: int = 1, tags: dict[str, str] | None = None) -> None:
    for _ in range(versions):
        register_model(uri, name, tags=tags)


def production(name: str) -> str:
    found = get_alias_version(name, "production")
    return "-" if found is None else str(found.version)


def test_repeated_rollbacks_walk_back_and_never_reinstate_what_was_rolled_back(model_uri: str) -> None:
    registered(model_uri, "walk", 3)
    for version in (1, 2, 3):
        promote("walk", version, reason=f"v{version}")
    assert rollback("walk").version == "2"  # v3 → v2
    assert rollback("walk").version == "1"  # v2 → v1, not back to v3 (it was rolled back from)
    with pytest.raises(RegistryError, match=r"no earlier version.*v3 \(rolled back from\)"):
        rollback("walk")
    assert production("walk") == "1"
    # Promoting v3 again makes it a good version again; rolling back from it goes to v1, the one before.
    promote("walk", 3, reason="fixed")
    assert rollback("walk").version == "1"
    kinds = [(e.kind, e.previous_version, e.version) for e in promotion_history("walk", "production")]
    assert kinds[-3:] == [("rollback", "2", "1"), ("promotion", "1", "3"), ("rollback", "3", "1")]


def test_rollback_skips_gate_failed_versions_and_to_is_gate_checked(model_uri: str) -> None:
    registered(model_uri, "skip", 3, failed=(2,))
    promote("skip", 1)
    promote("skip", 2, force=True, reason="hotfix")
    promote("skip", 3)
    assert rollback("skip").version == "1"  # v2 failed its gate: not a good version to go back to
    with pytest.raises(RegistryError, match="gate failed"):
        rollback("skip", to=2)
    forced = rollback("skip", to=2, force=True, reason="accepted risk")
    assert (forced.version, forced.forced, forced.kind) == ("2", True, "rollback")
    assert promotion_history("skip")[-1].forced is True


def test_a_move_killed_after_the_alias_is_completed_on_the_next_read(model_uri: str) -> None:
    registered(model_uri, "moved", 2)
    promote("moved", 1)
    _intent("moved", version="2", previous="1", holder_pid=_dead_pid())
    MlflowClient().set_registered_model_alias("moved", "production", "2")  # the kill came after this
    history = promotion_history("moved", "production")
    assert [(e.previous_version, e.version) for e in history] == [(None, "1"), ("1", "2")]
    assert _statuses("moved") == ["FINISHED", "FINISHED"]
    assert rollback("moved").version == "1"  # the completed record counts


def test_a_move_killed_before_the_alias_is_dropped_and_a_half_record_is_ignored(model_uri: str) -> None:
    registered(model_uri, "dropped", 2)
    promote("dropped", 1)
    _intent("dropped", version="2", previous="1", holder_pid=_dead_pid())
    client = MlflowClient()
    experiment = client.get_experiment_by_name(f"dropped{PROMOTIONS_SUFFIX}")
    client.create_run(experiment.experiment_id, tags={EVENT_TAG: "promotion"})  # no fields at all
    history = promotion_history("dropped")
    assert [e.version for e in history] == ["1"] and production("dropped") == "1"
    assert sorted(_statuses("dropped")) == ["FAILED", "FAILED", "FINISHED"]
    assert promote("dropped", 2).previous_version == "1"


def test_a_live_writer_s_intent_is_left_alone(model_uri: str) -> None:
    import os

    registered(model_uri, "live", 2)
    promote("live", 1)
    _intent("live", version="2", previous="1", holder_pid=os.getpid())  # this process: alive
    assert [e.version for e in promotion_history("live")] == ["1"]
    assert "RUNNING" in _statuses("live")


def _intent(name: str, version: str, previous: str, holder_pid: int) -> None:
    """What a killed ``promote`` leaves: a RUNNING history run with every field."""
    import socket

    client = MlflowClient()
    experiment = client.get_experiment_by_name(f"{name}{PROMOTIONS_SUFFIX}")
    fields = {
        "model": name,
        "alias": "production",
        "version": version,
        "previous_version": previous,
        "actor": "killed",
        "reason": "crashed",
        "at": "2999-01-01T00:00:00+00:00",
        "gate_passed": "true",
        "forced": "false",
    }
    client.create_run(
        experiment.experiment_id,
        tags={
            EVENT_TAG: "promotion",
            HOLDER_TAG: f"{socket.gethostname()}:{holder_pid}",
            **{f"loopline.{k}": v for k, v in fields.items()},
        },
    )


def _statuses(name: str) -> list[str]:
    client = MlflowClient()
    experiment = client.get_experiment_by_name(f"{name}{PROMOTIONS_SUFFIX}")
    return sorted(run.info.status for run in client.search_runs([experiment.experiment_id]))


def _dead_pid() -> int:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return int(done.stdout)


def test_a_version_that_fails_the_canary_is_not_promoted_unless_forced(model_uri: str) -> None:
    registered(model_uri, "canaried", 2)
    promote("canaried", 1, canary=lambda version: None)
    assert promotion_history("canaried")[-1].canary == "passed"
    with pytest.raises(RegistryError, match=r"failed the canary \(too slow\)"):
        promote("canaried", 2, canary=lambda version: "too slow")
    assert production("canaried") == "1"
    forced = promote("canaried", 2, canary=lambda version: "too slow", force=True, reason="known slow")
    assert forced.forced and forced.canary == "too slow"
    with pytest.raises(RegistryError, match="failed the canary"):
        rollback("canaried", canary=lambda version: "broken")
    assert production("canaried") == "2"


def test_promotion_history_and_rollback(model_uri: str, mlflow_store: MlflowStore) -> None:
    register(model_uri, "history", versions=2)
    first = promote("history", 1, actor="alice", reason="first", gate_report={"passed": True, "checks": []})
    second = promote("history", "2", actor="bob", reason="better on feedback")
    assert str(get_alias_version("history", "production").version) == "2"
    assert (second.previous_version, second.gate_passed) == ("1", None)

    events = promotion_history("history", "production")
    assert [(e.version, e.previous_version, e.actor, e.kind) for e in events] == [
        ("1", None, "alice", "promotion"),
        ("2", "1", "bob", "promotion"),
    ]
    assert events[0].gate_passed is True and events[0].run_id == first.run_id

    back = rollback("history", actor="carol", reason="complaints")
    assert (back.kind, back.version, back.previous_version, back.actor) == ("rollback", "1", "2", "carol")
    assert str(get_alias_version("history", "production").version) == "1"
    assert [e.kind for e in promotion_history("history")] == ["promotion", "promotion", "rollback"]

    # The history lives in MLflow: a run per event, gate report as an artifact, beside the model's artifacts.
    client = MlflowClient()
    run = client.get_run(first.run_id)
    assert run.data.tags["loopline.event"] == "promotion"
    assert run.data.params["reason"] == "first"
    report_path = mlflow.artifacts.download_artifacts(run_id=first.run_id, artifact_path="gate_report.json")
    assert json.loads(Path(report_path).read_text())["passed"] is True
    experiment = client.get_experiment_by_name("history-promotions")
    assert experiment.artifact_location.startswith(mlflow_store.artifact_location)

    # Promoting the version that already holds the alias changes and records nothing.
    same = promote("history", 1, actor="dave")
    assert same.kind == "unchanged" and same.run_id is None
    assert len(promotion_history("history")) == 3


def test_promotion_refuses_a_failed_gate_unless_forced(model_uri: str) -> None:
    register(model_uri, "gated")
    register(model_uri, "gated", tags={GATE_TAG: "failed"})
    with pytest.raises(RegistryError, match="gate failed") as err:
        promote("gated", 2, actor="alice", reason="try")
    assert "loopline.gate=failed on version 2" in str(err.value)
    assert get_alias_version("gated", "production") is None
    with pytest.raises(RegistryError, match="passed=false"):
        promote("gated", 1, gate_report={"passed": False})

    forced = promote("gated", 2, actor="alice", reason="hotfix, accepted risk", force=True)
    assert forced.gate_passed is False
    run = MlflowClient().get_run(forced.run_id)
    assert run.data.params["forced"] == "true"
    assert str(get_alias_version("gated", "production").version) == "2"


def test_clear_errors_for_unknown_model_version_alias_and_history(model_uri: str) -> None:
    with pytest.raises(RegistryError, match="No registered model named 'nope'"):
        promote("nope", 1)
    register(model_uri, "errors")
    with pytest.raises(RegistryError, match="has no version '7'") as err:
        promote("errors", 7)
    assert "Existing versions: [1]" in str(err.value)
    assert get_alias_version("errors", "staging") is None
    with pytest.raises(RegistryError, match="not a usable alias"):
        promote("errors", 1, alias="prod uction")
    with pytest.raises(RegistryError, match="no promotion of this alias is recorded"):
        rollback("errors")
    promote("errors", 1, alias="staging")
    with pytest.raises(RegistryError, match="first version"):
        rollback("errors", alias="staging")
    with pytest.raises(RegistryError, match="Could not register"):
        register_model("models:/m-doesnotexist", "errors")
