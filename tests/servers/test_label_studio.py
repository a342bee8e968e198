"""The Label Studio loop against a real Label Studio server: `loopline label push`, annotations made
through Label Studio's API, `loopline label pull` (twice, and after a re-annotation), the webhook
receiver, and bad settings — every loopline command as its own process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from loopline.config import Settings, load_settings
from loopline.data.demo import generate_demo_dataset
from loopline.feedback import FeedbackStore, PredictionRecord
from loopline.labelling.client import LabelStudioClient
from loopline.labelling.loop import pull_project, push_for_labelling
from tests.processes import TELEMETRY_OFF, free_port, http_ok
from tests.servers.label_studio import START_TIMEOUT_S, LabelStudio, launch_label_studio, unavailable_reason
from tests.tiny_settings import TINY_TRAINING_AND_GATE

pytestmark = [
    pytest.mark.servers,
    pytest.mark.skipif(unavailable_reason() is not None, reason=str(unavailable_reason())),
]

LOOPLINE = str(Path(sys.executable).parent / "loopline")
PROJECT = "loopline-servers-test"
FLAGGED = 20
TINY_TOML = 'base_model = "{base_model}"\n' + TINY_TRAINING_AND_GATE


@dataclass(frozen=True)
class Project:
    """A folder with loopline.toml and a trained home (v1 in production), and how to run loopline in it."""

    root: Path
    user_home: Path
    prefect_api: str

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        """``loopline ARGS`` in the project folder; stderr with its lines joined (Rich wraps long ones)."""
        keep = {k: v for k, v in os.environ.items() if not k.startswith(("LOOPLINE_", "MLFLOW_", "PREFECT_"))}
        full = {**keep, **TELEMETRY_OFF, "HOME": str(self.user_home), "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
        full.update(PREFECT_API_URL=self.prefect_api, PREFECT_HOME=str(self.user_home / ".prefect"), **env)
        done = subprocess.run(
            [LOOPLINE, *args], cwd=self.root, env=full, capture_output=True, text=True, timeout=600
        )
        return subprocess.CompletedProcess(
            done.args, done.returncode, done.stdout, " ".join(done.stderr.split())
        )

    def ok(self, *args: str, **env: str) -> str:
        """The command's output, its lines joined (Rich wraps long ones)."""
        started = time.monotonic()
        done = self.run(*args, **env)
        output = done.stdout + done.stderr
        assert done.returncode == 0 and "Traceback" not in output, (
            f"loopline {args} → {done.returncode}\n{output}"
        )
        print(f"[label studio] loopline {' '.join(args)}: {time.monotonic() - started:.1f} s")
        return " ".join(output.split())

    @property
    def feedback_url(self) -> str:
        return f"sqlite:///{self.root / '.loopline' / 'feedback.db'}"


@pytest.fixture(scope="module")
def label_studio_launched(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabelStudio]:
    server = launch_label_studio(tmp_path_factory.mktemp("label-studio"))
    try:
        yield server
    finally:
        server.process.stop()


@pytest.fixture(scope="module")
def project(
    label_studio_launched: LabelStudio,  # booting while the model trains
    prefect_server: str,
    tiny_model_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Project:
    root = tmp_path_factory.mktemp("label-project")
    generate_demo_dataset(300, seed=5).to_csv(root / "data.csv", index=False)
    (root / "loopline.toml").write_text(TINY_TOML.format(base_model=tiny_model_dir))
    made = Project(root, tmp_path_factory.mktemp("label-user"), prefect_server)
    made.ok("train", "--data", "data.csv")
    return made


@pytest.fixture(scope="module")
def label_studio(label_studio_launched: LabelStudio, project: Project) -> LabelStudio:
    started = time.monotonic()
    process = label_studio_launched.process  # it booted beside the training, which took what it took
    process.wait_healthy(time.monotonic() - process.started_at + START_TIMEOUT_S)
    print(f"[servers] label studio waited for {time.monotonic() - started:.1f} s after training")
    return label_studio_launched


@pytest.fixture(scope="module")
def api(label_studio: LabelStudio) -> Iterator[httpx.Client]:
    """Label Studio's REST API as an annotator uses it."""
    with httpx.Client(
        base_url=label_studio.url, headers={"Authorization": f"Token {label_studio.token}"}, timeout=30
    ) as client:
        yield client


@contextmanager
def in_process(
    project: Project, server: LabelStudio
) -> Iterator[tuple[Settings, LabelStudioClient, FeedbackStore]]:
    """The project's settings, a checked client and its feedback store, as the commands open them (less
    the registry: tests pass the model's labels, which the commands read from the champion)."""
    settings = load_settings(
        project.root / "loopline.toml",
        home=project.root / ".loopline",
        label_studio={"url": server.url, "token": server.token, "project": PROJECT},
    )
    with (
        LabelStudioClient.from_settings(settings.label_studio) as client,
        FeedbackStore(settings.resolved_feedback_db_url) as store,
    ):
        yield settings, client, store


def ls_env(server: LabelStudio, **extra: str) -> dict[str, str]:
    return {
        "LOOPLINE_LABEL_STUDIO__URL": server.url,
        "LOOPLINE_LABEL_STUDIO__TOKEN": server.token,
        "LOOPLINE_LABEL_STUDIO__PROJECT": PROJECT,
        **extra,
    }


def log_flagged_predictions(project: Project, labels: list[str]) -> list[str]:
    """Predictions as the service logs them (the store API its prediction log writes through): FLAGGED
    flagged ones, and a few confident ones that must not be sent for labelling."""
    texts = generate_demo_dataset(60, seed=11)["text"].drop_duplicates().tolist()
    records = [
        PredictionRecord(
            text=text,
            predicted_label=labels[i % len(labels)],
            confidence=0.2 + i / 100,
            model_version="1",
            top_k=((labels[i % len(labels)], 0.2 + i / 100), (labels[(i + 1) % len(labels)], 0.19)),
            flagged=i < FLAGGED,
        )
        for i, text in enumerate(texts[: FLAGGED + 5])
    ]
    with FeedbackStore(project.feedback_url) as store:
        store.log_predictions(records)
    return [r.id for r in records if r.flagged]


def export(api: httpx.Client, project_id: int) -> list[dict[str, Any]]:
    response = api.get(
        f"/api/projects/{project_id}/export", params={"exportType": "JSON", "download_all_tasks": "true"}
    )
    response.raise_for_status()
    return list(response.json())


def project_id(api: httpx.Client) -> int:
    found = [
        p
        for p in api.get("/api/projects/", params={"title": PROJECT}).json()["results"]
        if p["title"] == PROJECT
    ]
    assert len(found) == 1, found
    return int(found[0]["id"])


def choice(label: str) -> list[dict[str, Any]]:
    return [{"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [label]}}]


def label_studio_rows(project: Project) -> Any:
    with FeedbackStore(project.feedback_url) as store:
        rows = store.feedback_since(None)
    return rows[rows["user"].fillna("").str.startswith("label-studio:")]


def test_push_annotate_pull_twice_then_reannotate(
    project: Project, label_studio: LabelStudio, api: httpx.Client
) -> None:
    labels = sorted(generate_demo_dataset(300, seed=5)["label"].unique())
    flagged = log_flagged_predictions(project, labels)
    started = time.monotonic()

    out = project.ok("label", "push", **ls_env(label_studio))
    assert f"Pushed {FLAGGED} flagged prediction(s)" in out and "created" in out, out
    with in_process(project, label_studio) as (settings, client, store):  # what the command calls
        again = push_for_labelling(settings, store, client, labels, limit=1000)
    assert (again.pushed, again.already_in_project, again.created_project) == (0, FLAGGED, False)

    pid = project_id(api)
    config = api.get(f"/api/projects/{pid}/").json()["label_config"]
    assert all(f'<Choice value="{label}"/>' in config for label in labels), config
    tasks = export(api, pid)
    assert sorted(t["data"]["loopline_prediction_id"] for t in tasks) == sorted(flagged)
    with FeedbackStore(project.feedback_url) as store:
        logged = store.predictions_since(None).set_index("id")
    for task in tasks:
        [prediction] = api.get(f"/api/tasks/{task['id']}/").json()["predictions"]
        row = logged.loc[task["data"]["loopline_prediction_id"]]
        assert prediction["model_version"] == "1" and prediction["score"] == pytest.approx(row["confidence"])
        assert prediction["result"] == choice(row["predicted_label"])
        assert task["data"]["text"] == row["text"]

    given = {}  # prediction id → the label the annotator chose (every label twice: no flood)
    for i, task in enumerate(sorted(tasks, key=lambda t: t["id"])):
        label = labels[(i + 3) % len(labels)]
        response = api.post(f"/api/tasks/{task['id']}/annotations/", json={"result": choice(label)})
        assert response.status_code == 201, response.text
        given[task["data"]["loopline_prediction_id"]] = label

    first = project.ok("label", "pull", **ls_env(label_studio))
    assert f"{FLAGGED} new annotation(s), 0 already imported" in first and f"{FLAGGED} accepted" in first, (
        first
    )
    second = project.ok("label", "pull", **ls_env(label_studio))
    assert f"0 new annotation(s), {FLAGGED} already imported" in second, second

    rows = label_studio_rows(project)
    assert len(rows) == FLAGGED and set(rows["status"]) == {"accepted"}, rows
    assert rows["batch_id"].nunique() == 1
    assert dict(zip(rows["prediction_id"], rows["label"], strict=True)) == given

    # An annotator changes their mind: the new label replaces the first one (which no model used yet).
    task = sorted(tasks, key=lambda t: t["id"])[0]
    [annotation] = api.get(f"/api/tasks/{task['id']}/annotations/").json()
    changed = next(label for label in labels if label != given[task["data"]["loopline_prediction_id"]])
    api.patch(f"/api/annotations/{annotation['id']}/", json={"result": choice(changed)}).raise_for_status()
    with in_process(project, label_studio) as (settings, client, _):
        third = pull_project(settings, client, labels)
    assert (third.new, third.already_imported, third.relabelled, third.superseded_rows) == (
        1,
        FLAGGED - 1,
        1,
        1,
    )
    assert third.intake is not None and third.intake.accepted == 1
    rows = label_studio_rows(project).set_index("id")
    mine = rows[rows["prediction_id"] == task["data"]["loopline_prediction_id"]]
    assert sorted(mine["status"]) == ["accepted", "quarantined"], mine
    assert mine.loc[mine["status"] == "accepted", "label"].item() == changed
    assert "superseded" in mine.loc[mine["status"] == "quarantined", "reason"].item()
    assert (rows["status"] == "accepted").sum() == FLAGGED
    elapsed = time.monotonic() - started
    print(f"[label studio] push, pull ×2 (processes), push, pull (in process): {elapsed:.1f} s")


def test_webhook_imports_an_annotation_when_label_studio_calls(
    project: Project, label_studio: LabelStudio, api: httpx.Client, tmp_path: Path
) -> None:
    labels = sorted(generate_demo_dataset(300, seed=5)["label"].unique())
    if not api.get("/api/projects/", params={"title": PROJECT}).json()["results"]:  # run alone
        log_flagged_predictions(project, labels)
        project.ok("label", "push", **ls_env(label_studio))
    pid = project_id(api)
    port, log = free_port(), tmp_path / "webhook.log"
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("LOOPLINE_", "MLFLOW_", "PREFECT_"))}
    env = {
        **keep,
        **TELEMETRY_OFF,
        "HOME": str(project.user_home),
        "HF_HUB_OFFLINE": "1",
        **ls_env(label_studio),
    }
    with log.open("wb") as out:
        receiver = subprocess.Popen(
            [LOOPLINE, "label", "webhook", "--port", str(port)],
            cwd=project.root,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120
        while not http_ok(f"http://127.0.0.1:{port}/health"):
            assert receiver.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.3)
        hook = {
            "project": pid,
            "url": f"http://127.0.0.1:{port}/label-studio/webhook",
            "send_payload": True,
            "send_for_all_actions": False,
            "actions": ["ANNOTATION_CREATED", "ANNOTATION_UPDATED"],
        }
        api.post("/api/webhooks/", json=hook).raise_for_status()
        text = "my parcel went to the wrong town, who do I call"
        created = api.post(
            f"/api/projects/{pid}/import", json=[{"data": {"text": text}}], params={"return_task_ids": "true"}
        )
        created.raise_for_status()
        [task_id] = created.json()["task_ids"]
        response = api.post(f"/api/tasks/{task_id}/annotations/", json={"result": choice(labels[0])})
        assert response.status_code == 201, response.text

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # imported, then reviewed by the contract
            rows = label_studio_rows(project)
            if (rows.loc[rows["text"] == text, "status"] != "pending").any():
                break
            time.sleep(0.5)
        mine = rows[rows["text"] == text]
        assert len(mine) == 1 and mine["label"].item() == labels[0], log.read_text()[-3000:]
        assert mine["status"].item() == "accepted" and mine["prediction_id"].isna().all(), mine
    finally:
        receiver.terminate()
        receiver.wait(timeout=20)


def test_bad_label_studio_settings_exit_2_with_what_and_where(
    project: Project, label_studio: LabelStudio
) -> None:
    no_url = project.run("label", "push")
    assert no_url.returncode == 2 and "No Label Studio URL" in no_url.stderr, no_url.stderr
    assert "LOOPLINE_LABEL_STUDIO__URL" in no_url.stderr and "Traceback" not in no_url.stderr

    down = f"http://127.0.0.1:{free_port()}"
    unreachable = project.run("label", "pull", **ls_env(label_studio, LOOPLINE_LABEL_STUDIO__URL=down))
    assert unreachable.returncode == 2 and "Cannot reach Label Studio" in unreachable.stderr, (
        unreachable.stderr
    )
    assert down in unreachable.stderr

    refused = project.run(
        "label", "push", **ls_env(label_studio, LOOPLINE_LABEL_STUDIO__TOKEN="not-the-token")
    )
    assert refused.returncode == 2 and "refused loopline's API token" in refused.stderr, refused.stderr
    assert "LOOPLINE_LABEL_STUDIO__TOKEN" in refused.stderr and "not-the-token" not in refused.stderr
