"""``demo_flow``: the whole loop on synthetic data — bootstrap, then three feedback rounds.

Round 1 brings in-distribution feedback (no drift, no retrain), round 2 drifted feedback with a
new intent (drift → continual retrain → promoted), round 3 a corrupted batch (contract rejects it,
quarantined, no retrain).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from flows.feedback_flow import feedback_flow
from flows.monitor_flow import monitor_flow
from flows.train_flow import train_flow

ROUNDS = (
    ("1: in-distribution feedback", "feedback_round1"),
    ("2: drifted feedback + new intent", "feedback_round2"),
    ("3: corrupted batch", "feedback_round3"),
)


@flow(name="demo")
def demo_flow(files: dict[str, str], overrides: dict[str, Any]) -> dict[str, Any]:
    """Bootstrap on ``files['train']``, then one import + monitor pass per feedback file."""
    logger = get_run_logger()
    bootstrap = train_flow(files["train"], overrides=overrides)
    rounds = []
    for title, key in ROUNDS:
        logger.info("Round %s", title)
        intake = feedback_flow(files[key], overrides=overrides)
        monitor = monitor_flow(trigger="subflow", overrides=overrides)
        rounds.append({"round": title, "file": str(Path(files[key])), "intake": intake, "monitor": monitor})
    return {"bootstrap": bootstrap, "rounds": rounds}
