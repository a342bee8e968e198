"""Load a fine-tuned classifier folder and predict labels with confidences.

Texts are tokenised once, batched by length (longest first) so each batch pads little, and the
probabilities are returned in the caller's order.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from loopline.errors import DataError, LooplineError
from loopline.training.batching import encode_texts, length_sorted_batches, pad_batch

logger = logging.getLogger(__name__)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA when present, else CPU; asking for CUDA without one is an error."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise LooplineError(
            "device='cuda' was requested but no CUDA GPU is visible.",
            hint="Use device='auto' or 'cpu', or run on a machine with a GPU.",
        )
    return torch.device(device)


def check_texts(texts: Sequence[str]) -> list[str]:
    texts = list(texts)
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise DataError(
                f"Text #{index} is {type(text).__name__} ({text!r}), not a string.",
                where=f"texts[{index}]",
                hint="Drop or fill missing texts before predicting.",
            )
    return texts


@torch.inference_mode()
def predict_proba_encoded(
    model: PreTrainedModel,
    input_ids: Sequence[Sequence[int]],
    *,
    pad_token_id: int,
    device: torch.device,
    batch_size: int = 128,
) -> np.ndarray:
    """Class probabilities (float32, caller's order) for tokenised texts; the model is put in eval mode."""
    model.eval()
    lengths = [len(ids) for ids in input_ids]
    probabilities = np.zeros((len(input_ids), model.config.num_labels), dtype=np.float32)
    cuda = device.type == "cuda"
    for indices in length_sorted_batches(lengths, batch_size):
        batch = pad_batch([input_ids[i] for i in indices], pad_token_id, 8 if cuda else None)
        batch = {key: value.to(device, non_blocking=cuda) for key, value in batch.items()}
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            logits = model(**batch).logits
        probabilities[indices] = torch.softmax(logits.float(), dim=-1).cpu().numpy()
    return probabilities


class ProbabilityClassifier:
    """What answers predictions: class probabilities per text, ``labels`` in the model's id order.
    Subclasses (torch here, ONNX Runtime in ``loopline.serving.runtime``) implement ``predict_proba``."""

    labels: list[str]

    def predict_proba(self, texts: Sequence[str], batch_size: int = 128) -> np.ndarray:
        raise NotImplementedError

    def predict(self, texts: Sequence[str], batch_size: int = 128) -> tuple[list[str], np.ndarray]:
        """Top label per text and its probability (the confidence)."""
        probabilities = self.predict_proba(texts, batch_size=batch_size)
        top = probabilities.argmax(axis=1) if len(probabilities) else np.zeros(0, dtype=np.int64)
        confidences = probabilities[np.arange(len(top)), top] if len(top) else np.zeros(0, np.float32)
        return [self.labels[i] for i in top], confidences


@dataclass
class Classifier(ProbabilityClassifier):
    """A fine-tuned sequence classifier (torch) ready to predict; ``labels`` are in the model's id order."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    labels: list[str]
    device: torch.device
    max_length: int = 64

    def predict_proba(self, texts: Sequence[str], batch_size: int = 128) -> np.ndarray:
        """Probabilities, shape ``(len(texts), len(labels))``, rows in the order of ``texts``."""
        texts = check_texts(texts)
        input_ids = encode_texts(self.tokenizer, texts, self.max_length)
        pad_id = self.tokenizer.pad_token_id or 0
        return predict_proba_encoded(
            self.model, input_ids, pad_token_id=pad_id, device=self.device, batch_size=batch_size
        )


def load_classifier(model_dir: Path | str, device: str = "auto", max_length: int = 64) -> Classifier:
    """Load a folder written by ``train_model`` (or any transformers sequence classifier)."""
    path = Path(model_dir)
    if not (path / "config.json").is_file():
        raise LooplineError(
            "No fine-tuned model found.", where=str(path), hint="Pass the model folder that training wrote."
        )
    target = resolve_device(device)
    model = AutoModelForSequenceClassification.from_pretrained(path).to(target)
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    labels = [str(model.config.id2label[i]) for i in range(model.config.num_labels)]
    logger.info("Loaded classifier %s (%d labels) on %s", path, len(labels), target)
    return Classifier(model=model, tokenizer=tokenizer, labels=labels, device=target, max_length=max_length)
