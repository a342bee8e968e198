"""What training is given: the frames checked, the label list resolved, the rows encoded, and the
fingerprint that says whether a checkpoint belongs to this run."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import pandas as pd
from transformers import PreTrainedTokenizerBase

from loopline.config import TrainingConfig
from loopline.errors import TrainingError
from loopline.tasks import Encoded, Task
from loopline.training.batching import EncodedDataset
from loopline.training.model import check_labels, load_model_labels

# Settings that change how fast training runs, not what it computes: a resume may change them.
RUNTIME_ONLY = {"device", "num_threads", "eval_batch_size", "nproc_per_node", "nnodes", "rdzv_endpoint"}


@dataclass(frozen=True)
class PreparedData:
    """Encoded train/validation rows; validation keeps its stored labels for the task's metrics."""

    train: EncodedDataset
    val: Encoded
    val_values: list[str]
    truncated_words: int


def check_frame(df: pd.DataFrame, name: str) -> None:
    missing = [column for column in ("text", "label") if column not in df.columns]
    if missing:
        raise TrainingError(
            f"{name} lacks column(s) {missing}; it has {list(df.columns)}.",
            where=name,
            hint="Load data with loopline.data.loading.load_labelled_text (it names text and label columns).",
        )
    if df.empty:
        raise TrainingError(
            f"{name} has no rows.",
            where=name,
            hint="Check the data contract's quarantine report: every row may have been rejected.",
        )
    bad = df.index[~df["text"].map(lambda text: isinstance(text, str)) | df["label"].isna()]
    if len(bad):
        raise TrainingError(
            f"{name} has {len(bad)} rows with a missing text or label.",
            where=f"{name} rows {row_refs(df, bad)}",
            hint="Run the training-data contract first; it quarantines such rows.",
        )


def row_refs(df: pd.DataFrame, index: pd.Index, limit: int = 5) -> str:
    rows = df.loc[index[:limit], "source_row"] if "source_row" in df.columns else index[:limit]
    return ", ".join(str(row) for row in rows) + (" …" if len(index) > limit else "")


def resolve_labels(
    task: Task, train_df: pd.DataFrame, labels: list[str] | None, init_model_dir: str | None
) -> list[str]:
    values = train_df["label"].astype(str)
    if labels is None:
        if init_model_dir:
            labels = task.extend_labels(load_model_labels(init_model_dir), values)
        else:
            labels = task.label_space(values)
        return check_labels(labels, where="labels of train_df")
    labels = check_labels(labels)
    unknown = sorted(set(task.label_space(values)) - set(labels))
    if unknown:
        raise TrainingError(
            f"train_df has labels that are not in `labels`: {unknown[:10]}.",
            where="train_df column label",
            hint="Add them to `labels` (appended at the end) or pass labels=None.",
        )
    return labels


def check_val_labels(task: Task, val_df: pd.DataFrame, labels: list[str]) -> None:
    known = set(labels)
    values = val_df["label"].astype(str)
    unknown_rows = val_df.index[[not set(task.label_space([value])) <= known for value in values]]
    if len(unknown_rows):
        names = sorted(set(task.label_space(values[val_df.index.isin(unknown_rows)])) - known)
        raise TrainingError(
            f"val_df has {len(unknown_rows)} rows with labels the model will not know: {names[:10]}.",
            where=f"val_df rows {row_refs(val_df, unknown_rows)}",
            hint="Put rows of every label into the training data, or drop these rows from validation.",
        )


def prepare_data(
    task: Task,
    train_df: pd.DataFrame,
    val_df: pd.DataFrame,
    tokenizer: PreTrainedTokenizerBase,
    labels: list[str],
    max_length: int,
) -> PreparedData:
    label2id = {label: i for i, label in enumerate(labels)}
    train_values = train_df["label"].astype(str).tolist()
    val_values = val_df["label"].astype(str).tolist()
    train = task.encode(tokenizer, train_df["text"].tolist(), train_values, label2id, max_length)
    val = task.encode(tokenizer, val_df["text"].tolist(), val_values, label2id, max_length)
    assert train.targets is not None, "encoding with values gives targets"
    dataset = EncodedDataset(train.input_ids, train.targets)
    return PreparedData(dataset, val, val_values, train.truncated_words + val.truncated_words)


def fingerprint(
    cfg: TrainingConfig,
    task: Task,
    labels: list[str],
    base_model: str,
    init_model_dir: str | None,
    train_df: pd.DataFrame,
    val_df: pd.DataFrame,
) -> str:
    """Identity of a run: a checkpoint resumes only a run with the same fingerprint."""
    digest = hashlib.sha256()
    settings = {k: v for k, v in cfg.model_dump().items() if k not in RUNTIME_ONLY}
    identity = {
        "cfg": settings,
        "labels": labels,
        "base": str(base_model),
        "init": str(init_model_dir),
        **({"task": task.name} if task.name != "sequence" else {}),  # sequence runs keep their old identity
    }
    digest.update(json.dumps(identity, sort_keys=True).encode())
    for df in (train_df, val_df):
        frame = df[["text", "label"]].astype(str)
        digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()
