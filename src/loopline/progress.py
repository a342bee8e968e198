"""Progress bars on a person's terminal: training epochs, embedding, feedback import, batch scoring.

Off unless the command line turned them on (``enable_progress``) and stderr is a terminal: logs, pipes,
CI and library callers (the service, tests, a worker) see nothing but their log lines. One bar at a
time: a loop that starts while another bar is live (the demo's in-process service embedding a request
during a training) runs without one instead of failing.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sized
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")

_state = {"enabled": False}
_one_bar = threading.Lock()
# CI runners often give the job a pseudo-terminal; these say it is a log all the same.
_CI_VARIABLES = ("CI", "GITHUB_ACTIONS", "GITLAB_CI", "BUILDKITE", "JENKINS_URL", "TF_BUILD")


def enable_progress(enabled: bool = True) -> None:
    """Let loops of this process draw bars when stderr is a terminal (the CLI's entry point calls it)."""
    _state["enabled"] = enabled


def progress_shown() -> bool:
    """Whether a bar would be drawn now: enabled, stderr a terminal, not CI, not ``LOOPLINE_NO_PROGRESS``."""
    if not _state["enabled"] or os.environ.get("LOOPLINE_NO_PROGRESS"):
        return False
    if any(os.environ.get(name) for name in _CI_VARIABLES) or os.environ.get("TERM") == "dumb":
        return False
    return _stderr_is_terminal()


def _stderr_is_terminal() -> bool:
    return sys.stderr.isatty()


@contextmanager
def progress_bar(description: str, total: int, *, min_total: int = 2) -> Iterator[Callable[[int], None]]:
    """``with progress_bar("Scoring", n) as advance: ... advance(k)``; ``advance`` does nothing when no
    bar is shown (not a terminal, fewer than ``min_total`` steps, another bar live). The bar is
    transient: it leaves no line behind, the log lines say what happened."""
    if total < min_total or not progress_shown() or not _one_bar.acquire(blocking=False):
        yield lambda _steps: None
        return
    try:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
        )
        with Progress(
            *columns, console=Console(stderr=True, force_terminal=True), transient=True
        ) as progress:
            task = progress.add_task(description, total=total)
            yield lambda steps: progress.advance(task, steps)
    finally:
        _one_bar.release()


def tracked(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """``items`` one by one, advancing a bar of ``total`` steps (``len(items)`` by default)."""
    count = total if total is not None else len(items) if isinstance(items, Sized) else 0
    with progress_bar(description, count) as advance:
        for item in items:
            yield item
            advance(1)
