"""Named-entity recognition through the README's commands, each its own process (tiny model, CoNLL and
token JSONL files from the NER demo generator): contract, train, evaluate, batch scoring, feedback with a
new entity type, and a retrain that grows the head by B-/I- rows."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from loopline.data.demo_ner import ner_round, save_conll, save_token_jsonl
from loopline.model_files import read_labels
from tests.cli.conftest import Cli, tiny_toml

NER_TOML = 'task = "token"\n'


@pytest.fixture()
def ner_project(tmp_path: Path, tiny_model_dir: Path) -> Path:
    project = tmp_path / "ner"
    project.mkdir()
    (project / "loopline.toml").write_text(NER_TOML + tiny_toml(tiny_model_dir))
    save_conll(ner_round("base", 300, seed=1), project / "train.conll")
    save_conll(ner_round("heldout_base", 60, seed=2), project / "other.conll")
    save_token_jsonl(ner_round("new_type", 120, seed=3), project / "corrections.jsonl")
    with (project / "broken.jsonl").open("w", encoding="utf-8") as out:
        for sentence in ner_round("base", 40, seed=4):
            out.write(json.dumps({"tokens": list(sentence.tokens), "tags": list(sentence.tags)}) + "\n")
        out.write(json.dumps({"tokens": ["Paris", "is", "nice"], "tags": ["I-LOC", "O", "O"]}) + "\n")
        out.write(json.dumps({"tokens": ["Rome", "and"], "tags": ["B-LOC", "O", "O"]}) + "\n")
    pd.DataFrame({"text": ["Angela Merkel visited Paris, France.", "nothing to see"]}).to_csv(
        project / "texts.csv", index=False
    )
    return project


def test_ner_loop_from_the_command_line(ner_project: Path, tmp_path: Path, prefect_api: str) -> None:
    cli = Cli(cwd=ner_project, user_home=tmp_path / "user", prefect_api=prefect_api)

    checked = cli.ok("validate", "broken.jsonl")  # the token contract: bad rows quarantined with reasons
    assert "2 quarantined" in checked.output or "quarantined: 2" in checked.output, checked.explain()
    reasons = pd.concat(pd.read_csv(p) for p in (ner_project / ".loopline" / "quarantine").glob("*.csv"))
    assert reasons["reason"].str.contains("does not continue").any()
    assert reasons["reason"].str.contains("token").any()

    cli.ok("train", "--data", "train.conll")
    model_dir = next((ner_project / ".loopline" / "runs").glob("*/model"))
    assert read_labels(model_dir) == ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    evaluated = cli.ok("evaluate", "--data", "other.conll")
    assert "entity_f1" in evaluated.output, evaluated.explain()
    assert "production" in cli.ok("models").output

    cli.ok("predict", "texts.csv", "--out", "tags.csv")
    scored = pd.read_csv(ner_project / "tags.csv")
    words = scored["words"].str.split().str.len()
    assert (scored["label"].str.split().str.len() == words).all()  # one tag per word of the split text
    assert scored["words"].iloc[0] == "Angela Merkel visited Paris , France ."
    assert scored["text"].iloc[0] == "Angela Merkel visited Paris, France."  # the input, as it was

    imported = cli.ok("feedback", "import", "corrections.jsonl")
    assert "accepted" in imported.output, imported.explain()
    retrained = cli.ok("retrain", "--reason", "new entity type")
    assert "version=2" in retrained.output, retrained.explain()
    v2_dir = max((ner_project / ".loopline" / "runs").glob("*/model"), key=lambda p: p.stat().st_mtime)
    assert read_labels(v2_dir)[-2:] == ["B-PRODUCT", "I-PRODUCT"]
    card = " ".join(cli.ok("models", "show", "2").output.split())  # the tagger's card: per entity type
    assert card.startswith("# Model card: loopline-classifier v2 Token classifier"), card[:300]
    assert "`B-PRODUCT` (new)" in card and "Per entity type on `feedback`:" in card, card
    assert "| `PRODUCT` |" in card and "entity F1" in card and "- Parent version: v1" in card, card
