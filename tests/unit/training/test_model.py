from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from loopline.errors import TrainingError
from loopline.training.model import (
    NEW_LABEL_BIAS_MARGIN,
    build_model,
    extend_labels,
    grow_classifier_head,
    model_labels,
    warm_start,
)

LABELS = ["billing", "delivery", "login"]
TEXTS = ["my invoice is wrong", "where is my parcel", "reset my password please", "hello", "parcel invoice"]


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture()
def modeling_log() -> Iterator[_Records]:
    """Records of transformers' modeling logger (it does not propagate to pytest's caplog)."""
    handler = _Records()
    target = logging.getLogger("transformers.modeling_utils")
    target.addHandler(handler)
    yield handler
    target.removeHandler(handler)


def _logits(model, tokenizer, texts=TEXTS) -> torch.Tensor:
    model.eval()
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        return model(**batch).logits


@pytest.fixture(scope="module")
def classifier_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A (randomly initialised) saved 3-label classifier standing in for a champion."""
    torch.manual_seed(0)
    model, tokenizer = build_model(str(tiny_model_dir), LABELS)
    out = tmp_path_factory.mktemp("champion")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def test_build_model_sets_label_maps_and_silences_the_head_warning(tiny_model_dir, modeling_log):
    model, tokenizer = build_model(str(tiny_model_dir), LABELS)

    assert model.config.id2label == {0: "billing", 1: "delivery", 2: "login"}
    assert model.config.label2id == {"billing": 0, "delivery": 1, "login": 2}
    assert model.config.problem_type == "single_label_classification"
    assert model_labels(model) == LABELS
    assert _logits(model, tokenizer).shape == (len(TEXTS), 3)
    assert not any("newly initialized" in message for message in modeling_log.messages)
    # Control: the plain transformers call does warn, so the assertion above can fail.
    AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=3)
    assert any("newly initialized" in message for message in modeling_log.messages)


@pytest.mark.parametrize(
    ("labels", "message"),
    [(["only"], "at least 2 labels"), (["a", "b", "a"], "listed twice"), (["a", ""], "non-empty")],
)
def test_build_model_rejects_bad_label_lists(tiny_model_dir, labels, message):
    with pytest.raises(TrainingError, match=message):
        build_model(str(tiny_model_dir), labels)


def test_build_model_names_a_missing_folder(tmp_path):
    with pytest.raises(TrainingError, match="No transformers model found") as err:
        build_model(str(tmp_path / "nope"), LABELS)
    assert str(tmp_path / "nope") in str(err.value)


def test_grow_head_keeps_old_logits_and_predictions(classifier_dir):
    model, tokenizer = warm_start(str(classifier_dir), LABELS)
    before = _logits(model, tokenizer)
    old_weight = model.classifier.weight.detach().clone()

    grow_classifier_head(model, ["refund", "cancel"])
    after = _logits(model, tokenizer)

    assert after.shape == (len(TEXTS), 5)
    assert torch.allclose(after[:, :3], before, atol=1e-6)
    assert torch.equal(model.classifier.weight[:3], old_weight)
    assert torch.equal(after.argmax(dim=1), before.argmax(dim=1))  # no old input flips to a new label
    assert model_labels(model) == [*LABELS, "refund", "cancel"]
    assert model.config.num_labels == 5 and model.config.label2id["cancel"] == 4
    new_bias = model.classifier.bias[3:]
    assert torch.allclose(new_bias, model.classifier.bias[:3].mean() - NEW_LABEL_BIAS_MARGIN)
    assert not torch.equal(model.classifier.weight[3], model.classifier.weight[4])  # rows can diverge


def test_grow_head_refuses_existing_labels(classifier_dir):
    model, _ = warm_start(str(classifier_dir), LABELS)
    with pytest.raises(TrainingError, match="already in the model"):
        grow_classifier_head(model, ["login"])


def test_warm_start_appends_labels_and_matches_the_saved_model(classifier_dir):
    champion = AutoModelForSequenceClassification.from_pretrained(classifier_dir)
    model, tokenizer = warm_start(str(classifier_dir), [*LABELS, "refund"])

    assert model_labels(model) == [*LABELS, "refund"]
    assert torch.allclose(_logits(model, tokenizer)[:, :3], _logits(champion, tokenizer), atol=1e-6)


@pytest.mark.parametrize(
    ("labels", "problem"),
    [(["delivery", "billing", "login"], "reorders"), (["billing", "login", "refund"], "drops")],
)
def test_warm_start_requires_old_labels_as_prefix(classifier_dir, labels, problem):
    with pytest.raises(TrainingError, match=problem) as err:
        warm_start(str(classifier_dir), labels)
    assert "labels=None" in str(err.value)  # the message says what to do


def test_warm_start_refuses_a_base_encoder(tiny_model_dir):
    with pytest.raises(TrainingError, match="not a fine-tuned sequence or token classifier"):
        warm_start(str(tiny_model_dir), LABELS)


def test_extend_labels_keeps_old_order_and_sorts_new():
    assert extend_labels(["b", "a"], ["z", "a", "c", "b"]) == ["b", "a", "c", "z"]
