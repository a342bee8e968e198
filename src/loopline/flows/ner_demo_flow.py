"""``ner_demo_flow``: the loop for named entities on generated sentences — bootstrap a PER/LOC/ORG tagger,
then two feedback rounds of corrected sentences.

Round 1 brings more sentences of the same kind (no drift, no retrain). Round 2 brings product reviews
with a new type, PRODUCT, where the annotators left a share of the old types ``O`` (O-label confusion):
the monitor sees novel text, the retrain grows the head by ``B-PRODUCT``/``I-PRODUCT``, fills the
confused words from the champion's confident predictions, and the gate checks every old type for
forgetting and the new one for recall before promoting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from loopline.flows import artifacts
from loopline.flows.feedback_flow import feedback_flow
from loopline.flows.monitor_flow import monitor_flow
from loopline.flows.train_flow import train_flow

ROUNDS = (
    ("1: corrected sentences, same kind", "feedback_round1"),
    ("2: product reviews, new type PRODUCT, old types partly left O", "feedback_round2"),
)


@flow(name="ner-demo")
def ner_demo_flow(files: dict[str, str], overrides: dict[str, Any]) -> dict[str, Any]:
    """Bootstrap on ``files['train']`` (CoNLL), then one import + monitor pass per feedback file (JSONL)."""
    logger = get_run_logger()
    overrides = {**overrides, "task": "token"}
    bootstrap = train_flow(files["train"], overrides=overrides)
    rounds = []
    for title, key in ROUNDS:
        logger.info("Round %s", title)
        intake = feedback_flow(files[key], overrides=overrides)
        monitor = monitor_flow(trigger="subflow", overrides=overrides)
        rounds.append({"round": title, "file": str(Path(files[key])), "intake": intake, "monitor": monitor})
    artifacts.publish_table(
        artifacts.ROUNDS_KEY, artifacts.rounds_table(rounds), "The demo's feedback rounds"
    )
    return {"bootstrap": bootstrap, "rounds": rounds}
