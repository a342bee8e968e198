"""MLflow pyfunc wrapper of a fine-tuned transformers text classifier (sequence or token task).

This file is logged with each model as MLflow "model code" (``python_model=<path of this file>``):
MLflow stores the source next to the weights and executes it when the model is loaded. Loading
therefore needs only mlflow, pandas, torch and transformers, not loopline, and there is no pickled
class to break when loopline's modules move. Keep it self-contained: no ``loopline`` imports.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel

TEXT_COLUMN = "text"
DEFAULT_BATCH_SIZE = 64
DEFAULT_MAX_LENGTH = 64  # loopline's training default; log_model passes the real one in model_config
#: Words and single punctuation marks of raw text; the same rule as ``loopline.data.tagged._TOKEN`` (a
#: test keeps them equal: this file may not import loopline).
WORDS = re.compile(r"\w+(?:[-'’]\w+)*|[^\w\s]", re.UNICODE)


def output_example(labels: Sequence[str], rows: int, token_task: bool) -> pd.DataFrame:
    """What ``predict`` returns, for the logged signature."""
    if token_task:
        span = {"text": "Paris", "start": 0, "end": 5, "type": "LOC", "score": 1.0}
        return pd.DataFrame({"entities": [[span]] * rows})
    return pd.DataFrame({"label": [labels[0] if labels else ""] * rows, "confidence": 1.0})


def _spans(
    text: str, words: list[re.Match[str]], tags: list[str], scores: list[float]
) -> list[dict[str, Any]]:
    """BIO tags of words → entity spans with character offsets (a stray ``I-`` opens an entity)."""
    spans: list[dict[str, Any]] = []
    run: list[int] = []
    kind = ""
    for i, tag in enumerate([*tags, "O"]):
        if run and not (tag.startswith("I-") and tag[2:] == kind):
            start, end = words[run[0]].start(), words[run[-1]].end()
            spans.append(
                {
                    "text": text[start:end],
                    "start": start,
                    "end": end,
                    "type": kind,
                    "score": min(scores[j] for j in run),
                }
            )
            run = []
        if tag != "O" and not run:
            kind = tag[2:]
            run = [i]
        elif run:
            run.append(i)
    return spans


def _to_texts(model_input: Any) -> list[str]:
    """Accept a DataFrame with a ``text`` column (or one column), a Series, a list, or one string."""
    if isinstance(model_input, pd.DataFrame):
        if TEXT_COLUMN in model_input.columns:
            column = model_input[TEXT_COLUMN]
        elif model_input.shape[1] == 1:
            column = model_input.iloc[:, 0]
        else:
            raise ValueError(
                f"Input DataFrame needs a '{TEXT_COLUMN}' column; got columns {list(model_input.columns)}."
            )
        values: Sequence[Any] = column.tolist()
    elif isinstance(model_input, pd.Series):
        values = model_input.tolist()
    elif isinstance(model_input, np.ndarray):
        values = model_input.ravel().tolist()
    elif isinstance(model_input, str):
        values = [model_input]
    elif isinstance(model_input, dict) and TEXT_COLUMN in model_input:
        raw = model_input[TEXT_COLUMN]
        values = [raw] if isinstance(raw, str) else list(raw)
    else:
        values = list(model_input)
    return ["" if value is None else str(value) for value in values]


class TextClassifierModel(PythonModel):
    """Predicts ``label`` and ``confidence`` (top softmax probability) for each input text; a token
    (NER) model predicts ``entities`` instead: a list of ``{text, start, end, type, score}`` per text,
    offsets into the raw text, ``score`` the lowest tag probability of the entity's words.

    ``model_config`` (set when logging, overridable per call through ``params``) may hold ``max_length``
    (tokens per text, as in training) and ``batch_size``.
    """

    def load_context(self, context: Any) -> None:
        from transformers import (
            AutoConfig,
            AutoModelForSequenceClassification,
            AutoModelForTokenClassification,
            AutoTokenizer,
        )

        model_dir = context.artifacts["model"]
        # No torch.set_num_threads here: MLflow loads this model inside any process that logs it
        # (input-example validation), and a process-wide thread change there slowed later training.
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        architectures = AutoConfig.from_pretrained(model_dir).architectures or []
        self.token_task = any(arch.endswith("ForTokenClassification") for arch in architectures)
        auto = AutoModelForTokenClassification if self.token_task else AutoModelForSequenceClassification
        self.model = auto.from_pretrained(model_dir)
        self.model.to("cpu").eval()
        id2label = self.model.config.id2label
        self.labels = [str(id2label[i]) for i in sorted(id2label)]
        config = dict(getattr(context, "model_config", None) or {})
        self.max_length = int(config.get("max_length", DEFAULT_MAX_LENGTH))
        self.batch_size = int(config.get("batch_size", DEFAULT_BATCH_SIZE))

    # A DataFrame hint: MLflow 3 reads the hint of ``predict``; with DataFrame it infers nothing and warns
    # about nothing, and the logged signature (a ``text`` column) does the validation.
    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        import torch

        params = params or {}
        batch_size = int(params.get("batch_size") or self.batch_size)
        max_length = int(params.get("max_length") or self.max_length)
        texts = _to_texts(model_input)
        if self.token_task:
            return pd.DataFrame({"entities": self._entities(texts, batch_size, max_length)})
        probabilities = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        order = np.argsort([len(text) for text in texts], kind="stable")  # similar lengths pad less
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                index = order[start : start + batch_size]
                encoded = self.tokenizer(
                    [texts[i] for i in index],
                    padding=True,
                    truncation=True,
                    max_length=max_length,
                    return_tensors="pt",
                )
                logits = self.model(**encoded).logits.float()
                probabilities[index] = torch.softmax(logits, dim=-1).numpy()
        best = probabilities.argmax(axis=1) if len(texts) else np.zeros(0, dtype=int)
        return pd.DataFrame(
            {
                "label": [self.labels[i] for i in best],
                "confidence": probabilities[np.arange(len(texts)), best].astype(np.float64),
            }
        )

    def _entities(self, texts: list[str], batch_size: int, max_length: int) -> list[list[dict[str, Any]]]:
        import torch

        out: list[list[dict[str, Any]]] = []
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                chunk = texts[start : start + batch_size]
                words = [list(WORDS.finditer(text)) for text in chunk]
                encoded = self.tokenizer(
                    [[m.group() for m in w] or [""] for w in words],
                    is_split_into_words=True,
                    padding=True,
                    truncation=True,
                    max_length=max_length,
                    return_tensors="pt",
                )
                probabilities = torch.softmax(self.model(**encoded).logits.float(), dim=-1).numpy()
                for row, (text, found) in enumerate(zip(chunk, words, strict=True)):
                    first: dict[int, int] = {}
                    for position, word in enumerate(encoded.word_ids(row)):
                        if word is not None and word not in first:
                            first[word] = position
                    kept = [i for i in range(len(found)) if i in first]  # words past max_length: none
                    best = [int(probabilities[row, first[i]].argmax()) for i in kept]
                    tags = [self.labels[b] for b in best]
                    scores = [float(probabilities[row, first[i], b]) for i, b in zip(kept, best, strict=True)]
                    out.append(_spans(text, found[: len(kept)], tags, scores))
        return out


# Executed as model code by MLflow (under a generated module name), register the model object.
# Imported as ``loopline.registry.pyfunc`` this does nothing, so importing loopline has no side effect.
if not __name__.startswith("loopline."):
    set_model(TextClassifierModel())
