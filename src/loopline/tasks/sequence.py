"""Sequence classification: one label per text (intents, sentiment)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from loopline.config import ContractConfig
from loopline.data.loading import load_labelled_text
from loopline.metric_names import MACRO_F1
from loopline.tasks.base import Decoded, Encoded

# torch, transformers and sklearn are imported where a model or metric needs them: commands that only
# read data or the registry (validate, feedback import, models) start seconds sooner without them.
if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from loopline.contracts.result import ContractResult  # Great Expectations: slow to import
    from loopline.evaluation.metrics import EvalMetrics


class SequenceTask:
    """A text → one of N labels; the head has one row per label."""

    name: Literal["sequence"] = "sequence"
    architecture_suffix = "ForSequenceClassification"
    primary_name = MACRO_F1
    has_behaviour_checks = True

    @property
    def model_class(self) -> type[Any]:
        from transformers import AutoModelForSequenceClassification

        return AutoModelForSequenceClassification

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
        from loopline.training.batching import encode_texts

        input_ids = encode_texts(tokenizer, list(texts), max_length)
        targets = None if values is None else [label2id[str(v)] for v in values]
        return Encoded(input_ids, targets)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor, label_smoothing: float) -> torch.Tensor:
        import torch.nn.functional as F

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
        from loopline.forward import predict_proba_encoded

        probabilities = predict_proba_encoded(
            model, encoded.input_ids, pad_token_id=pad_token_id, device=device, batch_size=batch_size
        )
        top = probabilities.argmax(axis=1) if len(probabilities) else np.zeros(0, dtype=np.int64)
        return Decoded([labels[i] for i in top], probabilities[np.arange(len(top)), top])

    def metrics(
        self, true: Sequence[str], predicted: Sequence[str], confidences: np.ndarray, labels: Sequence[str]
    ) -> EvalMetrics:
        from loopline.evaluation.metrics import compute_metrics

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
