"""Smoke run of the domain-incremental NER benchmark: tiny random BERT, generated CoNLL files, seconds.

It checks the harness end to end (news, then two domains through the real intake → plan_retrain → fit →
gate → finish_retrain path; naive and joint trained and scored), the printed tables and their numbers,
and that a smoke run writes only where it is told. The CoNLL writer is checked against loopline's reader.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest

from tests.benchmarks.files import BENCHMARKS, REAL_RESULTS, REPO_ROOT, digest, rows_by_first_cell, run_smoke

ROUNDS = ["0 news", "1 politics", "2 science"]
DOMAINS = ["news", "politics", "science"]


def _percent(cell: str) -> float:
    value = float(cell)
    assert 0.0 <= value <= 100.0, f"{cell} is not a percentage"
    return value


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, str | None, set[Path]]:
    before = digest(REAL_RESULTS)
    tmp = tmp_path_factory.mktemp("ner-domains")
    results = tmp / "RESULTS.md"
    untracked_before = _untracked()
    scores = tmp / "scores.json"
    output = run_smoke(
        "bench_ner_domains.py", "--results", str(results), "--scores", str(scores), env={"TMPDIR": str(tmp)}
    )
    return output, results, before, _untracked() - untracked_before


def _untracked() -> set[Path]:
    """Files git sees as new in the repository (ignored ones included), to catch stray writes; tool caches
    and ``.loopline/bench/`` (where real benchmark runs, maybe running beside this test, write) aside."""
    listed = subprocess.run(
        ["git", "ls-files", "--others"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    skip = (".pytest_cache", ".ruff_cache", ".mypy_cache", ".loopline/bench/", "__pycache__")
    return {Path(p) for p in listed if not p.startswith(skip) and "__pycache__" not in p}


def test_rounds_table_counts_rows_and_replay(smoke: tuple[str, Path, str | None, set[Path]]) -> None:
    rounds = rows_by_first_cell(smoke[0], "round")
    assert list(rounds) == ROUNDS
    for name in ROUNDS:
        rows_in, accepted, quarantined = (int(x) for x in rounds[name][1].split(" / "))
        assert rows_in == accepted + quarantined and accepted > 0
        trained = int(rounds[name][3])
        assert 0 < trained <= accepted
        total, replay = rounds[name][4].replace("(", " ").split()[:2]
        assert int(total) == trained + int(replay)
        assert int(rounds[name][6]) >= 1  # epochs run
        assert rounds[name][8].startswith(("passed", "FAILED"))  # the gate really ran
    assert rounds["0 news"][4].endswith("(0 replay)")
    for name in ROUNDS[1:]:
        assert int(rounds[name][2].lstrip("+")) > 0  # each domain brings new entity types
        assert int(rounds[name][4].split("(")[1].split()[0]) > 0  # the replay buffer was sampled
        assert int(rounds[name][7]) == int(rounds[name][3])  # naive trains on the same domain rows


def test_f1_tables_score_every_seen_domain(smoke: tuple[str, Path, str | None, set[Path]]) -> None:
    for method in ("loopline", "naive"):
        table = rows_by_first_cell(smoke[0], f"{method}: after round")
        assert list(table) == ROUNDS
        for r, name in enumerate(ROUNDS):
            cells = table[name][1:]
            for seen in range(len(DOMAINS)):
                if seen <= r:
                    _percent(cells[seen])
                else:
                    assert cells[seen] == "—"  # not seen yet: not scored
            _percent(cells[-1])  # the union of the seen domains


def test_final_table_has_joint_and_verdicts(smoke: tuple[str, Path, str | None, set[Path]]) -> None:
    output = smoke[0]
    final = rows_by_first_cell(output, "domain")
    assert list(final) == [*DOMAINS, "all seen"]
    loopline = rows_by_first_cell(output, "loopline: after round")
    for r, name in enumerate(DOMAINS):
        test_rows, learned, last, drop, _, joint, gap = final[name][1:]
        assert int(test_rows) > 0
        assert _percent(learned) == float(loopline[ROUNDS[r]][1 + r])
        assert _percent(last) == float(loopline[ROUNDS[-1]][1 + r])
        assert float(drop) == pytest.approx(float(last) - float(learned), abs=0.11)
        assert float(gap) == pytest.approx(float(last) - _percent(joint), abs=0.11)
    assert int(final["all seen"][1]) == sum(int(final[d][1]) for d in DOMAINS)
    costs = rows_by_first_cell(output, "method")
    assert set(costs) == {"loopline", "naive", "joint"}
    assert all(int(costs[m][1].replace(",", "")) > 0 for m in costs)
    assert "- within 3 points of joint on every domain: " in output
    assert "- no earlier domain dropping more than 3 points: " in output
    for line in output.splitlines():
        if line.startswith(("- within 3 points", "- no earlier domain")):
            assert ": met (" in line or ": NOT met (" in line


def test_smoke_writes_only_where_told(smoke: tuple[str, Path, str | None, set[Path]]) -> None:
    _, results, before, new_files = smoke
    written = results.read_text(encoding="utf-8")
    assert written.startswith("# Benchmark results") and "## bench_ner_domains" in written
    assert "(SMOKE)" in written and "| 2 science |" in written
    assert digest(REAL_RESULTS) == before, "a smoke run must not append to benchmarks/RESULTS.md"
    assert not new_files, f"the smoke run wrote into the repository: {sorted(new_files)[:5]}"


def test_combine_takes_the_mean_of_runs(smoke: tuple[str, Path, str | None, set[Path]]) -> None:
    """--combine reads --scores files: one run's file gives back its final table; a second run whose
    joint scored 10 points more halves the gap's shift into the mean and lists both runs."""
    output, results, _, _ = smoke
    final = rows_by_first_cell(output, "domain")
    first = results.parent / "scores.json"
    scores = json.loads(first.read_text(encoding="utf-8"))
    assert scores["domains"] == DOMAINS
    second = results.parent / "scores-shifted.json"
    scores["joint"] = {name: value + 0.1 for name, value in scores["joint"].items()}
    second.write_text(json.dumps({**scores, "seed": 99}), encoding="utf-8")
    combined = results.parent / "combined.md"
    output = run_smoke(
        "bench_ner_domains.py", "--combine", str(first), str(second), "--results", str(combined)
    )
    mean = rows_by_first_cell(output, "domain")
    assert list(mean) == [*DOMAINS, "all seen"]
    for name in DOMAINS:
        learned, last, _, joint, gap, per_run = mean[name][1:]
        assert learned.split(" ± ")[0] == final[name][2] and learned.endswith("± 0.0")
        assert last == f"{final[name][3]} ± 0.0"
        assert float(joint.split(" ± ")[0]) == pytest.approx(float(final[name][6]) + 5, abs=0.11)
        assert joint.endswith("± 5.0")
        assert float(gap) == pytest.approx(float(final[name][7]) - 5, abs=0.11)
        one, two = (float(g) for g in per_run.split(" / "))
        assert one == pytest.approx(float(final[name][7]), abs=0.11) and two == pytest.approx(
            one - 10, abs=0.11
        )
    assert (
        "seeds 13, 99" in output and combined.read_text(encoding="utf-8").count("## bench_ner_domains") == 1
    )
    assert "- within 3 points of joint on every domain: " in output


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "cannot read"), ("{", "cannot read"), ('{"seed": 1}', "is not a bench_ner_domains scores file")],
)
def test_combine_rejects_what_is_not_a_scores_file(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "scores.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "bench_ner_domains.py"), "--combine", str(path), "--no-write"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1 and message in done.stderr and "Traceback" not in done.stderr
    assert str(path) in done.stderr


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        return importlib.import_module("bench_ner_domains")
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_write_conll_reads_back_with_loopline(bench: ModuleType, tmp_path: Path) -> None:
    from loopline.data.tagged import read_conll, sentences_to_frame

    frame = pd.DataFrame(
        {
            "text": ["Ada Lovelace wrote .", "in Paris"],
            "label": ["B-scientist I-scientist O O", "O B-location"],
        }
    )
    back = sentences_to_frame(read_conll(bench.write_conll(frame, tmp_path / "x.conll")))
    assert back[["text", "label"]].equals(frame)


def test_gold_rows_restores_the_gold_tags(bench: ModuleType) -> None:
    gold = pd.DataFrame({"text": ["a b", "c d"], "label": ["B-x O", "O B-y"]})
    relabelled = pd.DataFrame({"text": ["c d"], "label": ["B-z B-y"]})
    assert bench._gold_rows(relabelled, gold).to_dict("list") == {"text": ["c d"], "label": ["O B-y"]}
