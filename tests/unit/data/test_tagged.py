"""Token-tagged data: IOB1 → BIO without merging neighbours, BIO checks, CoNLL and JSONL readers."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopline.data.tagged import (
    TaggedSentence,
    bio_problems,
    iob1_to_bio,
    read_conll,
    read_tagged_file,
    read_token_jsonl,
)
from loopline.errors import DataError

CONLL = Path(__file__).resolve().parents[4] / "shared" / "data" / "conll2003"


def to_iob1(bio: list[str]) -> list[str]:
    """BIO → IOB1 (the test's own inverse): B- only where an entity follows one of the same type."""
    out, previous = [], "O"
    for tag in bio:
        if tag.startswith("B-") and not (previous != "O" and previous[2:] == tag[2:]):
            out.append("I-" + tag[2:])
        else:
            out.append(tag)
        previous = tag
    return out


def test_iob1_neighbours_of_one_type_stay_two_entities() -> None:
    iob1 = ["I-PER", "I-PER", "B-PER", "O", "I-LOC", "I-ORG", "I-ORG"]
    bio = iob1_to_bio(iob1)
    assert bio == ["B-PER", "I-PER", "B-PER", "O", "B-LOC", "B-ORG", "I-ORG"]
    tokens = tuple(f"w{i}" for i in range(len(bio)))
    assert TaggedSentence(tokens, tuple(bio)).entities() == [
        (0, 2, "PER"),
        (2, 3, "PER"),
        (4, 5, "LOC"),
        (5, 7, "ORG"),
    ]
    assert not bio_problems(bio)


_bio_tag = st.sampled_from(["O", "B-PER", "I-PER", "B-LOC", "I-LOC"])


@settings(max_examples=300, derandomize=True)
@given(st.lists(_bio_tag, max_size=30))
def test_iob1_round_trip_is_the_identity_on_valid_bio(tags: list[str]) -> None:
    bio = iob1_to_bio(tags)  # any sequence read as IOB1 is valid BIO afterwards
    assert not bio_problems(bio)
    assert iob1_to_bio(to_iob1(bio)) == bio


def test_bio_problems_name_the_token_and_what_is_wrong() -> None:
    problems = bio_problems(["O", "I-PER", "B-LOC", "I-ORG", "X-1", "B-FOO"], known={"PER", "LOC", "ORG"})
    assert problems == [
        "token 1: I-PER does not continue a PER entity (after O)",
        "token 3: I-ORG does not continue a ORG entity (after B-LOC)",
        "token 4: tag 'X-1' is not O, B-TYPE or I-TYPE",
        "token 5: unknown entity type 'FOO'",
    ]


def test_read_conll_iob1_and_bio(tmp_path: Path) -> None:
    iob1 = tmp_path / "iob1.txt"
    iob1.write_text(
        "-DOCSTART- -X- O O\n\nEU NNP I-NP I-ORG\nrejects VBZ I-VP O\n\nPeter I-PER\nPaul B-PER\n"
    )
    sentences = read_conll(iob1)
    assert [s.tags for s in sentences] == [("B-ORG", "O"), ("B-PER", "B-PER")]
    bio = tmp_path / "bio.txt"
    bio.write_text("New B-LOC\nYork I-LOC\n\n")
    assert read_conll(bio)[0].entities() == [(0, 2, "LOC")]
    bad = tmp_path / "bad.txt"
    bad.write_text("word O\nlonely\n")
    with pytest.raises(DataError) as err:
        read_conll(bad)
    assert err.value.where == f"{bad}:2"


@pytest.mark.skipif(not CONLL.is_dir(), reason="../shared/data/conll2003 is not beside the checkout")
def test_conll2003_train_matches_the_published_counts() -> None:
    sentences = read_conll(CONLL / "eng.train")
    assert len(sentences) == 14_041 and sum(len(s.tokens) for s in sentences) == 203_621
    types = Counter(kind for sentence in sentences for _, _, kind in sentence.entities())
    assert types == {"PER": 6_600, "LOC": 7_140, "ORG": 6_321, "MISC": 3_438}  # 23,499 entities


def test_read_token_jsonl_tokens_and_spans(tmp_path: Path) -> None:
    path = tmp_path / "ner.jsonl"
    text = "Ada Lovelace met Charles Babbage in London."
    rows = [
        {"tokens": ["Paris", "is", "nice"], "tags": ["B-LOC", "O", "O"]},
        {
            "text": text,
            "entities": [{"start": 0, "end": 12, "label": "PER"}, {"start": 36, "end": 42, "label": "LOC"}],
        },
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    first, second = read_token_jsonl(path)
    assert first.entities() == [(0, 1, "LOC")]
    assert second.tokens[-1] == "." and second.entities() == [(0, 2, "PER"), (6, 7, "LOC")]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"tokens": ["a", "b"], "tags": ["O"]}, "2 tokens, 1 tags"),
        ({"text": "Ada Lovelace", "entities": [{"start": 1, "end": 12, "label": "PER"}]}, "whole words"),
        ({"words": []}, "neither"),
        ({"text": "Ada", "entities": [{"start": 0}]}, "is not"),
        ({"text": "Ada", "entities": [{"start": 0, "end": 9, "label": "PER"}]}, "which has 3 characters"),
        ({"text": "Ada", "entities": [{"start": -1, "end": 3, "label": "PER"}]}, "not a span of the text"),
        ({"text": "Ada", "entities": [{"start": 2, "end": 2, "label": "PER"}]}, "not a span of the text"),
    ],
)
def test_bad_token_rows_say_what_and_where(tmp_path: Path, row: dict, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"tokens": ["ok"], "tags": ["O"]}) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(DataError, match=message) as err:
        read_token_jsonl(path)
    assert err.value.where == f"{path}:2"


def test_tagged_files_decode_as_every_loader_does(tmp_path: Path) -> None:
    """A byte-order mark is not part of the first word; a byte that is not the encoding is a DataError
    naming its line (and the option to pass), in CoNLL and JSONL alike."""
    bom = tmp_path / "bom.conll"
    bom.write_bytes(b"\xef\xbb\xbfParis B-LOC\r\nis O\r\n")
    assert read_conll(bom)[0].tokens == ("Paris", "is")
    latin1 = {
        "l1.conll": (b"Paris B-LOC\n\nCaf\xe9 O\n", "line 3"),
        "l1.jsonl": (
            b'{"tokens": ["Paris"], "tags": ["B-LOC"]}\n{"tokens": ["Caf\xe9"], "tags": ["O"]}\n',
            "line 2",
        ),
    }
    for name, (data, line) in latin1.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(DataError, match="--encoding latin-1") as err:
            read_tagged_file(path)
        assert f"{path}, {line}," in str(err.value.where)
        assert read_tagged_file(path, "latin-1")[-1].tokens == ("Café",)


@pytest.mark.parametrize("suffix", [".csv", ".json", ".parquet"])
def test_a_table_is_not_read_as_conll(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"rows{suffix}"
    path.write_bytes(b"text,label\nmy card is late,card_arrival\n")
    with pytest.raises(DataError, match="--task sequence") as err:
        read_tagged_file(path)
    assert err.value.where == str(path)
