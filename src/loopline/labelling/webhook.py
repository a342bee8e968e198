"""``POST /label-studio/webhook``: Label Studio tells loopline an annotation was made or changed, and that
annotation comes in as `loopline label pull` would bring it (same links, same feedback contract).

The payload only names the annotations: each is read back from Label Studio with loopline's token, so a
forged call can at most make loopline fetch real annotations. Events are handled one at a time (a lock),
so two deliveries of one annotation import it once; one that fails is logged, and the next `loopline
label pull` brings its annotation in. Label Studio refuses webhook URLs on private addresses unless its
SSRF_PROTECTION_ENABLED is false (or the receiver's network is allowed).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from fastapi import BackgroundTasks, Body, FastAPI, HTTPException

from loopline.config import Settings
from loopline.errors import LooplineError
from loopline.labelling.client import LabelStudioClient
from loopline.labelling.loop import pull_annotation_ids
from loopline.pipeline.champion import champion_labels

logger = logging.getLogger(__name__)

ANNOTATION_EVENTS = ("ANNOTATION_CREATED", "ANNOTATIONS_CREATED", "ANNOTATION_UPDATED")


def create_webhook_app(settings: Settings) -> FastAPI:
    """The receiver for the configured project; checks the server, token and project at start."""
    from loopline.labelling.loop import _existing_project

    with LabelStudioClient.from_settings(settings.label_studio) as client:
        project = _existing_project(client, settings)
    app = FastAPI(title="loopline Label Studio webhook", docs_url=None, redoc_url=None)
    lock = threading.Lock()

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    def pull(action: str, ids: list[int]) -> None:
        try:
            with lock, LabelStudioClient.from_settings(settings.label_studio) as client:
                pulled = pull_annotation_ids(settings, client, project, ids, champion_labels(settings))
        except LooplineError as err:  # the next `loopline label pull` brings it in
            logger.error("Webhook %s for annotation(s) %s failed: %s", action, ids, err)
            return
        intake = pulled.intake
        logger.info(
            "Webhook %s for annotation(s) %s: %d new, %d already imported, %d superseded%s",
            action,
            ids,
            pulled.new,
            pulled.already_imported,
            pulled.superseded_rows,
            f"; batch {intake.batch_id} {intake.batch_status}" if intake else "",
        )

    @app.post("/label-studio/webhook", status_code=202)
    def webhook(background: BackgroundTasks, payload: dict[str, Any] = Body(...)) -> dict[str, Any]:
        """Answers at once and imports after: Label Studio waits a second (WEBHOOK_TIMEOUT) for an answer,
        and reading the annotation back, the champion's labels and the contract take longer."""
        action = str(payload.get("action"))
        project_id = (payload.get("project") or {}).get("id")
        if action not in ANNOTATION_EVENTS or project_id not in (None, project.id):
            return {"action": action, "ignored": True}
        ids = _annotation_ids(payload.get("annotation"))
        background.add_task(pull, action, ids)
        return {"action": action, "annotations": ids, "ignored": False}

    return app


def _annotation_ids(value: Any) -> list[int]:
    """The annotation ids of a payload: one annotation object, or a list of them (ANNOTATIONS_CREATED)."""
    items = value if isinstance(value, list) else [value]
    ids = []
    for item in items:
        if not isinstance(item, dict) or not str(item.get("id", "")).isdigit():
            raise HTTPException(status_code=422, detail="the payload's 'annotation' has no integer id")
        ids.append(int(item["id"]))
    return ids
