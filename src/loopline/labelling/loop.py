"""The labelling loop: push predictions worth a person's label to Label Studio, pull the annotations back.

Push sends the served predictions flagged for labelling (abstained or low margin) that nobody labelled
yet; while no prediction was ever flagged (batch scoring flags none: before a service answers) it sends
the least confident unlabelled predictions instead. Each becomes a task with its text and prediction id,
and the prediction as a pre-annotation; a prediction already in the project is not sent again.

Pull turns completed annotations into one feedback batch, imported and reviewed by the feedback
contract as any feedback file is (:func:`loopline.pipeline.feedback.intake_feedback_rows`). Idempotent
by annotation id: an annotation comes in once; when it is edited later (a new ``updated_at``) with
another label, its earlier row is quarantined as superseded (unless a model already trained on it) and
the new label comes in with the next batch; an edit that keeps the label adds nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from loopline.config import Settings
from loopline.feedback.batches import batch_id_for
from loopline.feedback.store import FeedbackStore
from loopline.labelling.client import LabelStudioClient, Project
from loopline.labelling.links import AnnotationLink, AnnotationLinks
from loopline.labelling.tasks import (
    PREDICTION_ID_KEY,
    annotation_label,
    config_options,
    label_config,
    label_options,
    prediction_task,
)
from loopline.pipeline.feedback import FeedbackIntake, intake_feedback_rows

logger = logging.getLogger(__name__)

SOURCE = "label-studio"
SUPERSEDED = "superseded by a re-annotation in Label Studio"
CANDIDATES = 10_000  # unlabelled predictions read per push, before those already in the project are left out


@dataclass(frozen=True)
class PushOutcome:
    project: Project
    created_project: bool
    pushed: int
    already_in_project: int
    selection: str  # "flagged" or "least confident"
    label_config_updated: bool = False


@dataclass(frozen=True)
class PullOutcome:
    project: Project
    new: int  # annotations imported as feedback rows by this pull
    already_imported: int
    relabelled: int  # re-annotated with another label: earlier rows superseded, new rows imported
    superseded_rows: int  # earlier feedback rows quarantined as superseded
    unusable: dict[int, str] = field(default_factory=dict)  # annotation id → why it gives no label
    intake: FeedbackIntake | None = None


def ensure_project(
    client: LabelStudioClient, settings: Settings, labels: Iterable[str]
) -> tuple[Project, bool]:
    """The configured project, created with a labeling config of the model's labels if missing; an existing
    one gets the options it lacks (a grown head's new labels), keeping any added by hand."""
    title = settings.label_studio.project
    wanted = label_options(settings.task, labels)
    project = client.find_project(title)
    if project is None:
        logger.info("Creating Label Studio project %r with %d options", title, len(wanted))
        return client.create_project(title, label_config(settings.task, wanted)), True
    present = config_options(project.label_config)
    missing = [option for option in wanted if option not in present]
    if present and missing:
        logger.info("Adding %s to the labeling config of project %r", ", ".join(missing), title)
        project = client.set_label_config(project.id, label_config(settings.task, [*present, *missing]))
    return project, False


def push_for_labelling(
    settings: Settings, store: FeedbackStore, client: LabelStudioClient, labels: Collection[str], limit: int
) -> PushOutcome:
    """Send up to ``limit`` predictions for labelling to the project (see the module's docstring)."""
    project, created = ensure_project(client, settings, labels)
    before = project.label_config
    in_project = {
        str(task.get("data", {}).get(PREDICTION_ID_KEY))
        for task in ([] if created else client.export_tasks(project.id, all_tasks=True))
    }
    if store.any_flagged():
        selection, rows = "flagged", store.flagged_unlabelled(CANDIDATES)
    else:  # no service has flagged anything yet: the logged (batch-scored) predictions it is least sure of
        selection, rows = "least confident", store.least_confident_unlabelled(CANDIDATES)
    fresh = rows[~rows["id"].astype(str).isin(in_project)].head(limit)
    tasks = [prediction_task(row, settings.task) for row in fresh.to_dict("records")]
    pushed = client.import_tasks(project.id, tasks)
    logger.info("Pushed %d %s prediction(s) to Label Studio project %d", pushed, selection, project.id)
    return PushOutcome(
        project,
        created,
        pushed,
        int(rows["id"].astype(str).isin(in_project).sum()),
        selection,
        label_config_updated=not created and project.label_config != before,
    )


def pull_project(settings: Settings, client: LabelStudioClient, known_labels: Collection[str]) -> PullOutcome:
    """Import the project's completed annotations not imported yet."""
    project = _existing_project(client, settings)
    return pull_annotations(
        settings, client, project, client.export_tasks(project.id, all_tasks=False), known_labels
    )


def pull_annotation_ids(
    settings: Settings,
    client: LabelStudioClient,
    project: Project,
    ids: Iterable[int],
    known_labels: Collection[str],
) -> PullOutcome:
    """Import these annotations (a webhook's), each read back from the server rather than trusted from the
    payload, through the same path as :func:`pull_project`."""
    tasks: dict[int, dict[str, Any]] = {}
    for annotation_id in sorted(set(ids)):
        annotation = client.annotation(annotation_id)
        task_id = int(annotation["task"])
        if task_id not in tasks:
            tasks[task_id] = {**client.task(task_id), "annotations": []}
        tasks[task_id]["annotations"].append(annotation)
    if any(int(task.get("project", project.id)) != project.id for task in tasks.values()):
        tasks = {i: t for i, t in tasks.items() if int(t.get("project", project.id)) == project.id}
    return pull_annotations(settings, client, project, list(tasks.values()), known_labels)


def pull_annotations(
    settings: Settings,
    client: LabelStudioClient,
    project: Project,
    tasks: list[dict[str, Any]],
    known_labels: Collection[str],
) -> PullOutcome:
    """Annotations of ``tasks`` → one feedback batch (links first, then the import: see links.py)."""
    url = settings.resolved_feedback_db_url
    with FeedbackStore(url) as store, AnnotationLinks(url, client.url, project.id) as links:
        imported = links.imported()
        plan = _plan(tasks, imported, settings.task)
        source = f"{SOURCE} {client.url} project {project.id}"
        batch_id = batch_id_for(plan.content_hash(client.url, project.id))
        new_links = [
            AnnotationLink(a.annotation_id, a.updated_at, a.task_id, a.label, batch_id, row)
            for row, a in enumerate(plan.rows, start=1)
        ]
        superseded = links.record([*new_links, *plan.relinks], plan.superseded, SUPERSEDED)
        intake = None
        if plan.rows:
            intake = intake_feedback_rows(
                settings, store, plan.frame(), source, plan.content_hash(client.url, project.id), known_labels
            )
    for annotation_id, problem in plan.unusable.items():
        logger.warning("Annotation %d of project %d gives no label: %s", annotation_id, project.id, problem)
    return PullOutcome(
        project, len(plan.rows), plan.already, len(plan.superseded), superseded, plan.unusable, intake
    )


def _existing_project(client: LabelStudioClient, settings: Settings) -> Project:
    from loopline.labelling.client import LabelStudioError

    project = client.find_project(settings.label_studio.project)
    if project is None:
        raise LabelStudioError(
            f"Label Studio has no project {settings.label_studio.project!r}",
            where=f"{client.url}, label_studio.project",
            hint="Run `loopline label push` first (it creates the project), or set label_studio.project "
            "(LOOPLINE_LABEL_STUDIO__PROJECT) to the project's title.",
        )
    return project


@dataclass(frozen=True)
class _Annotated:
    annotation_id: int
    updated_at: str
    task_id: int
    label: str
    text: str
    prediction_id: str | None
    user: str


@dataclass
class _Plan:
    rows: list[_Annotated] = field(default_factory=list)
    relinks: list[AnnotationLink] = field(default_factory=list)  # edited, same label: nothing to import
    superseded: list[AnnotationLink] = field(default_factory=list)
    unusable: dict[int, str] = field(default_factory=dict)
    already: int = 0

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "text": [a.text for a in self.rows],
                "label": [a.label for a in self.rows],
                "user": [a.user for a in self.rows],
                "source": [SOURCE] * len(self.rows),
                "prediction_id": [a.prediction_id for a in self.rows],
                "source_row": range(1, len(self.rows) + 1),
            }
        )

    def content_hash(self, server: str, project_id: int) -> str:
        """What the batch is: these annotation versions of this project (the same pull again → same id)."""
        payload = [server, project_id, [(a.annotation_id, a.updated_at, a.label) for a in self.rows]]
        return hashlib.sha256(json.dumps(payload).encode()).hexdigest()


def _plan(tasks: list[dict[str, Any]], imported: Mapping[int, AnnotationLink], task_kind: str) -> _Plan:
    plan = _Plan()
    annotated = [(task, a) for task in tasks for a in task.get("annotations") or []]
    for task, annotation in sorted(annotated, key=lambda pair: int(pair[1]["id"])):
        annotation_id, updated_at = int(annotation["id"]), str(annotation.get("updated_at") or "")
        earlier = imported.get(annotation_id)
        if earlier is not None and earlier.updated_at == updated_at:
            plan.already += 1
            continue
        data = task.get("data") or {}
        text = str(data.get("text") or "")
        found = annotation_label(annotation, text, task_kind)
        if found.label is None:
            plan.unusable[annotation_id] = found.problem or "no label"
            continue
        task_id = int(task.get("id") or annotation.get("task") or 0)
        if earlier is not None and earlier.label == found.label:
            plan.relinks.append(
                AnnotationLink(
                    annotation_id, updated_at, task_id, found.label, earlier.batch_id, earlier.source_row
                )
            )
            plan.already += 1
            continue
        if earlier is not None:
            plan.superseded.append(earlier)
        prediction_id = data.get(PREDICTION_ID_KEY)
        user = f"{SOURCE}:{_annotator(annotation)}"
        plan.rows.append(
            _Annotated(
                annotation_id,
                updated_at,
                task_id,
                found.label,
                text,
                prediction_id and str(prediction_id),
                user,
            )
        )
    return plan


def _annotator(annotation: Mapping[str, Any]) -> str:
    """Who annotated: Label Studio gives a user id, or a user object with one (and an email)."""
    who = annotation.get("completed_by")
    if isinstance(who, dict):
        return str(who.get("email") or who.get("id"))
    return str(who)
