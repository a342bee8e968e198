"""Smoke runs of the GPU speed and loop-overhead benchmarks: tiny model, CPU, seconds.

They check the harness end to end (loopline's trainer, HF Trainer, the bare library steps and
the Prefect flow are really called), the printed tables, and that a smoke run never appends to
the real benchmarks/RESULTS.md.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.benchmarks.files import REAL_RESULTS, digest, run_smoke, table


def _run(script: str, *args: str, timeout: int = 120) -> str:
    return run_smoke(script, *args, without=("PREFECT_API_URL",), timeout=timeout)


def test_speed_gpu_smoke_on_cpu_compares_loopline_with_trainer(tmp_path: Path) -> None:
    pytest.importorskip("accelerate", reason="HF Trainer needs accelerate (not yet a dev dependency)")
    before = digest(REAL_RESULTS)
    results = tmp_path / "RESULTS.md"
    output = _run("bench_speed_gpu.py", "--device", "cpu", "--results", str(results))
    header, *body = table(output, "model")
    assert header == [
        "model",
        "params (M) total / non-emb",
        "steps",
        "loopline real tokens/s",
        "MFU (6·N_total)",
        "MFU (6·N_non-emb)",
        "HF Trainer real tokens/s",
        "loopline / Trainer",
        "padding share loopline / Trainer",
        "peak GiB loopline / Trainer",
        "MFU target",
        "ratio target (≥1.5×)",
    ]
    assert [row[0] for row in body] == ["tiny"]
    row = dict(zip(header, body[0], strict=True))
    assert row["steps"] == "2"
    assert float(row["loopline real tokens/s"].replace(",", "")) > 0
    assert float(row["HF Trainer real tokens/s"].replace(",", "")) > 0
    assert float(row["loopline / Trainer"].rstrip("×")) > 0
    assert row["MFU (6·N_total)"] == "n/a", "no peak is known for a CPU"
    written = results.read_text(encoding="utf-8")
    assert written.startswith("# Benchmark results") and "## bench_speed_gpu" in written
    assert "device: CPU" in written
    assert digest(REAL_RESULTS) == before, "a smoke run must not append to benchmarks/RESULTS.md"


@pytest.mark.parametrize(
    ("flags", "prefect_api"),
    [([], "a temporary server started by each process"), (["--prefect-server"], "a long-lived `prefect")],
    ids=["temporary-server", "long-lived-server"],
)
def test_overhead_smoke_times_bare_and_prefect_stages_without_touching_results(
    flags: list[str], prefect_api: str
) -> None:
    before = digest(REAL_RESULTS)
    output = _run("bench_overhead.py", *flags, timeout=300)
    assert f"- Prefect API: {prefect_api}" in output
    header, *body = table(output, "stage (s)")
    assert header == ["stage (s)", "bare library", "Prefect flow + MLflow"]
    stages = {row[0]: row[1:] for row in body}
    for stage in ("imports", "ingest", "train", "gate"):
        assert float(stages[stage][0]) > 0 and float(stages[stage][1]) > 0, stage
    assert stages["register"][0] == "–" and float(stages["register"][1]) > 0
    assert stages["epochs run"] == ["1", "1"]
    wall = next(values for name, values in stages.items() if name.startswith("**process wall"))
    assert all(float(v.strip("*")) > 0 for v in wall)
    overhead_header, *overhead_rows = table(output, "basis")
    assert overhead_header[0] == "basis" and "overhead" in overhead_header
    assert len(overhead_rows) == 3  # one-shot process, first pass in-process, orchestration-only costs
    for row in overhead_rows:
        float(row[overhead_header.index("overhead")].rstrip("%"))
    assert "Appended to" not in output
    assert digest(REAL_RESULTS) == before, "a smoke run must not append to benchmarks/RESULTS.md"
