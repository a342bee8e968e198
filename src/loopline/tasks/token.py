"""Token classification (named-entity recognition): one BIO tag per word.

A row's text is its words joined by spaces and its label their tags joined the same way. The head has
``O`` plus a ``B-`` and an ``I-`` row per entity type; a new type grows the head by those two rows. Each
word's tag is trained and read on its first subword (``loopline.training.token_alignment``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from loopline.config import ContractConfig
from loopline.data.tagged import entity_type, frame_to_sentences, read_tagged_file, sentences_to_frame
from loopline.metric_names import ENTITY_F1
from loopline.tasks.base import Decoded, Encoded

# torch, transformers, seqeval and sklearn are imported where a model or metric needs them (as in
# tasks/sequence.py): commands that only read data or the registry start seconds sooner.
if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from loopline.contracts.result import ContractResult  # Great Expectations: slow to import
    from loopline.evaluation.metrics import EvalMetrics

OUTSIDE = "O"
NO_ENTITY = "O"  # the stratum and label unit of a sentence without entities


def entity_types(values: Iterable[str]) -> set[str]:
    """Entity types named by the tags of these rows (``B-PER I-PER O`` → ``{"PER"}``)."""
    return {entity_type(tag) for value in values for tag in str(value).split() if tag != OUTSIDE}


def fill_to_words(tags: str, words: int) -> str:
    """A tag string over the first words, extended with ``O`` to ``words`` tags: words past
    ``max_length`` were not predicted, so they count as outside (a truncated entity is a miss)."""
    kept = tags.split()
    return " ".join(kept + [OUTSIDE] * (words - len(kept)))


def type_labels(types: Iterable[str]) -> list[str]:
    """``B-`` and ``I-`` labels of each type, types sorted (the order a head grows in)."""
    return [f"{prefix}-{kind}" for kind in sorted(types) for prefix in ("B", "I")]


class TokenTask:
    """Words → BIO tags; metrics are entity-level (seqeval) with the token-level report beside them."""

    name: Literal["token"] = "token"
    architecture_suffix = "ForTokenClassification"
    primary_name = ENTITY_F1
    has_behaviour_checks = False  # the text perturbations of the behaviour checks move words and tags

    @property
    def model_class(self) -> type[Any]:
        from transformers import AutoModelForTokenClassification

        return AutoModelForTokenClassification

    def label_space(self, values: Iterable[str]) -> list[str]:
        return [OUTSIDE, *type_labels(entity_types(values))]

    def extend_labels(self, old: Sequence[str], values: Iterable[str]) -> list[str]:
        known = {entity_type(tag) for tag in old}
        base = list(old) if OUTSIDE in old else [OUTSIDE, *old]
        return [*base, *type_labels(entity_types(values) - known)]

    def classes(self, values: Iterable[str]) -> set[str]:
        return entity_types(values)

    def class_labels(self, classes: Collection[str]) -> list[str]:
        return type_labels(classes)

    def strata(self, values: pd.Series) -> pd.Series:
        """The sentence's entity types, sorted and joined (``LOC+PER``), or ``O``."""
        return values.astype(str).map(lambda tags: "+".join(sorted(entity_types([tags]))) or NO_ENTITY)

    def encode(
        self,
        tokenizer: PreTrainedTokenizerBase,
        texts: Sequence[str],
        values: Sequence[str] | None,
        label2id: dict[str, int],
        max_length: int,
    ) -> Encoded:
        tags = values if values is not None else [" ".join(OUTSIDE for _ in str(t).split()) for t in texts]
        from loopline.training.token_alignment import align_tags

        aligned = align_tags(tokenizer, frame_to_sentences(texts, tags), label2id, max_length)
        targets = aligned.label_ids if values is not None else None
        return Encoded(aligned.input_ids, targets, aligned.word_starts, aligned.truncated_words)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor, label_smoothing: float) -> torch.Tensor:
        import torch.nn.functional as F

        from loopline.training.batching import IGNORE_INDEX

        flat = logits.float().reshape(-1, logits.shape[-1])
        return F.cross_entropy(
            flat, targets.reshape(-1), ignore_index=IGNORE_INDEX, label_smoothing=label_smoothing
        )

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
        from loopline.forward import word_probabilities_encoded

        words = word_probabilities_encoded(
            model,
            encoded.input_ids,
            encoded.word_starts or [],
            pad_token_id=pad_token_id,
            device=device,
            batch_size=batch_size,
        )
        tags, confidences = [], np.ones(len(words), dtype=np.float32)
        for row, probabilities in enumerate(words):
            best = probabilities.argmax(axis=-1)
            tags.append(" ".join(labels[i] for i in best))
            if len(best):
                confidences[row] = float(probabilities[np.arange(len(best)), best].min())
        return Decoded(tags, confidences)

    def metrics(
        self, true: Sequence[str], predicted: Sequence[str], confidences: np.ndarray, labels: Sequence[str]
    ) -> EvalMetrics:
        padded = [fill_to_words(str(p), len(str(t).split())) for t, p in zip(true, predicted, strict=True)]
        from loopline.evaluation.entity_metrics import token_eval_metrics

        return token_eval_metrics(true, padded, confidences, labels)

    def read_labelled(
        self, path: Path, text_column: str, label_column: str, encoding: str, label_map: dict[str, str]
    ) -> pd.DataFrame:
        del text_column, label_column  # CoNLL and token JSONL name their fields themselves
        frame = sentences_to_frame(read_tagged_file(path, encoding, strict=False))  # the contract judges rows
        if label_map:  # renames entity types: {"PER": "PERSON"}
            frame["label"] = frame["label"].map(
                lambda tags: " ".join(_rename(t, label_map) for t in tags.split())
            )
        return frame

    def validate_training(
        self,
        df: pd.DataFrame,
        cfg: ContractConfig,
        source: str,
        quarantine_dir: Path,
        *,
        docs_dir: Path | None = None,
    ) -> ContractResult:
        from loopline.contracts.validate import validate_token_data  # Great Expectations: slow to import

        return validate_token_data(df, cfg, source, quarantine_dir, docs_dir=docs_dir)

    def validate_feedback(
        self,
        df: pd.DataFrame,
        known_labels: Collection[str],
        cfg: ContractConfig,
        source: str,
        quarantine_dir: Path,
    ) -> ContractResult:
        from loopline.contracts.validate import validate_token_feedback  # Great Expectations: slow to import

        return validate_token_feedback(df, known_labels, cfg, source, quarantine_dir)

    def label_units(self, values: pd.Series) -> pd.Series:
        """One value per entity mention (its type); ``O`` stands for a sentence with none."""
        mentions = values.astype(str).map(_mention_types)
        return mentions.explode().fillna(NO_ENTITY).astype(str).reset_index(drop=True)


def _rename(tag: str, label_map: dict[str, str]) -> str:
    if tag == OUTSIDE:
        return tag
    return f"{tag[:2]}{label_map.get(tag[2:], tag[2:])}"


def _mention_types(tags: str) -> list[str]:
    return [tag[2:] for tag in tags.split() if tag.startswith("B-")] or [NO_ENTITY]
