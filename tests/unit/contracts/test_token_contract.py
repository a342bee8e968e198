"""Token-classification contracts: every sentence rule with a failing row and a good twin, truncation of
tokens and tags together, duplicates and conflicts, entity support, feedback with unknown types and floods."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from loopline.config import ContractConfig
from loopline.contracts import ContractResult, validate_token_data, validate_token_feedback
from loopline.contracts.derive import (
    add_token_columns,
    entity_mention_counts,
    entity_types_of,
    prepare_frame,
    truncate_sentences,
)
from loopline.errors import ContractViolation

from .conftest import assert_nothing_lost, read_quarantine, with_rows

SOURCE = "data/ner_train.csv"
FEEDBACK_SOURCE = "feedback/ner_round1.csv"
NAMES = {"PER": "Ada Lovelace", "LOC": "New York", "ORG": "Acme Corp"}
MODEL_TAGS = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG")


def sentence(kind: str, i: int) -> tuple[str, str]:
    """A distinct sentence with one two-token entity of ``kind`` (``O``: no entity)."""
    if kind == "O":
        return f"nothing to see in report {i} today", "O O O O O O O"
    return f"report {i} mentions {NAMES[kind]} today", f"O O O B-{kind} I-{kind} O"


def clean_frame(per_type: int = 6, kinds: tuple[str, ...] = ("PER", "LOC", "ORG", "O")) -> pd.DataFrame:
    """Valid sentences; source_row starts at 2 like a CSV with a header line."""
    frame = pd.DataFrame(
        [sentence(kind, i) for kind in kinds for i in range(per_type)], columns=["text", "label"]
    )
    frame["source_row"] = range(2, len(frame) + 2)
    return frame


def check(result: ContractResult, rule: str):
    return next(c for c in result.checks if c.rule == rule)


def test_clean_sentences_pass(cfg: ContractConfig, qdir: Path) -> None:
    frame = clean_frame()
    result = validate_token_data(frame, cfg, SOURCE, qdir)
    assert result.success and result.suite == "token_data"
    assert result.quarantine_path is None and result.quarantined.empty and result.truncated_rows == 0
    pd.testing.assert_frame_equal(result.accepted, frame)
    assert all(c.success for c in result.checks)
    report = json.loads(result.report_path.read_text())
    assert report["accepted_label_counts"] == {"LOC": 6, "ORG": 6, "PER": 6}, "entity mentions per type"


# (bad text, bad label, rule, reason) and a good twin (text, label) that differs only in the defect.
DEFECTS = [
    pytest.param(None, "O O", "text_not_null", "text is missing", ("two words", "O O"), id="null-text"),
    pytest.param(
        "", "O", "text_not_blank", "empty sentence: the text has no tokens", ("word", "O"), id="empty"
    ),
    pytest.param("   ", "O", "text_not_blank", "empty sentence", ("word", "O"), id="whitespace"),
    pytest.param("\u200b", "O", "text_not_blank", "empty sentence", ("x", "O"), id="zero-width"),
    pytest.param(
        "broken\x00 export",
        "O O",
        "text_no_control_chars",
        "control character",
        ("fine export", "O O"),
        id="nul",
    ),
    pytest.param(
        "some words", None, "label_not_null", "label is missing", ("some words", "O O"), id="null-label"
    ),
    pytest.param(
        "some words", "  ", "label_not_blank", "label has no tags", ("some words", "O O"), id="no-tags"
    ),
    pytest.param(
        "three little words",
        "O O",
        "tokens_tags_aligned",
        "tokens and tags are not aligned: 3 token(s) but 2 tag(s)",
        ("three little words", "O O O"),
        id="too-few-tags",
    ),
    pytest.param(
        "two words",
        "O O O",
        "tokens_tags_aligned",
        "tokens and tags are not aligned: 2 token(s) but 3 tag(s)",
        ("two words", "O O"),
        id="too-many-tags",
    ),
    pytest.param(
        "Ada lives here",
        "B_PER O O",
        "tags_well_formed",
        "malformed tag 'B_PER' at token 0: every tag must be O, B-TYPE or I-TYPE",
        ("Ada lives here", "B-PER O O"),
        id="malformed-separator",
    ),
    pytest.param(
        "she met Ada",
        "O O B-",
        "tags_well_formed",
        "malformed tag 'B-' at token 2",
        ("she met Ada", "O O B-PER"),
        id="empty-type",
    ),
    pytest.param(
        "she met Ada Lovelace",
        "O O E-PER x",
        "tags_well_formed",
        "malformed tag 'E-PER' at token 2 (1 more malformed)",
        ("she met Ada Lovelace", "O O B-PER I-PER"),
        id="bioes-tag",
    ),
    pytest.param(
        "then Ada Lovelace left",
        "O O I-PER O",
        "bio_transitions_valid",
        "invalid BIO transition at token 2: I-PER does not continue a PER entity (after O)",
        ("then Ada Lovelace left", "O B-PER I-PER O"),
        id="i-after-o",
    ),
    pytest.param(
        "the New York office",
        "O B-LOC I-ORG O",
        "bio_transitions_valid",
        "invalid BIO transition at token 2: I-ORG does not continue a ORG entity (after B-LOC)",
        ("the New York office", "O B-LOC I-LOC O"),
        id="type-switch",
    ),
    pytest.param(
        "buy Bitcoin now",
        "O B-CRYPTO O",
        "entity_min_support",
        "entity type 'CRYPTO' has only 1 mention(s), fewer than min_examples_per_label=5",
        ("buy Bitcoin now", "O B-ORG O"),
        id="rare-type",
    ),
]


@pytest.mark.parametrize(("text", "label", "rule", "reason", "twin"), DEFECTS)
def test_defective_sentence_is_quarantined_and_its_twin_accepted(
    cfg: ContractConfig,
    qdir: Path,
    text: object,
    label: object,
    rule: str,
    reason: str,
    twin: tuple[str, str],
) -> None:
    frame = with_rows(clean_frame(), [(text, label)])
    bad_row = int(frame["source_row"].iloc[-1])

    result = validate_token_data(frame, cfg, SOURCE, qdir)

    assert result.success
    quarantined = read_quarantine(result)
    assert quarantined["source_row"].tolist() == [bad_row]
    assert reason in quarantined["reason"].iloc[0]
    assert list(quarantined.columns) == [*frame.columns, "reason"]
    assert check(result, rule).failed_rows == [bad_row] and not check(result, rule).success
    assert json.loads(result.report_path.read_text())["quarantined_by_rule"] == {rule: 1}, "one reason only"
    assert_nothing_lost(result, frame)

    good = with_rows(clean_frame(), [twin])
    twin_result = validate_token_data(good, cfg, SOURCE, qdir)
    assert twin_result.success and twin_result.quarantined.empty
    assert check(twin_result, rule).success
    assert int(good["source_row"].iloc[-1]) in set(twin_result.accepted["source_row"])


def test_over_long_sentence_is_truncated_with_its_tags_and_counted(qdir: Path) -> None:
    cfg = ContractConfig(max_sentence_tokens=7)  # the clean sentences have 6 and 7 tokens
    long_text, long_tags = "w0 w1 w2  w3 w4 w5 w6 Ada Lovelace w9", "O O O O O O B-ORG B-PER I-PER O"
    frame = with_rows(
        clean_frame(), [(long_text, long_tags), ("w0 w1 w2 w3 w4 w5 Acme", "O O O O O O B-ORG")]
    )
    long_row, fitting_row = frame["source_row"].iloc[-2:].tolist()

    result = validate_token_data(frame, cfg, SOURCE, qdir)

    assert result.success and result.quarantined.empty and result.quarantine_path is None
    assert result.truncated_rows == 1
    kept = result.accepted.set_index("source_row")
    assert kept.at[long_row, "text"] == "w0 w1 w2 w3 w4 w5 w6"
    assert kept.at[long_row, "label"] == "O O O O O O B-ORG", "tags are cut with their tokens"
    assert kept.at[fitting_row, "text"] == "w0 w1 w2 w3 w4 w5 Acme", "a sentence of max tokens is kept whole"
    truncation = check(result, "sentence_max_tokens")
    assert truncation.failed_rows == [long_row] and truncation.action == "truncate"
    assert "10 tokens, truncated to max_sentence_tokens=7" in truncation.detail
    assert json.loads(result.report_path.read_text())["truncated_rows"] == 1
    assert "1 text(s) truncated" in result.summary()
    assert frame["text"].iloc[-2] == long_text, "the caller's frame is not modified"
    assert_nothing_lost(result, frame)


def test_misaligned_over_long_sentence_is_quarantined_whole(cfg: ContractConfig, qdir: Path) -> None:
    frame = with_rows(clean_frame(), [("a b c d e f g h i", "O O O O O O O O")])
    result = validate_token_data(frame, cfg.model_copy(update={"max_sentence_tokens": 7}), SOURCE, qdir)
    assert result.truncated_rows == 0
    quarantined = read_quarantine(result)
    assert quarantined["text"].tolist() == ["a b c d e f g h i"], "quarantined rows keep their original text"
    assert "9 token(s) but 8 tag(s)" in quarantined["reason"].iloc[0]


def test_exact_duplicates_keep_the_first_and_do_not_count_as_bad_rows(qdir: Path) -> None:
    frame = clean_frame()
    first = frame.iloc[0]
    spaced = (first["text"].replace(" ", "  "), first["label"].replace(" ", "\t"))
    recased = (first["text"].upper(), first["label"])  # other tokens: not a duplicate
    frame = with_rows(frame, [(first["text"], first["label"]), spaced, recased])
    dup_rows = frame["source_row"].iloc[-3:-1].tolist()

    result = validate_token_data(frame, ContractConfig(max_quarantine_rate=0.0), SOURCE, qdir)

    assert result.success
    quarantined = read_quarantine(result)
    assert quarantined["source_row"].tolist() == dup_rows
    assert (
        quarantined["reason"].str.contains(f"exact duplicate of row {first['source_row']}: same tokens").all()
    )
    assert {int(first["source_row"]), int(frame["source_row"].iloc[-1])} <= set(result.accepted["source_row"])
    assert check(result, "no_duplicates").failed_rows == dup_rows
    assert_nothing_lost(result, frame)


def test_same_tokens_with_other_tags_are_all_quarantined(qdir: Path) -> None:
    frame = with_rows(
        clean_frame(), [("we flew to Paris", "O O O B-LOC"), ("we flew to Paris", "O O O B-PER")]
    )
    conflict_rows = frame["source_row"].iloc[-2:].tolist()
    cfg = ContractConfig(max_conflict_rate=0.1)

    result = validate_token_data(frame, cfg, SOURCE, qdir)

    quarantined = read_quarantine(result)
    assert quarantined["source_row"].tolist() == conflict_rows
    assert quarantined["reason"].str.contains(r"different tags \(O O O B-LOC \| O O O B-PER\)").all()
    assert check(result, "no_conflicting_labels").failed_rows == conflict_rows

    with pytest.raises(ContractViolation, match="max_conflict_rate"):
        validate_token_data(frame, ContractConfig(), SOURCE, qdir)


def test_entity_support_counts_mentions_not_sentences(cfg: ContractConfig, qdir: Path) -> None:
    # One sentence with five CRYPTO mentions gives CRYPTO enough support; a sentence with one does not.
    many = ("BTC and ETH and SOL and XRP and ADA", "B-CRYPTO O B-CRYPTO O B-CRYPTO O B-CRYPTO O B-CRYPTO")
    frame = with_rows(clean_frame(), [many])
    result = validate_token_data(frame, cfg, SOURCE, qdir)
    assert result.quarantined.empty and result.accepted_label_counts()["CRYPTO"] == 5


def test_data_without_entities_raises_a_clear_violation(cfg: ContractConfig, qdir: Path) -> None:
    frame = clean_frame(kinds=("O",))
    with pytest.raises(ContractViolation) as err:
        validate_token_data(frame, cfg, SOURCE, qdir)
    message = str(err.value)
    assert SOURCE in message and "column 'label'" in message
    assert "min_entity_types" in message and "expect_column_min_to_be_between" in message
    assert "0 entity type(s) remain after quarantine (none)" in message
    assert "rows 2, 3, 4" in message and "label 'O O O O O O O'" in message
    assert "B-TYPE/I-TYPE" in message
    result = err.value.result
    assert isinstance(result, ContractResult) and not result.success
    assert json.loads(result.report_path.read_text())["success"] is False
    assert_nothing_lost(result, frame)
    # One entity type is enough for a tagger.
    assert validate_token_data(clean_frame(kinds=("LOC", "O")), cfg, SOURCE, qdir).success


def test_only_rare_entity_types_fail_the_batch(cfg: ContractConfig, qdir: Path) -> None:
    frame = clean_frame(per_type=3, kinds=("PER", "O"))  # 3 PER mentions < min_examples_per_label=5
    with pytest.raises(ContractViolation, match="0 entity type"):
        validate_token_data(frame, cfg.model_copy(update={"max_quarantine_rate": 0.6}), SOURCE, qdir)


def test_too_many_bad_sentences_raise_after_quarantine_is_written(cfg: ContractConfig, qdir: Path) -> None:
    frame = with_rows(clean_frame(), [(f"tokens {i} here", "O O") for i in range(5)])
    bad_rows = frame["source_row"].iloc[-5:].tolist()

    with pytest.raises(ContractViolation) as err:
        validate_token_data(frame, cfg, SOURCE, qdir)

    message = str(err.value)
    assert "max_quarantine_rate" in message and "column 'label'" in message
    assert "tokens and tags are not aligned" in message
    result = err.value.result
    assert str(result.quarantine_path) in message
    assert read_quarantine(result)["source_row"].tolist() == bad_rows
    assert_nothing_lost(result, frame)


def test_missing_label_column_is_refused(cfg: ContractConfig, qdir: Path) -> None:
    frame = clean_frame().rename(columns={"label": "tags"})
    with pytest.raises(ContractViolation, match="--label-col") as err:
        validate_token_data(frame, cfg, SOURCE, qdir)
    assert "tags" in str(err.value)


def test_data_docs_are_rendered_for_token_suites(cfg: ContractConfig, qdir: Path, tmp_path: Path) -> None:
    frame = with_rows(clean_frame(), [("three little words", "O O")])
    result = validate_token_data(frame, cfg, SOURCE, qdir, docs_dir=tmp_path / "docs")
    assert result.docs_path is not None and result.docs_path.is_file()
    assert list((tmp_path / "docs" / "validations").rglob("*.html"))


# --- feedback ---------------------------------------------------------------------------------------


def users(frame: pd.DataFrame, n_users: int = 7) -> pd.DataFrame:
    return frame.assign(user=[f"user{i % n_users}" for i in range(len(frame))])


def crypto(n: int, start: int = 0) -> list[tuple[str, str]]:
    return [(f"she bought coin{i} yesterday", "O O B-CRYPTO O") for i in range(start, start + n)]


def test_in_distribution_feedback_passes(cfg: ContractConfig, qdir: Path) -> None:
    frame = users(clean_frame(per_type=2))
    result = validate_token_feedback(frame, MODEL_TAGS, cfg, FEEDBACK_SOURCE, qdir)
    assert result.success and result.quarantined.empty and result.suite == "token_feedback"
    assert json.loads(result.report_path.read_text())["suite"] == "token_feedback"


def test_new_entity_type_with_enough_sentences_is_accepted(cfg: ContractConfig, qdir: Path) -> None:
    frame = users(with_rows(clean_frame(per_type=3), crypto(5)))
    result = validate_token_feedback(frame, MODEL_TAGS, cfg, FEEDBACK_SOURCE, qdir)
    assert result.success and result.quarantined.empty
    assert result.to_dict()["accepted_label_counts"]["CRYPTO"] == 5


def test_new_entity_type_needs_sentences_not_mentions(cfg: ContractConfig, qdir: Path) -> None:
    many = ("BTC and ETH and SOL and XRP and ADA", "B-CRYPTO O B-CRYPTO O B-CRYPTO O B-CRYPTO O B-CRYPTO")
    frame = users(with_rows(clean_frame(per_type=3), [many]))
    row = int(frame["source_row"].iloc[-1])

    result = validate_token_feedback(frame, MODEL_TAGS, cfg, FEEDBACK_SOURCE, qdir)

    quarantined = read_quarantine(result)
    assert quarantined["source_row"].tolist() == [row]
    reason = quarantined["reason"].iloc[0]
    assert "unknown entity type 'CRYPTO' with too little support: 1 sentence(s)" in reason
    assert "fewer than min_new_label_support=5" in reason
    assert check(result, "new_entity_type_min_support").failed_rows == [row]
    assert_nothing_lost(result, frame)


def test_known_types_need_no_support_and_bare_types_count_as_known(cfg: ContractConfig, qdir: Path) -> None:
    frame = users(clean_frame(per_type=1))  # one sentence per known type
    assert validate_token_feedback(frame, MODEL_TAGS, cfg, FEEDBACK_SOURCE, qdir).quarantined.empty
    assert validate_token_feedback(frame, ["PER", "LOC", "ORG"], cfg, FEEDBACK_SOURCE, qdir).quarantined.empty
    lenient = cfg.model_copy(update={"max_quarantine_rate": 0.9})
    unknown = validate_token_feedback(frame, ["O", "B-PER", "I-PER"], lenient, FEEDBACK_SOURCE, qdir)
    assert set(unknown.quarantined["label"]) == {"O O O B-LOC I-LOC O", "O O O B-ORG I-ORG O"}


def flooded_batch(kind: str = "PER") -> pd.DataFrame:
    """16 ordinary sentences plus 25 (source_row 100-124) of one entity type (or none) from one user."""
    normal = users(clean_frame(per_type=4))
    flood = pd.DataFrame([sentence(kind, 100 + i) for i in range(25)], columns=["text", "label"])
    flood["user"] = "bot"
    flood["source_row"] = range(100, 125)
    return pd.concat([normal, flood], ignore_index=True)


@pytest.mark.parametrize(("kind", "given"), [("PER", "entity type 'PER'"), ("O", "only O tags")])
def test_flood_by_one_user_is_quarantined(qdir: Path, kind: str, given: str) -> None:
    frame = flooded_batch(kind)
    result = validate_token_feedback(
        frame, MODEL_TAGS, ContractConfig(max_quarantine_rate=0.9), FEEDBACK_SOURCE, qdir
    )
    quarantined = read_quarantine(result)
    assert quarantined["source_row"].tolist() == list(range(100, 125))
    assert quarantined["reason"].str.contains(f"label flood: user 'bot' gave {given} to 61%").all()
    assert_nothing_lost(result, frame)


def test_small_batches_are_not_judged_for_floods(cfg: ContractConfig, qdir: Path) -> None:
    frame = clean_frame(per_type=5, kinds=("PER",)).assign(user="alice")  # 5 sentences < 20
    result = validate_token_feedback(frame, MODEL_TAGS, cfg, FEEDBACK_SOURCE, qdir)
    assert result.success and result.quarantined.empty


def test_flood_fails_the_batch_with_default_limits(cfg: ContractConfig, qdir: Path) -> None:
    frame = flooded_batch()
    with pytest.raises(ContractViolation) as err:
        validate_token_feedback(frame, MODEL_TAGS, cfg, FEEDBACK_SOURCE, qdir)
    message = str(err.value)
    assert FEEDBACK_SOURCE in message and "max_quarantine_rate" in message and "column 'user'" in message
    assert "rows 100, 101" in message
    assert_nothing_lost(err.value.result, frame)


def test_feedback_sentence_rules_apply(qdir: Path) -> None:
    cfg = ContractConfig(max_sentence_tokens=7, max_quarantine_rate=0.5)
    frame = users(
        with_rows(
            clean_frame(per_type=2),
            [("Ada left", "I-PER O"), ("a b c d e f g h i", "O O O O O O O B-LOC I-LOC"), ("x y", "O")],
        )
    )
    rows = frame["source_row"].iloc[-3:].tolist()
    result = validate_token_feedback(frame, MODEL_TAGS, cfg, FEEDBACK_SOURCE, qdir)
    reasons = read_quarantine(result).set_index("source_row")["reason"]
    assert reasons.index.tolist() == [rows[0], rows[2]]
    assert "invalid BIO transition at token 0" in reasons[rows[0]]
    assert "2 token(s) but 1 tag(s)" in reasons[rows[2]]
    assert result.truncated_rows == 1
    assert result.accepted.set_index("source_row").at[rows[1], "label"] == "O O O O O O O"


# --- derived columns -----------------------------------------------------------------------------------


def test_token_columns() -> None:
    df = pd.DataFrame(
        {"text": ["a  b\tc", None, "a b"], "label": ["O B-X I-X", "O", None], "source_row": [2, 3, 4]}
    )
    out = add_token_columns(prepare_frame(df))
    assert out["token_count"].tolist()[0] == 3 and out["tag_count"].tolist()[:2] == [3, 1]
    assert pd.isna(out["token_count"].iloc[1]) and pd.isna(out["tag_count"].iloc[2])
    assert out["malformed_tag"].isna().all() and out["bio_problem"].isna().all()


def test_truncate_sentences_cuts_tokens_and_tags_together() -> None:
    rows = pd.DataFrame({"text": ["a  b c d"], "label": ["B-X I-X I-X O"]})
    out = truncate_sentences(rows, 2)
    assert out.iloc[0].tolist() == ["a b", "B-X I-X"]
    assert rows["text"].iloc[0] == "a  b c d"


def test_entity_helpers() -> None:
    assert entity_mention_counts(pd.Series(["B-PER I-PER B-PER O B-LOC", "O"])) == {"LOC": 1, "PER": 2}
    assert entity_types_of(["O", "B-PER", "I-PER", "LOC"]) == {"PER", "LOC"}
