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
