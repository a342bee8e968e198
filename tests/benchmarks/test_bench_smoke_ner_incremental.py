"""Smoke run of the class-incremental NER benchmark: tiny random BERT, generated sentences, seconds.

It checks the harness end to end (four steps, one type each; naive, loopline, replay-only and joint
really trained and scored), the printed tables and their numbers, and that a smoke run never appends
to the real benchmarks/RESULTS.md. The masking and relabelling counts are checked on pure inputs.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest

from tests.benchmarks.files import BENCHMARKS, REAL_RESULTS, digest, rows_by_first_cell, run_smoke

STEPS = ["step 1", "step 2", "step 3", "step 4"]
METHODS = ["naive", "loopline", "replay-only", "joint"]


def _percent(cell: str) -> float:
    value = float(cell)
    assert 0.0 <= value <= 100.0, f"{cell} is not a percentage"
    return value


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, str | None]:
    before = digest(REAL_RESULTS)
    results = tmp_path_factory.mktemp("ner-incremental") / "RESULTS.md"
    return run_smoke("bench_ner_incremental.py", "--results", str(results)), results, before


def test_per_step_table_scores_every_method_in_range(smoke: tuple[str, Path, str | None]) -> None:
    output = smoke[0]
    steps = rows_by_first_cell(output, "step | new type")
    assert list(steps) == STEPS
    assert [steps[s][1] for s in STEPS] == ["PER", "LOC", "ORG", "PRODUCT"]
    assert steps["step 4"][2] == "PER+LOC+ORG+PRODUCT"
    for step in STEPS:
        cells = steps[step][3:]
        assert len(cells) == 2 * len(METHODS)
        for cell in cells:
            _percent(cell)  # joint is trained every step by default, so no "—"
    # step 1 is one shared fit: every method has the same score
    assert len(set(steps["step 1"][3:])) <= 2


def test_data_table_counts_replay_and_relabelling(smoke: tuple[str, Path, str | None]) -> None:
    rows = rows_by_first_cell(smoke[0], "step | naive train rows")
    assert list(rows) == STEPS
    assert rows["step 1"][2] == f"{rows['step 1'][1]} (0 replay)"
    for step in STEPS[1:]:
        naive, loopline, replay_only, joint, hidden, relabelled, replay_relabelled = rows[step][1:8]
        replayed = int(loopline.split("(")[1].split()[0])
        assert replayed > 0 and int(loopline.split()[0]) == int(naive) + replayed
        assert int(replay_only.split("(")[1].split()[0]) > 0
        assert int(joint) > int(naive)  # joint trains on every part seen so far
        assert int(hidden) > 0  # earlier types really are tagged O in later steps
        changed, right = (int(x) for x in relabelled.replace("(", " ").replace(")", " ").split())
        assert 0 <= right <= changed
        assert int(replay_relabelled) >= 0  # the replay sample went through relabel_outside too


def test_final_table_lists_methods_and_published_and_a_verdict(smoke: tuple[str, Path, str | None]) -> None:
    output = smoke[0]
    final = rows_by_first_cell(output, "method, after all steps")
    assert set(METHODS) <= set(final)
    assert final["CFNER (Zheng et al., 2022), published"][1:3] == ["80.9", "79.1"]
    assert final["ExtendNER (Monaikul et al., 2021), published"][1:3] == ["76.4", "73.0"]
    steps = rows_by_first_cell(output, "step | new type")
    for column, name in enumerate(METHODS):
        assert _percent(final[name][1]) == float(steps["step 4"][3 + 2 * column])
        _percent(final[name][2])
    types = rows_by_first_cell(output, "type")
    assert len(types) == 4 and all("→" in types["PER"][i] for i in (1, 2, 3))
    assert (
        "goal loopline ≥ 81 micro F1:" in output and "O-label repair: loopline against replay-only" in output
    )


def test_smoke_writes_only_where_told(smoke: tuple[str, Path, str | None]) -> None:
    _, results, before = smoke
    written = results.read_text(encoding="utf-8")
    assert written.startswith("# Benchmark results") and "## bench_ner_incremental" in written
    assert "(SMOKE)" in written and "| step 4 | PRODUCT |" in written
    assert digest(REAL_RESULTS) == before, "a smoke run must not append to benchmarks/RESULTS.md"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        return importlib.import_module("bench_ner_incremental")
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_keep_types_sets_other_types_to_outside(bench: ModuleType) -> None:
    labels = pd.Series(["B-PER I-PER O B-LOC", "B-ORG O B-MISC I-MISC"])
    assert bench.keep_types(labels, ["LOC"]).tolist() == ["O O O B-LOC", "O O O O"]
    assert bench.keep_types(labels, ["PER", "MISC"]).tolist() == ["B-PER I-PER O O", "O O B-MISC I-MISC"]


def test_right_words_counts_only_changes_to_the_gold_tag(bench: ModuleType) -> None:
    before = pd.Series(["O O O B-LOC"])
    after = pd.Series(["B-PER I-PER B-ORG B-LOC"])  # two right, one wrong (gold O), one unchanged
    gold = pd.Series(["B-PER I-PER O B-LOC"])
    assert bench._right_words(before, after, gold) == 2
