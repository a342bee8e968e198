from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from loopline.errors import DataError, LooplineError
from loopline.inference import load_classifier, resolve_device
from loopline.training.model import build_model

LABELS = ["billing", "delivery", "login"]
# Mixed lengths, so length-sorted batches reorder them.
TEXTS = [
    "hi",
    "where is the parcel I ordered three weeks ago, the tracking page shows nothing at all",
    "reset my password",
    "invoice",
    "my invoice shows a charge twice and I would like the second one refunded please",
    "ok",
    "login fails",
]


@pytest.fixture(scope="module")
def classifier_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model, tokenizer = build_model(str(tiny_model_dir), LABELS)
    with torch.no_grad():  # a random head is near-uniform; a bigger one makes texts' rows differ clearly
        model.classifier.weight.mul_(100)
    out = tmp_path_factory.mktemp("classifier")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def classifier(classifier_dir: Path):
    return load_classifier(classifier_dir, device="cpu", max_length=32)


def test_load_classifier_reads_labels_in_id_order(classifier):
    assert classifier.labels == LABELS
    assert classifier.device == torch.device("cpu")
    assert not classifier.model.training


def test_predict_proba_keeps_caller_order_across_sorted_batches(classifier):
    together = classifier.predict_proba(TEXTS, batch_size=3)
    one_by_one = np.vstack([classifier.predict_proba([text]) for text in TEXTS])

    assert together.shape == (len(TEXTS), 3) and together.dtype == np.float32
    assert np.allclose(together.sum(axis=1), 1.0, atol=1e-5)
    assert np.allclose(together, one_by_one, atol=1e-5)
    # every pair of rows differs by far more than the tolerance, so any reordering would be caught
    gaps = np.abs(together[:, None, :] - together[None, :, :]).max(axis=2)
    assert gaps[~np.eye(len(TEXTS), dtype=bool)].min() > 1e-4


def test_predict_proba_matches_a_plain_padded_forward_pass(classifier):
    batch = classifier.tokenizer(TEXTS, padding=True, truncation=True, max_length=32, return_tensors="pt")
    with torch.no_grad():
        expected = torch.softmax(classifier.model(**batch).logits, dim=-1).numpy()
    assert np.allclose(classifier.predict_proba(TEXTS, batch_size=2), expected, atol=1e-5)


def test_predict_returns_top_label_and_its_probability(classifier):
    labels, confidences = classifier.predict(TEXTS)
    probabilities = classifier.predict_proba(TEXTS)
    assert labels == [LABELS[i] for i in probabilities.argmax(axis=1)]
    assert np.allclose(confidences, probabilities.max(axis=1))


def test_empty_input_gives_empty_output(classifier):
    assert classifier.predict_proba([]).shape == (0, 3)
    labels, confidences = classifier.predict([])
    assert labels == [] and confidences.shape == (0,)


def test_non_string_text_is_a_data_error(classifier):
    with pytest.raises(DataError, match=r"texts\[1\]"):
        classifier.predict(["fine", None])


def test_missing_model_folder_is_reported(tmp_path):
    with pytest.raises(LooplineError, match="No fine-tuned model found"):
        load_classifier(tmp_path / "missing")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_without_gpu_says_what_to_do():
    with pytest.raises(LooplineError, match="no CUDA GPU"):
        resolve_device("cuda")
    assert resolve_device("auto") == torch.device("cpu")
