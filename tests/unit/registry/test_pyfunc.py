from __future__ import annotations

import ast
import inspect
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from loopline.registry import pyfunc
from loopline.registry.pyfunc import TextClassifierModel

from .conftest import LABELS

TEXTS = ["I want my money back", "where is my parcel?", "why was I charged twice for one order"]


@pytest.fixture(scope="module")
def model(tiny_classifier_dir: Path) -> TextClassifierModel:
    wrapper = TextClassifierModel()
    context = SimpleNamespace(artifacts={"model": str(tiny_classifier_dir)}, model_config={"max_length": 32})
    wrapper.load_context(context)
    return wrapper


def test_predict_accepts_frames_series_lists_and_strings(model: TextClassifierModel) -> None:
    frame = model.predict(None, pd.DataFrame({"text": TEXTS, "other": [1, 2, 3]}))
    assert list(frame.columns) == ["label", "confidence"]
    assert len(frame) == 3 and set(frame["label"]) <= set(LABELS)
    assert ((frame["confidence"] >= 1 / len(LABELS)) & (frame["confidence"] <= 1)).all()
    for same in (TEXTS, pd.Series(TEXTS), np.array(TEXTS), pd.DataFrame({"body": TEXTS})):
        pd.testing.assert_frame_equal(model.predict(None, same), frame)
    assert model.predict(None, TEXTS[0]).iloc[0].to_dict() == frame.iloc[0].to_dict()
    assert model.predict(None, []).empty
    with pytest.raises(ValueError, match="'text' column"):
        model.predict(None, pd.DataFrame({"a": TEXTS, "b": TEXTS}))


def test_batching_does_not_change_predictions(model: TextClassifierModel) -> None:
    whole = model.predict(None, TEXTS)
    one_by_one = model.predict(None, TEXTS, params={"batch_size": 1})
    pd.testing.assert_series_equal(whole["label"], one_by_one["label"])
    np.testing.assert_allclose(whole["confidence"], one_by_one["confidence"], atol=1e-5)


def test_matches_loopline_inference(model: TextClassifierModel, tiny_classifier_dir: Path) -> None:
    from loopline.inference import load_classifier

    classifier = load_classifier(tiny_classifier_dir, device="cpu", max_length=32)
    labels, confidences = classifier.predict(TEXTS)
    served = model.predict(None, TEXTS)
    assert served["label"].tolist() == labels
    np.testing.assert_allclose(served["confidence"], confidences, atol=1e-5)


def test_module_is_self_contained() -> None:
    """Logged as model code and executed without loopline installed: it must not import loopline."""
    tree = ast.parse(inspect.getsource(pyfunc))
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not {name for name in imported if name.split(".")[0] == "loopline"}


def test_the_word_rule_is_loopline_s(tmp_path: Path) -> None:
    from loopline.data import tagged

    assert pyfunc.WORDS.pattern == tagged._TOKEN.pattern  # the pyfunc may not import loopline: kept equal


def test_a_token_model_predicts_spans_that_match_loopline_s_tagger(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    from loopline.inference import TokenClassifier, load_classifier
    from loopline.tasks import get_task
    from loopline.training.checkpoint import save_model
    from loopline.training.model import build_model

    model_dir = save_model(
        *build_model(str(tiny_model_dir), ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"], get_task("token")),
        tmp_path / "tagger",
    )
    wrapper = TextClassifierModel()
    wrapper.load_context(
        SimpleNamespace(artifacts={"model": str(model_dir)}, model_config={"max_length": 32})
    )
    texts = ["Anna moved to New York, then Paris.", "no entity here"]
    frame = wrapper.predict(None, pd.DataFrame({"text": texts}))
    assert list(frame.columns) == ["entities"]
    tagger = load_classifier(model_dir, device="cpu", max_length=32)
    assert isinstance(tagger, TokenClassifier)
    expected = [[(s.start, s.end, s.type) for s in spans] for spans in tagger.entities(texts)]
    got = [[(e["start"], e["end"], e["type"]) for e in entities] for entities in frame["entities"]]
    assert got == expected and any(got), "a random head tags some words as entities"
    for text, entities in zip(texts, frame["entities"], strict=True):
        assert all(text[e["start"] : e["end"]] == e["text"] for e in entities)
