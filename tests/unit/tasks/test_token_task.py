"""The token task through training, evaluation, head growth, relabelling and the pyfunc spans."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from loopline.config import TrainingConfig
from loopline.data.demo_ner import ner_round, to_token_frame
from loopline.evaluation.evaluate import evaluate_model
from loopline.inference import TokenClassifier, load_classifier
from loopline.model_files import read_labels
from loopline.pipeline.relabel import fill_outside
from loopline.tasks import get_task, task_of_model
from loopline.training.trainer import train_model

TOKEN = get_task("token")


@pytest.fixture(scope="module")
def ner_frames() -> dict[str, pd.DataFrame]:
    return {
        "train": to_token_frame(ner_round("base", 240, seed=1)),
        "val": to_token_frame(ner_round("heldout_base", 60, seed=2)),
        "new": to_token_frame(ner_round("new_type", 120, seed=3, o_confusion_share=0.0)),
    }


@pytest.fixture(scope="module")
def cfg() -> TrainingConfig:
    return TrainingConfig(
        epochs=3,
        learning_rate=5e-3,
        head_learning_rate=1e-2,
        batch_size=16,
        max_length=48,
        warmup_ratio=0.0,
        early_stopping_patience=0,
        label_smoothing=0.0,
        seed=0,
        num_threads=1,
    )


@pytest.fixture(scope="module")
def tagger_dir(
    tmp_path_factory: pytest.TempPathFactory,
    tiny_model_dir: Path,
    ner_frames: dict[str, pd.DataFrame],
    cfg: TrainingConfig,
) -> Path:
    out = tmp_path_factory.mktemp("ner")
    result = train_model(ner_frames["train"], ner_frames["val"], cfg, str(tiny_model_dir), out, task=TOKEN)
    assert result.task == "token" and result.score_name == "entity_f1"
    return result.model_dir


def test_label_space_is_o_then_b_i_per_type_and_grows_by_two_rows_per_new_type() -> None:
    assert TOKEN.label_space(["B-PER I-PER O", "B-LOC"]) == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    grown = TOKEN.extend_labels(["O", "B-LOC", "I-LOC"], ["B-PRODUCT I-PRODUCT O B-LOC"])
    assert grown == ["O", "B-LOC", "I-LOC", "B-PRODUCT", "I-PRODUCT"]
    assert TOKEN.classes(["B-PRODUCT I-PRODUCT"]) == {"PRODUCT"}
    assert TOKEN.strata(pd.Series(["B-PER O B-LOC", "O O"])).tolist() == ["LOC+PER", "O"]
    assert TOKEN.label_units(pd.Series(["B-PER O B-PER", "O"])).tolist() == ["PER", "PER", "O"]


def test_a_token_model_is_saved_as_one_and_learns_entities(
    tagger_dir: Path, ner_frames: dict[str, pd.DataFrame]
) -> None:
    assert task_of_model(tagger_dir).name == "token"
    tagger = load_classifier(tagger_dir, device="cpu", max_length=48)
    assert isinstance(tagger, TokenClassifier)
    report = evaluate_model(tagger, ner_frames["val"], "test")
    metrics = report.metrics
    assert metrics.primary_name == "entity_f1"
    assert set(metrics.per_class) == {"LOC", "ORG", "PER"}
    assert report.behaviour is None  # perturbations move words; the checks do not apply to tagging
    assert metrics.accuracy > 0.8  # the token-level micro F1, O included
    assert 0.0 <= metrics.primary <= 1.0 and "token_report" in metrics.details


def test_predicted_tags_line_up_with_words_and_spans_point_into_raw_text(tagger_dir: Path) -> None:
    tagger = load_classifier(tagger_dir, device="cpu", max_length=48)
    assert isinstance(tagger, TokenClassifier)
    tags, confidences = tagger.predict(["Angela Merkel visited Paris .", "no entity here"])
    assert [len(t.split()) for t in tags] == [5, 3]
    assert np.all((confidences > 0) & (confidences <= 1))
    text = "Angela Merkel met the Bank of England in London."
    for span in tagger.entities([text])[0]:
        assert text[span.start : span.end] == span.text and span.type in {"PER", "LOC", "ORG"}


def test_a_warm_start_grows_the_head_by_b_and_i_of_the_new_type(
    tagger_dir: Path, ner_frames: dict[str, pd.DataFrame], cfg: TrainingConfig, tmp_path: Path
) -> None:
    old = read_labels(tagger_dir)
    result = train_model(
        ner_frames["new"],
        ner_frames["val"],
        cfg.model_copy(update={"epochs": 1}),
        "unused-base",
        tmp_path,
        init_model_dir=str(tagger_dir),
        task=TOKEN,
    )
    assert result.labels == [*old, "B-PRODUCT", "I-PRODUCT"]
    assert read_labels(result.model_dir) == result.labels


def test_warm_starting_a_token_model_as_a_sequence_task_is_refused(
    tagger_dir: Path, ner_frames: dict[str, pd.DataFrame], cfg: TrainingConfig, tmp_path: Path
) -> None:
    from loopline.errors import TrainingError

    frame = pd.DataFrame({"text": ["a b", "c d"] * 5, "label": ["x", "y"] * 5})
    with pytest.raises(TrainingError, match="token classifier, but the task is sequence"):
        train_model(frame, frame, cfg, "unused", tmp_path, init_model_dir=str(tagger_dir))


def test_fill_outside_writes_only_confident_entities_that_lie_on_o_words() -> None:
    labels = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]

    def probs(*rows: tuple[int, float]) -> np.ndarray:
        out = np.full((len(rows), len(labels)), 0.0)
        for i, (label, p) in enumerate(rows):
            out[i, :] = (1 - p) / (len(labels) - 1)
            out[i, label] = p
        return out

    # "New York" predicted LOC with confidence, tagged O: filled; "Ann" predicted PER but unsure: kept O.
    tags, changed = fill_outside(
        ["O", "O", "O", "O"], probs((1, 0.97), (2, 0.95), (0, 0.9), (3, 0.6)), labels, threshold=0.9
    )
    assert tags == ["B-LOC", "I-LOC", "O", "O"] and changed == 2
    # A predicted entity overlapping a gold one is left alone.
    tags, changed = fill_outside(["B-PER", "O"], probs((1, 0.99), (2, 0.99)), labels, threshold=0.9)
    assert tags == ["B-PER", "O"] and changed == 0
