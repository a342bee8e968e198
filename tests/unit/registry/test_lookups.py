"""Lookups: versions with their aliases, tags, run metrics and data version; a version found by its tag."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest

from loopline.registry.lookups import GATE_TAG, find_version_by_tag, list_versions
from loopline.registry.packaging import log_model, register_model
from loopline.registry.promotion import promote

from .conftest import MlflowStore


@pytest.fixture(scope="module")
def logged(mlflow_store: MlflowStore, tiny_classifier_dir: Path) -> tuple[str, str]:
    """The tiny classifier logged once, by a run with a metric and a data version param; (URI, run id)."""
    with mlflow.start_run(experiment_id=mlflow_store.experiment_id) as run:
        mlflow.log_metric("test_macro_f1", 0.42)
        mlflow.log_param("dataset_version", "ds-run")
        uri = log_model(tiny_classifier_dir, max_length=32)
    return uri, run.info.run_id


def register(uri: str, name: str, tags: dict[str, str] | None = None) -> None:
    register_model(uri, name, tags=tags)


def test_list_versions(logged: tuple[str, str]) -> None:
    register(logged[0], "listed")
    register(logged[0], "listed", tags={"loopline.dataset_version": "ds-2", GATE_TAG: "passed"})
    promote("listed", 2)
    versions = list_versions("listed")
    assert [v.version for v in versions] == ["1", "2"]
    assert versions[0].aliases == [] and versions[1].aliases == ["production"]
    assert versions[0].data_version == "ds-run"  # from the training run's params
    assert versions[1].data_version == "ds-2"  # a version tag wins
    assert versions[1].tags[GATE_TAG] == "passed"
    assert versions[0].metrics == {"test_macro_f1": 0.42}
    assert versions[0].created.endswith("+00:00") and versions[0].status == "READY"
    json.dumps([v.to_dict() for v in versions])


def test_find_version_by_tag(logged: tuple[str, str]) -> None:
    register(logged[0], "keyed", tags={"loopline.train_key": "abc"})
    register(logged[0], "keyed", tags={"loopline.train_key": "def"})
    assert find_version_by_tag("keyed", "loopline.train_key", "def") == "2"
    assert find_version_by_tag("keyed", "loopline.train_key", "nope") is None
    assert find_version_by_tag("keyed", "loopline.retrain_key", "abc") is None
