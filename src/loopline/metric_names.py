"""Names of the metrics loopline logs on MLflow runs, shared by the code that writes them and the code
that reads them (the monitor's reference accuracy, ``loopline models``, tests), so the two cannot drift.

Metrics are grouped by a dotted prefix: ``train.*`` (the training loop), ``epoch.*`` (per epoch, with the
epoch as step), ``<eval set>.*`` (one group per evaluation set: ``test``, ``feedback``, ``regression``),
``contract.*`` (the training-data contract) and the monitor's ``window_size`` and ``drift.*``.
"""

from __future__ import annotations

# ---- training (pipeline.fit) --------------------------------------------------------------------
TRAIN_SAMPLES_PER_S = "train.samples_per_s"
TRAIN_TOKENS_PER_S = "train.tokens_per_s"
TRAIN_BEST_VAL_MACRO_F1 = "train.best_val_macro_f1"
EPOCH_FIELDS = ("train_loss", "val_accuracy", "val_macro_f1", "samples_per_s", "tokens_per_s", "seconds")


def epoch_metric(field: str) -> str:
    """``epoch.<field>``: one of :data:`EPOCH_FIELDS`, logged once per epoch (step = epoch)."""
    return f"epoch.{field}"


# ---- evaluation (pipeline.assess), one group per evaluation set ---------------------------------
ACCURACY = "accuracy"
MACRO_F1 = "macro_f1"  # the primary score of sequence classification
ENTITY_F1 = "entity_f1"  # the primary score of token classification
ECE = "ece"
LATENCY_MS_PER_TEXT = "latency_ms_per_text"


def eval_metric(eval_set: str, metric: str) -> str:
    """``<eval set>.<metric>``, e.g. ``eval_metric("feedback", MACRO_F1) == "feedback.macro_f1"``."""
    return f"{eval_set}.{metric}"


TEST_SET = "test"  # the held-out test split: the gate's primary set (evaluation.gate.PRIMARY_SET)
TEST_ACCURACY = eval_metric(TEST_SET, ACCURACY)
TEST_MACRO_F1 = eval_metric(TEST_SET, MACRO_F1)

# ---- data contract (pipeline.ingest) ------------------------------------------------------------
CONTRACT = "contract"  # the default prefix of the training-data contract's metrics, tag and artifacts
QUARANTINED_ROWS = "quarantined_rows"
TRUNCATED_ROWS = "truncated_rows"


def contract_metric(metric: str, prefix: str = CONTRACT) -> str:
    """``<prefix>.<metric>``, e.g. ``contract.quarantined_rows``."""
    return f"{prefix}.{metric}"


CONTRACT_QUARANTINED_ROWS = contract_metric(QUARANTINED_ROWS)
CONTRACT_TRUNCATED_ROWS = contract_metric(TRUNCATED_ROWS)

# ---- monitoring (pipeline.monitor) --------------------------------------------------------------
MONITOR_WINDOW_SIZE = "window_size"
DRIFT_NOVEL_SHARE = "drift.novel_share"
DRIFT_DETECTED = "drift.drift_detected"
DECAY_DETECTED = "drift.decay_detected"
# The drift report's boolean verdicts, logged as 0/1 metrics: report key → metric name.
DRIFT_FLAGS = {"drift_detected": DRIFT_DETECTED, "decay_detected": DECAY_DETECTED}
