"""Sequence classification: one label per text (intents, sentiment)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from transformers import AutoModelForSequenceClassification, PreTrainedModel, PreTrainedTokenizerBase

from loopline.config import ContractConfig
from loopline.data.loading import load_labelled_text
from loopline.evaluation.metrics import MACRO_F1, EvalMetrics, compute_metrics
from loopline.forward import predict_proba_encoded
from loopline.tasks.base import Decoded, Encoded
from loopline.training.batching import encode_texts

if TYPE_CHECKING:
    from loopline.contracts.result import ContractResult  # Great Expectations: slow to import


class SequenceTask:
    """A text → one of N labels; the head has one row per label."""

    name: Literal["sequence"] = "sequence"
    model_class = AutoModelForSequenceClassification
    architecture_suffix = "ForSequenceClassification"
    primary_name = MACRO_F1
    has_behaviour_checks = True

    def label_space(self, values: Iterable[str]) -> list[str]:
        return sorted({str(v) for v in values})

    def extend_labels(self, old: Sequence[str], values: Iterable[str]) -> list[str]:
        known = set(old)
        return [*old, *sorted({str(v) for v in values} - known)]

    def classes(self, values: Iterable[str]) -> set[str]:
        return {str(v) for v in values}

    def class_labels(self, classes: Collection[str]) -> list[str]:
        return sorted(classes)

    def strata(self, values: pd.Series) -> pd.Series:
        return values.astype(str)

    def encode(
        self,
        tokenizer: PreTrainedTokenizerBase,
        texts: Sequence[str],
        values: Sequence[str] | None,
        label2id: dict[str, int],
        max_length: int,
    ) -> Encoded:
        input_ids = encode_texts(tokenizer, list(texts), max_length)
        targets = None if values is None else [label2id[str(v)] for v in values]
        return Encoded(input_ids, targets)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor, label_smoothing: float) -> torch.Tensor:
        return F.cross_entropy(logits.float(), targets, label_smoothing=label_smoothing)

    def predict_encoded(
        self,
        model: PreTrainedModel,
        encoded: Encoded,
        labels: Sequence[str],
        *,
        pad_token_id: int,
        device: torch.device,
        batch_size: int,
    ) -> Decoded:
        probabilities = predict_proba_encoded(
            model, encoded.input_ids, pad_token_id=pad_token_id, device=device, batch_size=batch_size
        )
        top = probabilities.argmax(axis=1) if len(probabilities) else np.zeros(0, dtype=np.int64)
        return Decoded([labels[i] for i in top], probabilities[np.arange(len(top)), top])

    def metrics(
        self, true: Sequence[str], predicted: Sequence[str], confidences: np.ndarray, labels: Sequence[str]
    ) -> EvalMetrics:
        return compute_metrics(true, predicted, confidences, labels)

    def read_labelled(
        self, path: Path, text_column: str, label_column: str, encoding: str, label_map: dict[str, str]
    ) -> pd.DataFrame:
        return load_labelled_text(path, text_column, label_column, encoding, label_map=label_map)

    def validate_training(
        self,
        df: pd.DataFrame,
        cfg: ContractConfig,
        source: str,
        quarantine_dir: Path,
        *,
        docs_dir: Path | None = None,
    ) -> ContractResult:
        from loopline.contracts.validate import validate_training_data  # Great Expectations: slow to import

        return validate_training_data(df, cfg, source, quarantine_dir, docs_dir=docs_dir)

    def validate_feedback(
        self,
        df: pd.DataFrame,
        known_labels: Collection[str],
        cfg: ContractConfig,
        source: str,
        quarantine_dir: Path,
    ) -> ContractResult:
        from loopline.contracts.validate import validate_feedback_batch  # Great Expectations: slow to import

        return validate_feedback_batch(df, known_labels, cfg, source, quarantine_dir)

    def label_units(self, values: pd.Series) -> pd.Series:
        return values.astype(str)
