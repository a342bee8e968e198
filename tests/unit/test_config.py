from __future__ import annotations

from pathlib import Path

import pytest

from loopline.config import load_settings
from loopline.errors import ConfigError


def test_defaults_are_the_embedded_setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.resolved_tracking_uri == f"sqlite:///{tmp_path / '.loopline' / 'mlflow.db'}"
    assert settings.resolved_feedback_db_url.startswith("sqlite:///")
    assert Path(settings.resolved_base_model, "config.json").is_file()  # the packaged MiniLM


def test_precedence_overrides_over_env_over_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "loopline.toml"
    config.write_text('model_name = "from-file"\n[training]\nepochs = 9\nbatch_size = 8\n')
    monkeypatch.setenv("LOOPLINE_TRAINING__EPOCHS", "7")

    settings = load_settings(config, training={"learning_rate": 3e-5, "seed": None})

    assert settings.model_name == "from-file"
    assert settings.training.epochs == 7  # env beats file
    assert settings.training.batch_size == 8  # file kept where nothing overrides it
    assert settings.training.learning_rate == 3e-5  # explicit override
    assert settings.training.seed == 13  # None means "not given"


def test_invalid_values_are_refused_with_the_field_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="epochs"):
        load_settings(training={"epochs": 0})
    with pytest.raises(ConfigError, match="unknown_key"):
        load_settings(unknown_key=1)


def test_a_check_across_a_section_names_where_each_of_its_values_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LOOPLINE_TRAINING__NNODES", "2")  # needs rdzv_endpoint: a check on the section
    with pytest.raises(ConfigError, match="rdzv_endpoint") as caught:
        load_settings(training={"epochs": 1})
    where = caught.value.where or ""
    assert "environment variable LOOPLINE_TRAINING__NNODES" in where
    assert "command-line option for training.epochs" in where
    assert "command-line option for training;" not in where + ";"  # not the whole section blamed on a flag


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml"):
        load_settings(tmp_path / "nope.toml")
