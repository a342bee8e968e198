"""Flow tests run on one temporary Prefect server per session (Prefect's own test harness)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loopline.data.demo import write_demo_files


@pytest.fixture(scope="session", autouse=True)
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def demo_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_demo_files(tmp_path_factory.mktemp("demo"), seed=0)


def tiny_overrides(home: Path, base_model: Path, **extra: Any) -> dict[str, Any]:
    """Settings for flow wiring tests on the tiny random model: short training, gate floors off."""
    overrides: dict[str, Any] = {
        "home": str(home),
        "base_model": str(base_model),
        "training": {"epochs": 1, "batch_size": 32, "max_length": 32, "early_stopping_patience": 0},
        "gate": {"min_macro_f1": 0.0, "min_accuracy": 0.0, "min_behaviour_pass_rate": 0.0},
    }
    for key, value in extra.items():
        overrides[key] = {**overrides.get(key, {}), **value} if isinstance(value, dict) else value
    return overrides
