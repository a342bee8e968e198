"""DDP pieces that need no process group: the sharded sampler, the launch command, results read back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from loopline.config import TrainingConfig, load_settings
from loopline.pipeline.torchrun import torchrun_command
from loopline.tasks import get_task
from loopline.training.batching import LengthGroupedSampler
from loopline.training.distributed import DistributedLengthGroupedSampler, Ranks
from loopline.training.inputs import fingerprint
from loopline.training.trainer import EpochMetrics, TrainResult


@pytest.mark.parametrize(("rows", "batch", "world"), [(100, 8, 2), (37, 8, 2), (50, 6, 3), (9, 4, 4)])
def test_rank_shards_partition_every_global_batch(rows: int, batch: int, world: int) -> None:
    lengths = np.random.default_rng(0).integers(3, 60, rows)
    single = LengthGroupedSampler(lengths, batch, seed=5)
    single.set_epoch(2)
    shards = []
    for rank in range(world):
        sampler = DistributedLengthGroupedSampler(lengths, batch, 5, Ranks(rank, world))
        sampler.set_epoch(2)
        shards.append(sampler.batches())
    assert all(len(per_rank) == len(single) for per_rank in shards)  # every rank takes every step
    for step, global_batch in enumerate(single.batches()):
        taken = [index for per_rank in shards for index in per_rank[step]]
        assert all(per_rank[step] for per_rank in shards)  # no empty shard, even in a short last batch
        if len(global_batch) >= world:
            assert sorted(taken) == sorted(global_batch)
        else:
            assert set(taken) == set(global_batch)


def test_one_node_launches_standalone_and_several_need_a_rendezvous(tmp_path: Path) -> None:
    one = torchrun_command(TrainingConfig(nproc_per_node=2), tmp_path / "plan.json", "run1")
    assert one[1:5] == ["-m", "torch.distributed.run", "--nproc-per-node=2", "--standalone"]
    assert one[-4:] == ["-m", "loopline.pipeline.torchrun", "--plan", str(tmp_path / "plan.json")]
    several = TrainingConfig(nproc_per_node=8, nnodes=2, rdzv_endpoint="head:29400")
    command = torchrun_command(several, tmp_path / "plan.json", "run1")
    assert "--nnodes=2" in command and "--rdzv-endpoint=head:29400" in command
    assert "--rdzv-id=run1" in command and "--standalone" not in command
    with pytest.raises(ValidationError, match="rdzv_endpoint"):
        TrainingConfig(nnodes=2)


def test_nproc_is_a_setting_and_a_resume_may_change_it(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path, training={"nproc_per_node": 3, "epochs": None})
    assert settings.training.processes == 3 and settings.training.epochs == TrainingConfig().epochs
    frame = pd.DataFrame({"text": ["a b", "c d"], "label": ["x", "y"]})
    identity = [
        fingerprint(cfg, get_task("sequence"), ["x", "y"], "base", None, frame, frame)
        for cfg in (TrainingConfig(), settings.training, TrainingConfig(seed=99))
    ]
    assert identity[0] == identity[1] != identity[2]  # a checkpoint resumes on another process count


def test_results_json_reads_back_as_the_result(tmp_path: Path) -> None:
    epoch = EpochMetrics(1, 0.5, 0.8, 0.7, 10.0, 100.0, 3.0)
    result = TrainResult(tmp_path / "model", ["a", "b"], [epoch], 1, 0.7, 1, False, 10.0, 100.0, "cpu", 40)
    saved = {**result.to_dict(), "params": {"epochs": 1}}
    assert TrainResult.from_dict(saved) == result
