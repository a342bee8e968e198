"""Frozen splits of a dataset snapshot, read back by reference (the snapshot version)."""

from __future__ import annotations

from loopline.config import Settings
from loopline.data.snapshots import load_snapshot
from loopline.data.splits import Splits, load_or_create_splits
from loopline.tasks import get_task


def load_splits(settings: Settings, version: str) -> Splits:
    """The train/validation/test splits of snapshot ``version``, created on first use, frozen afterwards."""
    snapshot, frame = load_snapshot(settings.data_dir, version)
    strata = get_task(settings.task).strata
    return load_or_create_splits(
        snapshot, frame, settings.split, settings.training.seed, settings.data_dir, strata
    )
