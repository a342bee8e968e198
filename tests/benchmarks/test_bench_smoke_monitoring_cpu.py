"""Smoke runs of the CPU speed and drift-detector benchmarks (tiny model, seconds): the harnesses
work end to end and a smoke run never appends to the real benchmarks/RESULTS.md."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.benchmarks.files import REAL_RESULTS, REPO_ROOT, digest, run_smoke

BANKING77 = REPO_ROOT.parent / "shared" / "data" / "banking77"


def _run(script: str, *args: str) -> str:
    before = digest(REAL_RESULTS)
    output = run_smoke(script, *args, timeout=300)
    after = digest(REAL_RESULTS)
    assert before == after, f"a smoke run of {script} changed benchmarks/RESULTS.md"
    return output


def test_speed_cpu_smoke_compares_loopline_with_trainer_and_the_plain_loop() -> None:
    output = _run("bench_speed_cpu.py", "--epochs", "2")
    rows = {line.split("|")[1].strip(): line for line in output.splitlines() if line.startswith("| ")}
    assert {"HF Trainer", "plain loop", "loopline train_model"} <= set(rows), output
    for loop in ("HF Trainer", "plain loop", "loopline train_model"):
        accuracy = [cell.strip() for cell in rows[loop].strip("|").split("|")][5]
        assert accuracy.endswith("%") and 0 <= float(accuracy[:-1]) <= 100, rows[loop]
    for other in ("HF Trainer", "plain loop"):
        ratio = [cell.strip() for cell in rows[f"**ratio loopline / {other}**"].strip("|").split("|")]
        assert ratio[1].startswith("**") and ratio[1].endswith("×**") and float(ratio[1][2:-3]) > 0, ratio
        assert ratio[5].endswith(" points"), ratio  # the accuracy gap beside the speed ratio


def test_speed_cpu_smoke_can_give_the_trainer_loopline_s_recipe() -> None:
    output = _run("bench_speed_cpu.py", "--no-reference", "--trainer-recipe", "loopline")
    assert "Trainer recipe `loopline`" in output
    trainer = next(line for line in output.splitlines() if line.startswith("| HF Trainer |"))
    assert float(trainer.split("|")[2]) > 0, trainer  # it trained (samples/s) with loopline's optimiser


@pytest.mark.skipif(not BANKING77.is_dir(), reason=f"BANKING77 not found at {BANKING77}")
def test_drift_smoke_prints_false_alarms_and_detection() -> None:
    output = _run("bench_drift.py", "--data", str(BANKING77))
    assert "false alarm" in output.lower() and "20%" in output


def test_drift_scores_smoke_compares_both_references() -> None:
    output = _run("bench_drift_scores.py")
    rows = {line.split("|")[1].strip(): line for line in output.splitlines() if line.startswith("| ")}
    assert {"training texts", "held-out texts"} <= set(rows)
    for name in ("training texts", "held-out texts"):
        cells = [cell.strip() for cell in rows[name].strip("|").split("|")]
        assert cells[3].endswith("%)") and cells[4].endswith("%)"), cells  # "k/5 (p%)" alarms


def test_drift_scores_without_a_model_says_which_benchmark_makes_one(tmp_path: Path) -> None:
    missing = tmp_path / "no-model"
    script = str(REPO_ROOT / "benchmarks" / "bench_drift_scores.py")
    done = subprocess.run(
        [sys.executable, script, "--data", str(tmp_path), "--model-dir", str(missing)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert f"no fine-tuned model at {missing}" in done.stderr and "bench_quality.py --seeds 13" in done.stderr
