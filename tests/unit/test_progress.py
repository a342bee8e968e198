"""Progress bars only on a terminal of a CLI process; everything else gets the loop unchanged."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from loopline import progress


@pytest.fixture()
def terminal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Callable[[], str]]:
    """stderr taken for a terminal, no CI variables, progress enabled as the CLI does; yields a reader of
    what was drawn on stderr."""
    monkeypatch.setattr(progress, "_stderr_is_terminal", lambda: True)
    for name in (
        "CI",
        "GITHUB_ACTIONS",
        "GITLAB_CI",
        "BUILDKITE",
        "JENKINS_URL",
        "TF_BUILD",
        "LOOPLINE_NO_PROGRESS",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    progress.enable_progress()
    try:
        yield lambda: capsys.readouterr().err
    finally:
        progress.enable_progress(False)


def test_off_by_default_and_in_pipes() -> None:
    assert not progress.progress_shown()  # a library caller never enabled it
    progress.enable_progress()
    try:
        assert not progress.progress_shown()  # pytest's stderr is no terminal
    finally:
        progress.enable_progress(False)


def test_a_terminal_shows_a_bar_and_every_item_comes_through(terminal: Callable[[], str]) -> None:
    assert progress.progress_shown()
    assert list(progress.tracked(range(5), "Counting")) == [0, 1, 2, 3, 4]
    assert "Counting" in terminal()


def test_ci_and_opt_out_variables_turn_it_off(
    terminal: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")
    assert not progress.progress_shown()
    monkeypatch.delenv("CI")
    monkeypatch.setenv("LOOPLINE_NO_PROGRESS", "1")
    assert not progress.progress_shown()


def test_a_second_bar_while_one_is_live_runs_without_one(terminal: Callable[[], str]) -> None:
    seen = []
    for outer in progress.tracked(range(3), "Outer"):
        seen.append([outer, list(progress.tracked(range(2), "Inner"))])
    assert seen == [[0, [0, 1]], [1, [0, 1]], [2, [0, 1]]]
    assert "Inner" not in terminal()


def test_a_single_step_draws_nothing(terminal: Callable[[], str]) -> None:
    assert list(progress.tracked(["only"], "One")) == ["only"]
    assert terminal() == ""
