"""Crash safety of continual retraining (tiny model): a killed retrain leaves the store and registry
consistent and a rerun completes; a crash after registration is finished without training twice."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient
from prefect.settings import PREFECT_API_URL

import loopline.flows.retrain_flow as retrain_module
from loopline.feedback.store import FeedbackStore
from loopline.flows.feedback_flow import feedback_flow
from loopline.flows.retrain_flow import retrain_flow
from loopline.flows.train_flow import train_flow
from tests.integration.conftest import tiny_overrides

pytestmark = pytest.mark.integration
MODEL = "loopline-classifier"
LENIENT_GATE = {"max_class_recall_drop": 1.0, "min_new_label_recall": 0.0, "tolerance": 1.0}


@pytest.fixture()
def champion_home(tmp_path: Path, tiny_model_dir: Path, demo_files: dict[str, Path]) -> dict[str, Any]:
    """A tiny champion (v1) and one accepted feedback batch waiting to be trained on."""
    home = tmp_path / "home"
    overrides = tiny_overrides(home, tiny_model_dir, gate=LENIENT_GATE, training={"epochs": 3})
    train_csv = tmp_path / "train.csv"
    pd.read_csv(demo_files["train"]).groupby("label").head(30).to_csv(train_csv, index=False)
    train_flow(str(train_csv), overrides=overrides)
    intake = feedback_flow(str(demo_files["feedback_round2"]), overrides=overrides)
    assert intake["batch_status"] == "accepted"
    return {"home": home, "overrides": overrides, "store_url": f"sqlite:///{home / 'feedback.db'}"}


def _versions() -> list[str]:
    return sorted(str(v.version) for v in MlflowClient().search_model_versions(f"name='{MODEL}'"))


def _kill_when_training_checkpoints(process: subprocess.Popen[bytes], runs_dir: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if any(runs_dir.glob("*/checkpoints/last.pt")):
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
            return
        time.sleep(0.1)
    process.kill()
    pytest.fail("the retrain subprocess never reached its first checkpoint")


def test_killed_retrain_leaves_state_consistent_and_rerun_completes(champion_home: dict[str, Any]) -> None:
    home, overrides = champion_home["home"], champion_home["overrides"]
    code = (
        "import json, sys; from loopline.flows.retrain_flow import retrain_flow;"
        "retrain_flow(overrides=json.loads(sys.argv[1]))"
    )
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    process = subprocess.Popen([sys.executable, "-c", code, json.dumps(overrides)], env=env)
    _kill_when_training_checkpoints(process, home / "runs", timeout=300)

    mlflow.set_tracking_uri(f"sqlite:///{home / 'mlflow.db'}")
    assert _versions() == ["1"], "nothing may be registered by a retrain killed mid-training"
    with FeedbackStore(champion_home["store_url"]) as store:
        waiting = len(store.accepted_unused_feedback())
        assert waiting > 0, "feedback must stay unused until a version is registered"

    summary = retrain_flow(overrides=overrides)  # takes over the dead holder's lock

    assert summary["status"] == "promoted" and summary["version"] == "2"
    assert _versions() == ["1", "2"]
    with FeedbackStore(champion_home["store_url"]) as store:
        assert store.accepted_unused_feedback().empty
        used = store.feedback_since(None)
        assert (used.loc[used["status"] == "used", "used_in_version"] == "2").sum() == waiting


def test_crash_after_registration_is_finished_without_training_again(
    champion_home: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    overrides = champion_home["overrides"]

    def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("simulated crash between registration and marking feedback used")

    monkeypatch.setattr(retrain_module, "finish_retrain", crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        retrain_flow(overrides=overrides)
    monkeypatch.undo()
    assert _versions() == ["1", "2"]

    summary = retrain_flow(overrides=overrides)

    assert summary == {**summary, "status": "reused", "version": "2"}
    assert _versions() == ["1", "2"], "the rerun must not train or register again"
    with FeedbackStore(champion_home["store_url"]) as store:
        assert store.accepted_unused_feedback().empty


def test_a_second_retrain_while_one_runs_is_recorded_and_skipped(champion_home: dict[str, Any]) -> None:
    with FeedbackStore(champion_home["store_url"]) as store:
        # A live holder: this very process, as a running retrain would hold it.
        holder = f"{socket.gethostname()}:{os.getpid()}:running-retrain"
        assert store.acquire_lock("retrain", holder, stale_after=timedelta(hours=6))
        try:
            summary = retrain_flow(overrides=champion_home["overrides"])
        finally:
            store.release_lock("retrain", holder)
        decision = store.last_decision("retrain")

    assert summary["status"] == "skipped"
    assert decision is not None and decision.retrain is False and "lock" in decision.reason
    assert _versions() == ["1"]
