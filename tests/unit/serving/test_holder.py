"""The service follows the production alias: it swaps when the alias moves and keeps the old version when
the new one fails."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
from tests.conftest import MlflowStore

from loopline.config import load_settings
from loopline.inference import Classifier
from loopline.pipeline.canary import run_canary
from loopline.registry.integrity import MANIFEST_TAG, manifest_tag
from loopline.registry.packaging import log_model, register_model
from loopline.registry.promotion import promote
from loopline.serving.holder import ModelHolder


@pytest.fixture(scope="module")
def versions(mlflow_store: MlflowStore, tiny_classifier_dir: Path) -> str:
    """A registered model 'followed' with two versions, v1 in production."""
    with mlflow.start_run(experiment_id=mlflow_store.experiment_id):
        uri = log_model(tiny_classifier_dir, max_length=32)
    for _ in range(2):
        register_model(uri, "followed", tags={MANIFEST_TAG: manifest_tag(tiny_classifier_dir)})
    promote("followed", 1)
    return "followed"


def test_the_holder_swaps_when_the_alias_moves_and_keeps_the_old_version_on_failure(
    versions: str, tmp_path: Path
) -> None:
    settings = load_settings(home=tmp_path / "home", model_name=versions)
    failing: set[str] = set()

    def canary(classifier: Classifier) -> None:
        if holder_version[0] in failing:
            raise RuntimeError("canary: too slow")
        run_canary(classifier)

    holder_version = ["1"]
    holder = ModelHolder(settings, canary=canary)
    assert holder.refresh() and holder.current is not None and holder.current.version == "1"
    assert not holder.refresh()  # nothing moved

    promote(versions, 2)
    holder_version[0] = "2"
    failing.add("2")
    assert not holder.refresh()
    assert holder.current.version == "1" and "v2 was not served" in (holder.status.last_error or "")
    assert not holder.refresh()  # a failed version is not retried until the alias moves again

    promote(versions, 1)  # back to v1 (already served): nothing to do, the error is history
    assert not holder.refresh() and holder.current.version == "1"
    failing.clear()
    promote(versions, 2)
    assert holder.refresh() and holder.current.version == "2" and holder.status.swaps == 2


def test_the_canary_refuses_a_model_that_does_not_answer_with_probabilities(
    tiny_classifier_dir: Path,
) -> None:
    from loopline.inference import load_classifier

    classifier = load_classifier(tiny_classifier_dir, device="cpu", max_length=32)
    run_canary(classifier)
    for parameter in classifier.model.parameters():
        parameter.data.fill_(float("nan"))
    with pytest.raises(RuntimeError, match="does not return probabilities"):
        run_canary(classifier)
