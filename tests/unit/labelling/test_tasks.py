"""Label Studio projects as loopline sees them: labeling configs, tasks with pre-annotations, and the
labels annotations give back (the round trip through a real server is tests/servers/test_label_studio.py)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from loopline.labelling.tasks import (
    PREDICTION_ID_KEY,
    annotation_label,
    config_options,
    label_config,
    label_options,
    prediction_task,
)


def test_sequence_config_offers_each_label_once_as_a_choice_escaped() -> None:
    options = label_options("sequence", ["billing", 'a "quoted" & <odd> one', "billing"])
    config = label_config("sequence", options)

    root = ET.fromstring(config)  # well-formed whatever the labels hold
    [choices] = root.iter("Choices")
    assert (choices.get("name"), choices.get("toName"), choices.get("choice")) == ("label", "text", "single")
    assert config_options(config) == ["billing", 'a "quoted" & <odd> one']


def test_token_config_offers_entity_types_over_words() -> None:
    options = label_options("token", ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-PRODUCT"])
    config = label_config("token", options)

    assert options == ["PER", "LOC", "PRODUCT"]
    [text] = ET.fromstring(config).iter("Text")
    assert text.get("granularity") == "word"
    assert config_options(config) == ["PER", "LOC", "PRODUCT"]
    assert config_options("<not xml") == []


def test_prediction_task_carries_id_version_score_and_the_predicted_choice() -> None:
    row = {"id": "p-1", "text": "card not here", "predicted_label": "card_arrival", "confidence": 0.41,
           "model_version": "3"}  # fmt: skip
    task = prediction_task(row, "sequence")

    assert task["data"] == {"text": "card not here", PREDICTION_ID_KEY: "p-1"}
    [prediction] = task["predictions"]
    assert (prediction["model_version"], prediction["score"]) == ("3", 0.41)
    assert prediction["result"] == [
        {"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": ["card_arrival"]}}
    ]


def test_token_prediction_spans_round_trip_to_the_same_tags() -> None:
    text, tags = "Anna Smith flew to New York .", "B-PER I-PER O O B-LOC I-LOC O"
    row = {"id": "p-2", "text": text, "predicted_label": tags, "confidence": 0.5, "model_version": "1"}
    result = prediction_task(row, "token")["predictions"][0]["result"]

    spans = [
        (r["value"]["start"], r["value"]["end"], r["value"]["text"], r["value"]["labels"]) for r in result
    ]
    assert spans == [(0, 10, "Anna Smith", ["PER"]), (19, 27, "New York", ["LOC"])]
    # An annotator who accepts the pre-annotation gives back exactly the predicted tags.
    assert annotation_label({"id": 7, "result": result}, text, "token").label == tags


def test_annotation_labels_and_why_some_give_none() -> None:
    choice = {"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": ["refund"]}}
    assert annotation_label({"id": 1, "result": [choice]}, "t", "sequence").label == "refund"

    skipped = annotation_label({"id": 2, "was_cancelled": True, "result": []}, "t", "sequence")
    empty = annotation_label({"id": 3, "result": []}, "t", "sequence")
    assert (skipped.label, skipped.problem) == (None, "skipped by the annotator")
    assert (empty.label, empty.problem) == (None, "0 choices instead of one")

    half_word = {"from_name": "label", "to_name": "text", "type": "labels",
                 "value": {"start": 0, "end": 3, "labels": ["PER"]}}  # fmt: skip
    misaligned = annotation_label({"id": 4, "result": [half_word]}, "Anna Smith spoke", "token")
    assert misaligned.label is None and misaligned.problem and "whole words" in misaligned.problem
    assert annotation_label({"id": 5, "result": []}, "Anna Smith spoke", "token").label == "O O O"


def test_a_pull_plan_takes_each_annotation_once_and_a_changed_label_supersedes() -> None:
    from loopline.labelling.links import AnnotationLink
    from loopline.labelling.loop import _plan

    def annotated(annotation_id: int, label: str, updated_at: str, **extra: object) -> dict[str, object]:
        choice = {"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [label]}}
        annotation = {"id": annotation_id, "result": [choice], "updated_at": updated_at, "completed_by": 4}
        data = {"text": f"text {annotation_id}", PREDICTION_ID_KEY: f"p{annotation_id}"}
        return {"id": 100 + annotation_id, "data": data, "annotations": [{**annotation, **extra}]}

    imported = {
        1: AnnotationLink(1, "t1", 101, "refund", "fb-old", 1),  # unchanged
        2: AnnotationLink(2, "t1", 102, "refund", "fb-old", 2),  # edited, same label
        3: AnnotationLink(3, "t1", 103, "refund", "fb-old", 3),  # edited, another label
    }
    tasks = [
        annotated(1, "refund", "t1"),
        annotated(2, "refund", "t2"),
        annotated(3, "billing", "t2"),
        annotated(4, "billing", "t1"),
        annotated(5, "billing", "t1", was_cancelled=True),
    ]
    plan = _plan(tasks, imported, "sequence")

    assert [(a.annotation_id, a.label, a.prediction_id, a.user) for a in plan.rows] == [
        (3, "billing", "p3", "label-studio:4"),
        (4, "billing", "p4", "label-studio:4"),
    ]
    assert plan.superseded == [imported[3]]
    assert [(link.annotation_id, link.updated_at, link.batch_id) for link in plan.relinks] == [
        (2, "t2", "fb-old")
    ]
    assert plan.already == 2 and plan.unusable == {5: "skipped by the annotator"}
    assert plan.content_hash("http://ls", 1) == _plan(tasks, imported, "sequence").content_hash(
        "http://ls", 1
    )
    assert list(plan.frame()["source_row"]) == [1, 2]
