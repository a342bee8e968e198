"""A rank that fails fails the fit step with that rank's own error, not torchrun's exit code; a killed
caller takes its ranks with it, and the rerun resumes from the checkpoint."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from loopline.config import TrainingConfig
from loopline.errors import TrainingError
from loopline.pipeline.torchrun import TrainPlan, run_torchrun
from loopline.training.checkpoint import CHECKPOINT_FILE


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


KILLED_CALLER = """
import sys
from pathlib import Path
import pandas as pd
from loopline.config import TrainingConfig
from loopline.pipeline.torchrun import TrainPlan, run_torchrun
from loopline.training.checkpoint import CHECKPOINT_FILE
frame = pd.read_parquet(sys.argv[2])
cfg = TrainingConfig.model_validate_json(sys.argv[3])
run_torchrun(TrainPlan(frame, frame, cfg, sys.argv[1], Path(sys.argv[4]), "sequence"))
"""


def ranks_of(plan: Path) -> list[int]:
    """Processes whose command line names this plan (torchrun and its ranks)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(plan).encode() in (proc / "cmdline").read_bytes():
                found.append(int(proc.name))
        except OSError:  # ended while we looked
            continue
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux's")
def test_killing_the_caller_stops_its_ranks_and_the_rerun_resumes(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    rows = [("pay my invoice now", "a"), ("where is my parcel today", "b"), ("reset my password", "c")]
    frame = pd.DataFrame(rows * 40, columns=["text", "label"])
    frame.to_parquet(tmp_path / "frame.parquet")
    cfg = TrainingConfig(
        nproc_per_node=2, epochs=4, batch_size=8, max_length=16, num_threads=1, early_stopping_patience=0
    )
    out = tmp_path / "run"
    args = [str(tiny_model_dir), str(tmp_path / "frame.parquet"), cfg.model_dump_json(), str(out)]
    caller = subprocess.Popen([sys.executable, "-c", KILLED_CALLER, *args])
    try:
        deadline = time.monotonic() + 300
        while not (out / CHECKPOINT_FILE).is_file():  # killed after epoch 1, mid-run
            assert caller.poll() is None and time.monotonic() < deadline, "the job ended before a checkpoint"
            time.sleep(0.2)
    finally:
        caller.kill()
        caller.wait()
    plan = out / "torchrun" / "plan.json"
    deadline = time.monotonic() + 60
    while ranks_of(plan) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert ranks_of(plan) == [], "torchrun or a rank outlived the killed caller"
    assert not (out / "results.json").exists()
    saved = torch.load(out / CHECKPOINT_FILE, weights_only=True)["run_state"]["history"]

    result = run_torchrun(TrainPlan(frame, frame, cfg, str(tiny_model_dir), out, "sequence"))
    assert [m.epoch for m in result.history] == [1, 2, 3, 4] and result.world_size == 2
    assert (out / "results.json").is_file() and not (out / CHECKPOINT_FILE).exists()
    # Resumed, not started again: the epochs done before the kill are the checkpoint's, timings and all.
    assert [m.to_dict() for m in result.history[: len(saved)]] == saved
