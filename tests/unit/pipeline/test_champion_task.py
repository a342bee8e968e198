"""One model line, one task: a model folder of another task than the settings' is refused, both ways round,
with a message naming both tasks (the CLI's cases are in tests/cli/test_bad_inputs_token.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from loopline.config import load_settings
from loopline.errors import LooplineError
from loopline.pipeline.champion import Champion, require_model_task, require_task


@pytest.fixture(scope="module")
def tiny_tagger_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A config-only token classifier folder: the task is read from its architectures."""
    from transformers import BertConfig

    out = tmp_path_factory.mktemp("tiny-tagger")
    BertConfig(architectures=["BertForTokenClassification"]).save_pretrained(out)
    return out


@pytest.mark.parametrize(
    ("task", "model", "found"), [("token", "sequence", "sequence"), ("sequence", "token", "token")]
)
def test_another_tasks_model_is_refused_both_ways(
    task: str, model: str, found: str, tmp_path: Path, tiny_classifier_dir: Path, tiny_tagger_dir: Path
) -> None:
    settings = load_settings(home=tmp_path / "home", task=task)
    model_dir = tiny_classifier_dir if model == "sequence" else tiny_tagger_dir
    with pytest.raises(LooplineError) as err:
        require_task(settings, Champion("3", model_dir, {}))
    message = str(err.value)
    assert f"v3 (production) is a {found} classifier, but the task is {task}" in message
    assert f"--task {found}" in message and err.value.where == f"{settings.model_name}@production"
    with pytest.raises(LooplineError, match=f"v3 is a {found} classifier") as err:
        require_model_task(settings, model_dir, "3")
    assert err.value.where == f"models:/{settings.model_name}/3"
    require_model_task(load_settings(home=tmp_path / "home", task=found), model_dir, "3")  # same task: fine
    require_task(settings, None)  # no champion yet: nothing to mix with
