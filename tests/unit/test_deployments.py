"""What a work pool's runs are given: settings as parameters less the stores, file settings made absolute,
and a refusal of a relative home (a pool's run starts in a folder of the worker's choosing).

The worker path on real servers: tests/servers/test_worker_retrain.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from loopline.config import load_settings
from loopline.errors import ConfigError
from loopline.flows.common import check_pool_home, current_work_pool
from loopline.flows.deployments import pool_overrides


def test_pool_overrides_drop_the_stores_and_make_file_settings_absolute(tmp_path: Path) -> None:
    (tmp_path / "mft.csv").write_text("text,label\nhi,greeting\n")
    (tmp_path / "models" / "base").mkdir(parents=True)
    overrides = {
        "home": ".loopline",
        "tracking_uri": "http://mlflow:5000",
        "artifact_location": "s3://bucket",
        "feedback_db_url": "postgresql+psycopg://me:secret@db/feedback",
        "mft_path": "mft.csv",
        "base_model": "models/base",
        "training": {"epochs": 2},
    }
    sent = pool_overrides(overrides, tmp_path)
    assert sent == {
        "mft_path": str(tmp_path.resolve() / "mft.csv"),
        "base_model": str(tmp_path.resolve() / "models" / "base"),
        "training": {"epochs": 2},
    }
    assert overrides["mft_path"] == "mft.csv"  # the caller's dict is left alone


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("base_model", "sentence-transformers/all-MiniLM-L6-v2"),  # a model id, no local path
        ("base_model", "/opt/models/base"),  # absolute already
        ("mft_path", None),
        ("mft_path", "missing.csv"),  # not here: left for the run to report where it looks
    ],
)
def test_pool_overrides_leave_what_is_no_local_relative_path(
    tmp_path: Path, key: str, value: str | None
) -> None:
    assert pool_overrides({key: value}, tmp_path) == {key: value}


def test_a_relative_home_is_refused_on_a_work_pool_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    relative = load_settings(home=Path(".loopline"))
    check_pool_home(relative, None)  # served or local: the home is where the command runs
    check_pool_home(load_settings(home=tmp_path / "home"), "pool-a")

    monkeypatch.delenv("LOOPLINE_HOME", raising=False)
    with pytest.raises(ConfigError) as err:
        check_pool_home(relative, "pool-a")
    message = str(err.value)
    assert "The loopline home .loopline is relative" in message and "'pool-a'" in message
    assert "LOOPLINE_HOME is not set" in message
    assert "`LOOPLINE_HOME=/var/lib/loopline prefect worker start --pool pool-a`" in message

    monkeypatch.setenv("LOOPLINE_HOME", "rel-home")
    with pytest.raises(ConfigError, match="Where: LOOPLINE_HOME=rel-home"):
        check_pool_home(load_settings(), "pool-a")


def test_no_work_pool_outside_a_flow_run() -> None:
    assert current_work_pool() is None
