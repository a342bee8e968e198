"""Smoke run of the NER quality benchmark: tiny random BERT, generated sentences, seconds.

It checks the harness end to end (one real fit and score per seed), that the section says what ran,
that its numbers are percentages, and that a smoke run never appends to the real benchmarks/RESULTS.md.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.benchmarks.files import REAL_RESULTS, digest, run_smoke

SEEDS = ["0", "1"]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, str | None]:
    before = digest(REAL_RESULTS)
    results = tmp_path_factory.mktemp("ner") / "RESULTS.md"
    return run_smoke("bench_ner.py", "--seeds", *SEEDS, "--results", str(results)), results, before


def test_one_row_per_seed_with_percentages(smoke: tuple[str, Path, str | None]) -> None:
    lines = smoke[0].splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| seed | entity micro F1 %"))
    columns = [c.strip() for c in lines[header].strip("|").split("|")]
    rows = [
        [c.strip() for c in line.strip("|").split("|")]
        for line in lines[header + 2 : header + 2 + len(SEEDS)]
    ]
    assert [row[0] for row in rows] == SEEDS
    for row in rows:
        for name in ("entity micro F1 %", "token micro F1 %", "entity macro F1 %"):
            assert 0.0 <= float(row[columns.index(name)]) <= 100.0
        assert row[columns.index("best epoch")] == "1"
    token = [float(row[columns.index("token micro F1 %")]) for row in rows]
    assert max(token) > 0.0, "the token-level report scored nothing: the model was not evaluated"


def test_section_says_what_ran_and_judges_both_goals(smoke: tuple[str, Path, str | None]) -> None:
    output = smoke[0]
    assert "tiny random BERT (smoke); 1 epochs" in output and "max length 64" in output
    summary = re.search(r"entity micro F1 ([\d.]+) ± ([\d.]+)%\*\* \(goal 88\.0: (met|not met)\)", output)
    assert summary, output
    assert re.search(r"token micro F1 [\d.]+ ± [\d.]+%\*\* \(goal 97\.3: (met|not met)\)", output)


def test_smoke_writes_only_where_told(smoke: tuple[str, Path, str | None]) -> None:
    _, results, before = smoke
    assert results.read_text(encoding="utf-8").count("## bench_ner") == 1
    assert digest(REAL_RESULTS) == before
