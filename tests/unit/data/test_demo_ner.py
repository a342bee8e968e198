"""The synthetic NER demo: deterministic, valid BIO, the promised types per round, O-label confusion near
its setting, files that read back unchanged and loopline's token-row frame."""

from __future__ import annotations

from pathlib import Path

import pytest

from loopline.data import demo_ner
from loopline.data.demo_ner import (
    BASE_TYPES,
    NEW_TYPE,
    ROUND_KINDS,
    NerDemoFiles,
    NerDemoSizes,
    NerRoundKind,
    entity_counts,
    generate_ner_demo,
    ner_round,
    save_conll,
    save_token_jsonl,
    to_token_frame,
)
from loopline.data.tagged import TaggedSentence, bio_problems, read_conll, read_token_jsonl
from loopline.errors import DataError

OLD = set(BASE_TYPES)
ALL = OLD | {NEW_TYPE}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> NerDemoFiles:
    return generate_ner_demo(tmp_path_factory.mktemp("ner_demo"), seed=0)


def _types(sentences: list[TaggedSentence]) -> set[str]:
    return {kind for s in sentences for _, _, kind in s.entities()}


@pytest.mark.parametrize("kind", ROUND_KINDS)
def test_same_seed_same_sentences_other_seed_other_sentences(kind: NerRoundKind) -> None:
    first = ner_round(kind, 80, seed=3)
    assert first == ner_round(kind, 80, seed=3)
    assert first != ner_round(kind, 80, seed=4)
    assert len({s.tokens for s in first}) == len(first)


def test_the_written_demo_is_byte_for_byte_the_same_for_one_seed(tmp_path: Path) -> None:
    sizes = NerDemoSizes(
        train=60, feedback_round1=20, feedback_round2=30, heldout_base=20, heldout_new_type=20
    )
    one = generate_ner_demo(tmp_path / "one", seed=5, sizes=sizes)
    two = generate_ner_demo(tmp_path / "two", seed=5, sizes=sizes)
    for a, b in zip(one.splits(), two.splits(), strict=True):
        assert a.jsonl_path.read_bytes() == b.jsonl_path.read_bytes()
        assert a.conll_path.read_bytes() == b.conll_path.read_bytes()
    other = generate_ner_demo(tmp_path / "other", seed=6, sizes=sizes)
    assert other.train.jsonl_path.read_bytes() != one.train.jsonl_path.read_bytes()


@pytest.mark.parametrize("kind", ROUND_KINDS)
def test_every_sentence_is_valid_bio_over_whitespace_free_tokens(kind: NerRoundKind) -> None:
    for sentence in ner_round(kind, 400, seed=0):
        assert len(sentence.tokens) == len(sentence.tags) > 0
        assert bio_problems(sentence.tags, known=ALL) == []
        assert all(token and token.split() == [token] for token in sentence.tokens)


def test_base_data_has_the_promised_shapes(demo: NerDemoFiles) -> None:
    train = read_token_jsonl(demo.train.jsonl_path)
    assert demo.train.sentences == len(train) == 1200
    spans = [(" ".join(s.tokens[a:b]), kind) for s in train for a, b, kind in s.entities()]
    assert ("New York", "LOC") in spans and ("Bank of England", "ORG") in spans
    assert sum(" " in text for text, _ in spans) > 300  # multi-token entities
    assert len({text for text, kind in spans if kind == "PER"}) > 300  # varied names
    # Neighbours of one type: B-X straight after I-X (San Diego California), and lists A , B and C.
    tag_pairs = {(s.tags[i - 1], s.tags[i]) for s in train for i in range(1, len(s.tags))}
    assert {("I-LOC", "B-LOC"), ("B-LOC", "B-LOC")} <= tag_pairs
    paris_rome_and_madrid = ("B-LOC", "O", "B-LOC", "O", "B-LOC")
    assert any(_holds(s.tags, paris_rome_and_madrid) for s in train)
    no_entity = sum(not s.entities() for s in train)
    assert 0.05 * len(train) < no_entity < 0.3 * len(train)
    # CoNLL tokenisation: punctuation, 's and n't are tokens of their own.
    tokens = {t for s in train for t in s.tokens}
    assert {",", ".", "'s", "n't", '"', "(", ")"} <= tokens
    assert not any(len(t) > 1 and t[-1] in ",;:!?\"')" for t in tokens)


def _holds(tags: tuple[str, ...], run: tuple[str, ...]) -> bool:
    return any(tags[i : i + len(run)] == run for i in range(len(tags) - len(run) + 1))


def test_types_per_round_product_only_from_the_new_type_round(demo: NerDemoFiles) -> None:
    for split in (demo.train, demo.feedback_round1, demo.heldout_base):
        assert _types(read_token_jsonl(split.jsonl_path)) == OLD, split.name
        assert set(split.entity_counts) == OLD
    for split in (demo.feedback_round2, demo.heldout_new_type):
        sentences = read_token_jsonl(split.jsonl_path)
        assert _types(sentences) == ALL, split.name
        assert split.entity_counts[NEW_TYPE] >= split.sentences * 0.8
    spans = {" ".join(s.tokens[a:b]) for s in read_token_jsonl(demo.feedback_round2.jsonl_path)
             for a, b, kind in s.entities() if kind == NEW_TYPE}  # fmt: skip
    assert {"iPhone 15", "Model Y"} & spans


def test_o_label_confusion_hits_about_its_share_of_old_mentions_only() -> None:
    clean = ner_round("new_type", 600, seed=0, o_confusion_share=0.0)
    confused = ner_round("new_type", 600, seed=0, o_confusion_share=0.3)
    assert [s.tokens for s in clean] == [s.tokens for s in confused]  # the share changes tags only
    old = [(i, a, b) for i, s in enumerate(clean) for a, b, kind in s.entities() if kind in OLD]
    lost = [(i, a, b) for i, a, b in old if set(confused[i].tags[a:b]) == {"O"}]
    assert len(old) > 400
    assert 0.24 <= len(lost) / len(old) <= 0.36
    for before, after in zip(clean, confused, strict=True):  # PRODUCT and O tokens untouched
        kept = [(b, a) for b, a in zip(before.tags, after.tags, strict=True) if b[2:] not in OLD]
        assert all(b == a for b, a in kept)
        assert {m for m in after.entities()} <= {m for m in before.entities()}
    assert _types(ner_round("new_type", 100, seed=0, o_confusion_share=1.0)) == {NEW_TYPE}


def test_the_demo_records_the_confusion_and_keeps_held_out_sets_clean(demo: NerDemoFiles) -> None:
    assert demo.o_confusion_share == 0.3
    assert 0.2 <= demo.o_confused_mentions / demo.old_type_mentions_round2 <= 0.4
    round2 = read_token_jsonl(demo.feedback_round2.jsonl_path)
    clean2 = ner_round("new_type", demo.feedback_round2.sentences, seed=0, o_confusion_share=0.0)
    assert entity_counts(clean2)  # the clean round holds the mentions the written one lost
    lost = sum(entity_counts(clean2)[t] - demo.feedback_round2.entity_counts[t] for t in OLD)
    assert lost == demo.o_confused_mentions and [s.tokens for s in clean2] == [s.tokens for s in round2]
    heldout_new = read_token_jsonl(demo.heldout_new_type.jsonl_path)
    seen = {s.tokens for s in round2}
    assert heldout_new == ner_round("heldout_new_type", len(heldout_new), seed=0, avoid=seen)
    assert _types(ner_round("heldout_new_type", 100, seed=0, o_confusion_share=1.0)) == ALL  # never confused
    # Held-out sets are frozen apart from what is trained on.
    trained = {s.tokens for split in (demo.train, demo.feedback_round1) for s in read_conll(split.conll_path)}
    assert not trained & {s.tokens for s in read_conll(demo.heldout_base.conll_path)}
    assert not {s.tokens for s in round2} & {s.tokens for s in heldout_new}


def test_files_read_back_identically_in_both_formats(demo: NerDemoFiles) -> None:
    assert read_token_jsonl(demo.train.jsonl_path) == ner_round("base", 1200, seed=0)
    for split in demo.splits():
        from_jsonl = read_token_jsonl(split.jsonl_path)
        assert read_conll(split.conll_path) == from_jsonl, split.name
        assert len(from_jsonl) == split.sentences and entity_counts(from_jsonl) == split.entity_counts
    conll_text = demo.train.conll_path.read_text(encoding="utf-8")
    assert conll_text.count("\n\n") == demo.train.sentences and conll_text.endswith(" O\n\n")
    assert "SYNTHETIC" in demo.readme_path.read_text(encoding="utf-8")


def test_writers_round_trip_any_valid_sentence_and_refuse_bad_ones(tmp_path: Path) -> None:
    sentences = [
        TaggedSentence(("Zürich", "Paris", ",", "Élodie", "!"), ("B-LOC", "B-LOC", "O", "B-PER", "O")),
        TaggedSentence(("no", "entity"), ("O", "O")),
    ]
    assert read_token_jsonl(save_token_jsonl(sentences, tmp_path / "s.jsonl")) == sentences
    assert read_conll(save_conll(sentences, tmp_path / "s.conll")) == sentences
    for bad in (
        TaggedSentence(("New York",), ("B-LOC",)),
        TaggedSentence(("a", "b"), ("O",)),
        TaggedSentence(("York",), ("I-LOC",)),
        TaggedSentence((), ()),
    ):
        with pytest.raises(DataError, match="Sentence 0 cannot be written"):
            save_conll([bad], tmp_path / "bad.conll")
        with pytest.raises(DataError):
            to_token_frame([bad])


def test_token_frame_joins_tokens_and_tags_with_single_spaces(demo: NerDemoFiles) -> None:
    sentences = read_token_jsonl(demo.feedback_round2.jsonl_path)
    frame = to_token_frame(sentences)
    assert list(frame.columns) == ["text", "label"] and len(frame) == len(sentences)
    for sentence, text, label in zip(sentences, frame["text"], frame["label"], strict=True):
        assert text.split(" ") == list(sentence.tokens)
        assert label.split(" ") == list(sentence.tags)
    assert frame["label"].str.contains("B-PRODUCT").any()


def test_bad_arguments_say_what_to_change(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="Unknown NER round kind"):
        ner_round("served", 10)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="o_confusion_share"):
        ner_round("new_type", 10, o_confusion_share=1.5)
    with pytest.raises(ValueError, match="at least one"):
        ner_round("base", 0)
    with pytest.raises(ValueError, match="train must be at least 1"):
        NerDemoSizes(train=0)
    # One template over the surnames alone cannot give more distinct sentences than there are surnames.
    monkeypatch.setattr(demo_ner, "BASE_TEMPLATES", ("Mr. {SURNAME} declined to comment .",))
    assert len(ner_round("base", len(demo_ner.SURNAMES))) == len(demo_ner.SURNAMES)
    with pytest.raises(ValueError, match="distinct base sentences"):
        ner_round("base", len(demo_ner.SURNAMES) + 1)
