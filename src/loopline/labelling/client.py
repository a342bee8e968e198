"""A small Label Studio REST client (httpx): the handful of calls the labelling loop makes.

Not ``label-studio-sdk``: installing it into loopline's environment would downgrade numpy (2.4 → 2.2, its
opencv-python-headless pin) and bring code generators (black, datamodel-code-generator) and nltk for
seven endpoints. Every failure is a :class:`LabelStudioError` that says what, where and what to do.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import httpx

from loopline.config import LabelStudioConfig
from loopline.errors import ConfigError, StoreError

logger = logging.getLogger(__name__)

URL_ENV, TOKEN_ENV = "LOOPLINE_LABEL_STUDIO__URL", "LOOPLINE_LABEL_STUDIO__TOKEN"
IMPORT_POLL_S, IMPORT_WAIT_S = 0.5, 300.0


class LabelStudioError(StoreError):
    """Label Studio cannot be reached, refused loopline's token, or refused a request."""


@dataclass(frozen=True)
class Project:
    id: int
    title: str
    label_config: str


class LabelStudioClient:
    """One authenticated session with a Label Studio server. Use as a context manager."""

    def __init__(self, url: str, token: str, timeout_s: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=timeout_s)
        self._http.headers["Authorization"] = self._authorization(token)

    @classmethod
    def from_settings(cls, cfg: LabelStudioConfig) -> LabelStudioClient:
        """A client for the configured server, checked: the server answers and takes the token."""
        if not cfg.url:
            raise ConfigError(
                "No Label Studio URL is set",
                where=f"label_studio.url ({URL_ENV} or [label_studio] url in loopline.toml)",
                hint="Set it to the server's address, e.g. http://127.0.0.1:8080.",
            )
        if cfg.token is None or not cfg.token.get_secret_value().strip():
            raise ConfigError(
                "No Label Studio API token is set",
                where=f"label_studio.token ({TOKEN_ENV})",
                hint="Copy the token from Label Studio's Account & Settings page into the variable.",
            )
        client = cls(cfg.url, cfg.token.get_secret_value().strip(), cfg.timeout_seconds)
        try:
            user = client.request("GET", "/api/current-user/whoami")
        except BaseException:
            client.close()
            raise
        logger.info("Label Studio at %s, acting as %s", client.url, user.get("email") or user.get("id"))
        return client

    def __enter__(self) -> LabelStudioClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # ---- projects ------------------------------------------------------------------------------

    def find_project(self, title: str) -> Project | None:
        """The project with exactly this title (the API filters by substring), or None."""
        page = 1
        while True:
            found = self.request(
                "GET", "/api/projects/", params={"title": title, "page": page, "page_size": 100}
            )
            for item in found.get("results", []):
                if item.get("title") == title:
                    return _project(item)
            if not found.get("next"):
                return None
            page += 1

    def create_project(self, title: str, label_config: str) -> Project:
        return _project(
            self.request("POST", "/api/projects/", json={"title": title, "label_config": label_config})
        )

    def set_label_config(self, project_id: int, label_config: str) -> Project:
        body = {"label_config": label_config}
        return _project(self.request("PATCH", f"/api/projects/{project_id}/", json=body))

    # ---- tasks and annotations -----------------------------------------------------------------

    def import_tasks(self, project_id: int, tasks: list[dict[str, Any]]) -> int:
        """Create tasks (with their predictions); how many the server made. Waits for an asynchronous
        import (Label Studio Enterprise) to finish."""
        if not tasks:
            return 0
        answer = self.request("POST", f"/api/projects/{project_id}/import", json=tasks)
        if "import" not in answer:  # Community: imported in the request
            return int(answer.get("task_count", 0))
        return self._wait_for_import(project_id, int(answer["import"]))

    def _wait_for_import(self, project_id: int, import_id: int) -> int:
        deadline = time.monotonic() + IMPORT_WAIT_S
        while time.monotonic() < deadline:
            state = self.request("GET", f"/api/projects/{project_id}/imports/{import_id}/")
            if state.get("status") == "completed":
                return int(state.get("task_count", 0))
            if state.get("status") == "failed":
                raise LabelStudioError(
                    f"Label Studio failed to import the tasks: {state.get('error') or 'no reason given'}",
                    where=f"{self.url}, project {project_id}, import {import_id}",
                )
            time.sleep(IMPORT_POLL_S)
        raise LabelStudioError(
            f"Label Studio did not finish importing the tasks within {IMPORT_WAIT_S:.0f} s",
            where=f"{self.url}, project {project_id}, import {import_id}",
            hint="Check the server's workers; the next push skips tasks that arrived meanwhile.",
        )

    def export_tasks(self, project_id: int, *, all_tasks: bool) -> list[dict[str, Any]]:
        """The project's tasks with their annotations (``all_tasks``: unlabelled ones too)."""
        params = {"exportType": "JSON", "download_all_tasks": "true" if all_tasks else "false"}
        tasks = self.request("GET", f"/api/projects/{project_id}/export", params=params)
        if not isinstance(tasks, list):
            raise LabelStudioError(
                "Label Studio's export is not a list of tasks", where=f"project {project_id}"
            )
        return tasks

    def annotation(self, annotation_id: int) -> dict[str, Any]:
        return dict(self.request("GET", f"/api/annotations/{annotation_id}/"))

    def task(self, task_id: int) -> dict[str, Any]:
        return dict(self.request("GET", f"/api/tasks/{task_id}/"))

    # ---- transport -----------------------------------------------------------------------------

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """One API call → its JSON; every failure as a LabelStudioError naming the call."""
        where = f"{method} {self.url}{path}"
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise LabelStudioError(
                "Label Studio did not answer in time",
                where=where,
                hint="Check that the server is up, or raise label_studio.timeout_seconds.",
            ) from None
        except httpx.HTTPError as err:
            raise LabelStudioError(
                f"Cannot reach Label Studio: {err}",
                where=where,
                hint=f"Start the server or fix the address ({URL_ENV}).",
            ) from None
        if response.status_code in (401, 403):
            raise ConfigError(
                f"Label Studio refused loopline's API token ({response.status_code}: {_detail(response)})",
                where=f"{where}, token from {TOKEN_ENV}",
                hint="Use the token of Account & Settings; a legacy token needs legacy tokens enabled for "
                "the organization (Organization → API Tokens Settings), off by default since 1.17.",
            )
        if response.status_code >= 400:
            raise LabelStudioError(
                f"Label Studio answered {response.status_code}: {_detail(response)}", where=where
            )
        try:
            return response.json() if response.content else {}
        except ValueError:
            raise LabelStudioError(
                "Label Studio answered with something that is not JSON",
                where=where,
                hint=f"Check that {URL_ENV} is Label Studio's address (not a proxy's login page).",
            ) from None

    def _authorization(self, token: str) -> str:
        """``Token`` for a legacy token; a personal access token (a JWT refresh token) is exchanged for an
        access token, as Label Studio's own SDK does."""
        if token.count(".") != 2:
            return f"Token {token}"
        answer = self.request("POST", "/api/token/refresh/", json={"refresh": token})
        return f"Bearer {answer['access']}"


def _project(item: dict[str, Any]) -> Project:
    return Project(int(item["id"]), str(item.get("title", "")), str(item.get("label_config", "")))


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or response.reason_phrase
    if isinstance(body, dict):
        return str(body.get("detail") or body.get("validation_errors") or body)[:300]
    return str(body)[:300]
