"""Label Studio settings: from the environment like every setting, checked, and the token kept secret."""

from __future__ import annotations

import pytest

from loopline.cli import _overrides
from loopline.config import load_settings
from loopline.errors import ConfigError
from loopline.labelling.client import LabelStudioClient


def test_url_token_and_project_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPLINE_LABEL_STUDIO__URL", "http://label-studio.internal:8080/")
    monkeypatch.setenv("LOOPLINE_LABEL_STUDIO__TOKEN", "s3cret-token")
    monkeypatch.setenv("LOOPLINE_LABEL_STUDIO__PROJECT", "support intents")
    cfg = load_settings().label_studio

    assert cfg.url == "http://label-studio.internal:8080"
    assert cfg.token is not None and cfg.token.get_secret_value() == "s3cret-token"
    assert cfg.project == "support intents"
    assert "s3cret" not in repr(cfg) and "s3cret" not in str(_overrides(load_settings()))


def test_a_url_that_is_not_one_is_refused_with_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPLINE_LABEL_STUDIO__URL", "label-studio:8080")
    with pytest.raises(ConfigError, match=r"label_studio\.url") as caught:
        load_settings()
    assert "LOOPLINE_LABEL_STUDIO__URL" in str(caught.value)


def test_a_mistyped_variable_is_refused_with_the_right_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPLINE_LABEL_STUDIO_URL", "http://127.0.0.1:8080")
    with pytest.raises(ConfigError, match="LOOPLINE_LABEL_STUDIO__URL"):
        load_settings()


def test_no_url_or_no_token_is_refused_before_any_request() -> None:
    with pytest.raises(ConfigError, match="No Label Studio URL") as no_url:
        LabelStudioClient.from_settings(load_settings().label_studio)
    assert "LOOPLINE_LABEL_STUDIO__URL" in str(no_url.value)
    cfg = load_settings(label_studio={"url": "http://127.0.0.1:9"}).label_studio
    with pytest.raises(ConfigError, match="No Label Studio API token") as no_token:
        LabelStudioClient.from_settings(cfg)
    assert "LOOPLINE_LABEL_STUDIO__TOKEN" in str(no_token.value)
