"""Load a fine-tuned classifier folder and predict labels with confidences.

Texts are tokenised once, batched by length (longest first) so each batch pads little, and the
probabilities are returned in the caller's order.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from transformers import AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from loopline.data.tagged import words_with_offsets
from loopline.errors import DataError, LooplineError
from loopline.forward import predict_proba_encoded, resolve_device, word_probabilities_encoded
from loopline.model_files import labels_from_id2label
from loopline.tasks import Task, get_task, task_of_model
from loopline.tasks.token import fill_to_words
from loopline.training.batching import encode_texts

__all__ = [
    "Classifier",
    "EntitySpan",
    "ProbabilityClassifier",
    "TokenClassifier",
    "check_texts",
    "load_classifier",
    "predict_proba_encoded",
    "resolve_device",
]

logger = logging.getLogger(__name__)


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


class ProbabilityClassifier:
    """What answers predictions: class probabilities per text, ``labels`` in the model's id order.
    Subclasses (torch here, ONNX Runtime in ``loopline.serving.runtime``) implement ``predict_proba``."""

    labels: list[str]
    task: ClassVar[Task] = get_task("sequence")

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


@dataclass(frozen=True)
class EntitySpan:
    """One predicted entity of a raw text: characters ``start``–``end``, its type and the lowest
    probability among its words' tags."""

    text: str
    start: int
    end: int
    type: str
    score: float


@dataclass
class TokenClassifier:
    """A fine-tuned token classifier (torch): BIO tags per word, and entity spans of raw text.

    ``predict`` takes texts in loopline's row format (words joined by spaces) and answers with tag
    strings in the same format, so evaluation, scoring and the monitor treat it like a sequence
    classifier; ``entities`` splits raw text into words and punctuation and returns character spans.
    """

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    labels: list[str]
    device: torch.device
    max_length: int = 128
    task: ClassVar[Task] = get_task("token")

    def _decode(self, texts: Sequence[str], batch_size: int) -> tuple[list[str], np.ndarray]:
        label2id = {label: i for i, label in enumerate(self.labels)}
        encoded = self.task.encode(self.tokenizer, texts, None, label2id, self.max_length)
        decoded = self.task.predict_encoded(
            self.model,
            encoded,
            self.labels,
            pad_token_id=self.tokenizer.pad_token_id or 0,
            device=self.device,
            batch_size=batch_size,
        )
        return decoded.labels, decoded.confidences

    def predict(self, texts: Sequence[str], batch_size: int = 128) -> tuple[list[str], np.ndarray]:
        """Space-joined BIO tags per text (words past ``max_length`` get ``O``) and the lowest word
        confidence of each text."""
        texts = check_texts(texts)
        tags, confidences = self._decode(texts, batch_size)
        return [fill_to_words(t, len(x.split())) for t, x in zip(tags, texts, strict=True)], confidences

    def word_probabilities(self, words: Sequence[Sequence[str]], batch_size: int = 128) -> list[np.ndarray]:
        """Tag probabilities ``(words, labels)`` of pre-split sentences (kept words only)."""
        texts = [" ".join(w) for w in words]
        label2id = {label: i for i, label in enumerate(self.labels)}
        encoded = self.task.encode(self.tokenizer, texts, None, label2id, self.max_length)
        return word_probabilities_encoded(
            self.model,
            encoded.input_ids,
            encoded.word_starts or [],
            pad_token_id=self.tokenizer.pad_token_id or 0,
            device=self.device,
            batch_size=batch_size,
        )

    def entities(self, texts: Sequence[str], batch_size: int = 128) -> list[list[EntitySpan]]:
        """Entity spans per raw text (character offsets into that text)."""
        texts = check_texts(texts)
        split = [words_with_offsets(text) for text in texts]
        probabilities = self.word_probabilities([[w for w, _, _ in words] for words in split], batch_size)
        return self.spans(texts, split, probabilities)

    def spans(
        self,
        texts: Sequence[str],
        split: Sequence[Sequence[tuple[str, int, int]]],
        probabilities: Sequence[np.ndarray],
    ) -> list[list[EntitySpan]]:
        """Spans of texts already split into words (with offsets) and tagged (word probabilities)."""
        return [
            _spans(text, words, probs, self.labels)
            for text, words, probs in zip(texts, split, probabilities, strict=True)
        ]


def _spans(
    text: str, words: Sequence[tuple[str, int, int]], probabilities: np.ndarray, labels: Sequence[str]
) -> list[EntitySpan]:
    """BIO tags → spans (an ``I-`` without its ``B-`` opens an entity, as seqeval's lenient mode)."""
    spans: list[EntitySpan] = []
    current: list[int] = []
    kind = ""
    best = probabilities.argmax(axis=-1) if len(probabilities) else np.zeros(0, dtype=int)

    def close() -> None:
        if current:
            start, end = words[current[0]][1], words[current[-1]][2]
            score = float(min(probabilities[i, best[i]] for i in current))
            spans.append(EntitySpan(text[start:end], start, end, kind, score))
        current.clear()

    for i, label_id in enumerate(best):
        tag = labels[int(label_id)]
        if tag.startswith("I-") and current and tag[2:] == kind:
            current.append(i)
            continue
        close()
        if tag != "O":
            kind = tag[2:]
            current.append(i)
    close()
    return spans


def load_classifier(
    model_dir: Path | str, device: str = "auto", max_length: int = 64
) -> Classifier | TokenClassifier:
    """Load a folder written by ``train_model``: a sequence or a token classifier, as its config says."""
    path = Path(model_dir)
    if not (path / "config.json").is_file():
        raise LooplineError(
            "No fine-tuned model found.", where=str(path), hint="Pass the model folder that training wrote."
        )
    try:
        task = task_of_model(path)
    except DataError:  # a bare encoder: transformers gives it a fresh sequence head, as before tasks
        task = get_task("sequence")
    target = resolve_device(device)
    model = task.model_class.from_pretrained(path).to(target)
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    labels = labels_from_id2label(model.config.id2label)
    logger.info("Loaded %s classifier %s (%d labels) on %s", task.name, path, len(labels), target)
    if task.name == "token":
        return TokenClassifier(model, tokenizer, labels, target, max_length)
    return Classifier(model=model, tokenizer=tokenizer, labels=labels, device=target, max_length=max_length)
