"""``demo_flow``: the whole loop on synthetic data — bootstrap, then three feedback rounds.

Round 1 brings in-distribution feedback (no drift, no retrain), round 2 drifted feedback with a
new intent (drift → continual retrain → promoted), round 3 a corrupted batch (contract rejects it,
quarantined, no retrain). Round 4 is served: the service runs on the champion, traffic in a new
wording goes through ``/predict`` and most labels come back through ``/feedback``; the monitor finds
drift on the served window, retrains, and the service swaps to the new version by itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from prefect import flow, get_run_logger

from loopline.feedback.store import FeedbackStore
from loopline.flows import artifacts
from loopline.flows.common import flow_settings
from loopline.flows.feedback_flow import feedback_flow
from loopline.flows.monitor_flow import monitor_flow
from loopline.flows.train_flow import train_flow
from loopline.pipeline.served_round import send_traffic
from loopline.serving.background import serve_in_background
from loopline.serving.client import ServiceClient

SERVED_ROUND = "4: served traffic, new wording"
LABEL_SHARE = 0.8  # of served predictions whose users send the right label back
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
    logger.info("Round %s", SERVED_ROUND)
    rounds.append(served_round(files["served_traffic"], overrides))
    artifacts.publish_table(
        artifacts.ROUNDS_KEY, artifacts.rounds_table(rounds), "The demo's feedback rounds"
    )
    return {"bootstrap": bootstrap, "rounds": rounds}


def served_round(path: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """Serve the champion, send traffic and labels through HTTP, monitor, and watch the service follow."""
    # The demo's rounds are minutes apart: no cooldown, and a service that checks the alias every second.
    overrides = {
        **overrides,
        "monitor": {**overrides.get("monitor", {}), "cooldown_hours": 0},
        "serve": {**overrides.get("serve", {}), "poll_seconds": 1.0, "api_key": None},
    }
    settings = flow_settings(None, overrides)
    with serve_in_background(settings) as url:
        client = ServiceClient(url)
        try:
            served_first = str(client.model()["version"])
            traffic = send_traffic(client, pd.read_csv(path), label_share=LABEL_SHARE)
            client.wait_logged(traffic.predictions)
            monitor = monitor_flow(trigger="subflow", overrides=overrides)
            retrain = monitor.get("retrain_result") or {}
            promoted = str(retrain["version"]) if retrain.get("status") == "promoted" else None
            followed = client.wait_for_version(promoted) if promoted else None
            model = client.model()
        finally:
            client.close()
    with FeedbackStore(settings.resolved_feedback_db_url) as store:
        batches = [store.get_batch(batch_id) for batch_id in sorted(traffic.batch_ids)]
        quarantined = sum(len(store.quarantined_feedback(batch_id)) for batch_id in traffic.batch_ids)
    return {
        "round": SERVED_ROUND,
        "file": str(Path(path)),
        "intake": {
            "batch_status": ", ".join(f"{b.id} {b.status}" for b in batches if b) or "-",
            "accepted": traffic.labelled - quarantined,
            "quarantined": quarantined,
        },
        "monitor": monitor,
        "served": {
            "predictions": traffic.predictions,
            "labelled": traffic.labelled,
            "flagged": traffic.flagged,
            "accuracy": traffic.accuracy,
            "answered_by": dict(traffic.versions),
            "served_first": served_first,
            "promoted": promoted,
            "service_followed": followed,
            "served_now": model.get("version"),
            "runtime": (model.get("runtime") or {}).get("used"),
        },
    }
