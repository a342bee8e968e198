"""A rank that fails fails the fit step with that rank's own error, not torchrun's exit code."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from loopline.config import TrainingConfig
from loopline.errors import TrainingError
from loopline.pipeline.torchrun import TrainPlan, run_torchrun


def test_a_failed_rank_raises_its_error(tmp_path: Path) -> None:
    frame = pd.DataFrame({"text": ["pay my invoice", "where is my parcel"] * 4, "label": ["a", "b"] * 4})
    plan = TrainPlan(
        frame,
        frame,
        TrainingConfig(nproc_per_node=2, epochs=1, num_threads=1),
        str(tmp_path / "no-such-model"),
        tmp_path / "run",
        "sequence",
    )
    with pytest.raises(TrainingError, match=r"failed on rank [01]: .*no-such-model") as raised:
        run_torchrun(plan)
    assert "torchrun exited" not in str(raised.value)
    assert list((tmp_path / "run" / "torchrun").glob("rank-*.error.json"))
