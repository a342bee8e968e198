"""The synthetic demo data: deterministic, varied, and each feedback round has its promised traits."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from loopline.data.demo import (
    CONTEXT,
    DEMO_INTENTS,
    DRIFT_VOCABULARY,
    FLOOD_USER,
    HUGE_TEXT_CHARS,
    NEW_INTENT,
    PREFIXES,
    SLOTS,
    SUFFIXES,
    TEMPLATES,
    UNKNOWN_LABEL,
    generate_demo_dataset,
    generate_feedback_batch,
    minimum_functionality_examples,
    write_demo_files,
)
from loopline.data.loading import load_labelled_text


@pytest.fixture(scope="module")
def base() -> pd.DataFrame:
    return generate_demo_dataset(seed=0)


def _mentions(texts: pd.Series, term: str) -> bool:
    pattern = re.compile(rf"\b{re.escape(term)}\b", re.IGNORECASE)
    return any(pattern.search(t) for t in texts.dropna())


def test_same_seed_same_frame_other_seed_other_frame(base: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(base, generate_demo_dataset(seed=0))
    assert not base.equals(generate_demo_dataset(seed=1))
    for kind in ("in_distribution", "drifted", "corrupted"):
        pd.testing.assert_frame_equal(
            generate_feedback_batch(kind, 60, 3), generate_feedback_batch(kind, 60, 3)
        )
        assert not generate_feedback_batch(kind, 60, 3).equals(generate_feedback_batch(kind, 60, 4))


def test_base_data_is_large_balanced_unique_and_varied(base: pd.DataFrame) -> None:
    assert len(base) >= 2000 and list(base.columns) == ["text", "label"]
    assert len(DEMO_INTENTS) >= 8 and set(base["label"]) == set(DEMO_INTENTS)
    assert base["label"].value_counts().min() >= len(base) // len(DEMO_INTENTS)
    assert base["text"].is_unique and base["text"].notna().all()
    lengths = base["text"].str.len()
    assert lengths.min() < 30 and lengths.max() > 100
    assert base["text"].str.islower().any() and base["text"].str.isupper().any()
    assert base["text"].str.contains(r"[£$€]\d").any()


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z']+", text.lower()))


def test_many_paraphrases_per_intent_and_typos_in_a_fraction_of_rows(base: pd.DataFrame) -> None:
    assert min(len(templates) for templates in TEMPLATES.values()) >= 12
    pieces = [t for ts in TEMPLATES.values() for t in ts] + [*PREFIXES, *SUFFIXES, *CONTEXT]
    vocabulary = set().union(*map(_words, pieces), *(_words(v) for vs in SLOTS.values() for v in vs))
    with_typo = base["text"].map(lambda text: bool(_words(text) - vocabulary))
    assert 0.05 <= with_typo.mean() <= 0.25


def test_in_distribution_feedback_has_people_and_known_labels(base: pd.DataFrame) -> None:
    batch = generate_feedback_batch("in_distribution", 300, seed=0)
    assert list(batch.columns) == ["text", "label", "user", "source"]
    assert len(batch) == 300 and set(batch["label"]) == set(DEMO_INTENTS)
    assert batch["user"].nunique() > 10
    # Another random stream than the base data with the same seed.
    assert len(set(batch["text"]) & set(base["text"])) < 30


def test_drifted_batch_has_new_intent_and_new_vocabulary(base: pd.DataFrame) -> None:
    batch = generate_feedback_batch("drifted", 400, seed=0)
    assert NEW_INTENT not in DEMO_INTENTS
    assert (batch["label"] == NEW_INTENT).mean() == pytest.approx(0.3, abs=0.02)
    assert set(batch["label"]) == {*DEMO_INTENTS, NEW_INTENT}
    old_intents = batch[batch["label"] != NEW_INTENT]
    for term in DRIFT_VOCABULARY:
        assert not _mentions(base["text"], term), term
    present = [term for term in DRIFT_VOCABULARY if _mentions(old_intents["text"], term)]
    assert len(present) >= 6, present


def test_served_traffic_holds_old_intents_in_a_wording_no_earlier_data_holds(base: pd.DataFrame) -> None:
    traffic = generate_feedback_batch("served", 300, seed=0)
    assert set(traffic["label"]) == set(DEMO_INTENTS) and traffic["text"].is_unique
    drifted = generate_feedback_batch("drifted", 400, seed=0)
    for term in ("airport", "hotel", "holiday", "trip"):
        assert _mentions(traffic["text"], term), term
        assert not _mentions(base["text"], term) and not _mentions(drifted["text"], term), term


def test_corrupted_batch_holds_each_defect() -> None:
    batch = generate_feedback_batch("corrupted", 200, seed=0)
    assert len(batch) == 200
    texts = batch["text"]
    assert texts.isna().any() and (texts == "").any() and (texts.str.strip() == "").any()
    assert (texts.str.len() >= HUGE_TEXT_CHARS).any()
    flood = batch[batch["user"] == FLOOD_USER]
    assert len(flood) / len(batch) > 0.5 and flood["label"].nunique() == 1
    usable = batch[texts.notna() & (texts.str.strip() != "")]
    labels_per_text = usable.groupby("text")["label"].nunique()
    assert (labels_per_text > 1).sum() >= 2
    assert (batch["label"] == UNKNOWN_LABEL).sum() == 1 and UNKNOWN_LABEL not in DEMO_INTENTS


def test_unknown_kind_and_too_small_corrupted_batch_are_refused() -> None:
    with pytest.raises(ValueError, match="Unknown feedback kind"):
        generate_feedback_batch("shuffled", 10, 0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least 40 rows"):
        generate_feedback_batch("corrupted", 10, 0)


def test_minimum_functionality_examples_cover_every_intent_twice() -> None:
    mft = minimum_functionality_examples()
    assert mft["label"].value_counts().to_dict() == dict.fromkeys(DEMO_INTENTS, 2)
    assert NEW_INTENT in set(minimum_functionality_examples(include_new_intent=True)["label"])


def test_write_demo_files_says_synthetic_and_loads_back(tmp_path: Path) -> None:
    paths = write_demo_files(tmp_path, seed=0)
    assert set(paths) == {
        "train",
        "feedback_round1",
        "feedback_round2",
        "feedback_round3",
        "served_traffic",
        "readme",
    }
    assert "synthetic=True" in paths["readme"].read_text()
    train = load_labelled_text(paths["train"])
    assert len(train) >= 2400 and train["text"].notna().all()
    corrupted = load_labelled_text(paths["feedback_round3"])
    assert len(corrupted) == 200 and corrupted["text"].isna().any()  # null texts survive the round trip
    assert NEW_INTENT in set(load_labelled_text(paths["feedback_round2"])["label"])
    assert len(load_labelled_text(paths["feedback_round1"])) == 300
