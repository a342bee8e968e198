"""What a Label Studio project looks like to loopline: its labeling config, the tasks loopline sends (a
prediction as pre-annotation) and the labels it reads back from annotations. Pure functions, no I/O.

Sequence models: ``Choices`` (one per text) over the model's labels. Token models: ``Labels`` over the
``Text`` at word granularity, one per entity type; a sentence's text is its words joined by spaces (as
the store keeps it), so spans map to BIO tags word by word.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import quoteattr

from loopline.data.tagged import TaggedSentence, spans_to_sentence
from loopline.errors import DataError

FROM_NAME, TO_NAME = "label", "text"
PREDICTION_ID_KEY = "loopline_prediction_id"  # task data: the id /predict returned, joins the label to it


def entity_types(labels: Iterable[str]) -> list[str]:
    """Entity types of BIO tags, in first-seen order (``B-PER``, ``I-PER``, ``B-LOC`` → PER, LOC)."""
    return list(dict.fromkeys(tag[2:] for tag in labels if tag[:2] in ("B-", "I-")))


def label_options(task: str, labels: Iterable[str]) -> list[str]:
    """What annotators pick from for a model with these labels: its labels, or its entity types (token)."""
    return entity_types(labels) if task == "token" else list(dict.fromkeys(labels))


def label_config(task: str, options: Sequence[str]) -> str:
    """The labeling config of a project offering these options (:func:`label_options`)."""
    if task == "token":
        labels = "".join(f"<Label value={quoteattr(t)}/>" for t in options)
        return (
            f'<View><Labels name="{FROM_NAME}" toName="{TO_NAME}">{labels}</Labels>'
            f'<Text name="{TO_NAME}" value="$text" granularity="word"/></View>'
        )
    choices = "".join(f"<Choice value={quoteattr(label)}/>" for label in options)
    return (
        f'<View><Text name="{TO_NAME}" value="$text"/>'
        f'<Choices name="{FROM_NAME}" toName="{TO_NAME}" choice="single" showInline="false">{choices}'
        "</Choices></View>"
    )


def config_options(config: str) -> list[str]:
    """The choice or label values a labeling config offers, in order (empty for a config not loopline's)."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(config)
    except ET.ParseError:
        return []
    return [str(node.get("value")) for node in root.iter() if node.tag in ("Choice", "Label")]


def prediction_task(row: Mapping[str, Any], task: str) -> dict[str, Any]:
    """A Label Studio task for one logged prediction: its text and prediction id as data, the prediction
    as pre-annotation (``model_version`` = the registry version that answered, ``score`` = confidence)."""
    text, predicted = str(row["text"]), str(row["predicted_label"])
    result = _span_results(text, predicted) if task == "token" else [_choice(predicted)]
    return {
        "data": {"text": text, PREDICTION_ID_KEY: str(row["id"])},
        "predictions": [
            {"model_version": str(row["model_version"]), "score": float(row["confidence"]), "result": result}
        ],
    }


def _choice(label: str) -> dict[str, Any]:
    return {"from_name": FROM_NAME, "to_name": TO_NAME, "type": "choices", "value": {"choices": [label]}}


def _span_results(text: str, tags: str) -> list[dict[str, Any]]:
    words = text.split(" ")
    starts, offset = [], 0
    for word in words:
        starts.append(offset)
        offset += len(word) + 1
    sentence = TaggedSentence(tuple(words), tuple(tags.split()))
    results = []
    for first, end, kind in sentence.entities():
        start, stop = starts[first], starts[end - 1] + len(words[end - 1])
        value = {"start": start, "end": stop, "text": text[start:stop], "labels": [kind]}
        results.append({"from_name": FROM_NAME, "to_name": TO_NAME, "type": "labels", "value": value})
    return results


@dataclass(frozen=True)
class AnnotatedLabel:
    """The label an annotation gives its task's text, or why it gives none (``problem``)."""

    label: str | None
    problem: str | None = None


def annotation_label(annotation: Mapping[str, Any], text: str, task: str) -> AnnotatedLabel:
    """The label of a completed annotation: its choice (sequence) or its spans as BIO tags (token)."""
    if annotation.get("was_cancelled"):
        return AnnotatedLabel(None, "skipped by the annotator")
    results = [r for r in annotation.get("result") or [] if r.get("from_name") == FROM_NAME]
    if task == "token":
        spans = [
            {"start": r["value"]["start"], "end": r["value"]["end"], "label": r["value"]["labels"][0]}
            for r in results
            if r.get("type") == "labels" and r.get("value", {}).get("labels")
        ]
        try:
            sentence = spans_to_sentence(text, spans, f"annotation {annotation.get('id')}")
        except DataError as err:
            return AnnotatedLabel(None, err.what)
        return AnnotatedLabel(" ".join(sentence.tags))
    choices = [
        c for r in results if r.get("type") == "choices" for c in r.get("value", {}).get("choices", [])
    ]
    if len(choices) != 1:
        return AnnotatedLabel(None, f"{len(choices)} choices instead of one")
    return AnnotatedLabel(str(choices[0]))
