"""First-subword labelling: one label per word, the rest ignored, truncation counted, decoding back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from transformers import AutoTokenizer

from loopline.data.tagged import TaggedSentence
from loopline.errors import DataError
from loopline.training.token_alignment import IGNORE, align_tags, decode_word_tags

TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
LABEL2ID = {tag: i for i, tag in enumerate(TAGS)}


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir: Path) -> AutoTokenizer:
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def test_each_word_is_labelled_once_on_its_first_subword(tokenizer: AutoTokenizer) -> None:
    sentence = TaggedSentence(
        ("Ada", "Lovelace", "visited", "Zürich-Oerlikon", "."), ("B-PER", "I-PER", "O", "B-LOC", "O")
    )
    batch = align_tags(tokenizer, [sentence], LABEL2ID, max_length=64)
    labels, starts = batch.label_ids[0], batch.word_starts[0]
    assert len(batch.input_ids[0]) > len(sentence.tokens) + 2  # words were cut into several subwords
    assert [labels[p] for p in starts] == [LABEL2ID[t] for t in sentence.tags]
    assert sum(label != IGNORE for label in labels) == len(sentence.tokens) and batch.truncated_words == 0
    logits = np.full((len(labels), len(TAGS)), -5.0)
    for position, label in enumerate(labels):
        if label != IGNORE:
            logits[position, label] = 5.0
    assert decode_word_tags(logits, starts, dict(enumerate(TAGS))) == list(sentence.tags)


def test_long_sentences_are_truncated_and_counted(tokenizer: AutoTokenizer) -> None:
    long = TaggedSentence(tuple(["word"] * 100), tuple(["O"] * 100))
    batch = align_tags(tokenizer, [long], LABEL2ID, max_length=16)
    assert len(batch.input_ids[0]) == 16 and batch.truncated_words == 100 - 14


def test_a_tag_outside_the_label_set_is_refused(tokenizer: AutoTokenizer) -> None:
    with pytest.raises(DataError, match="B-ORG"):
        align_tags(tokenizer, [TaggedSentence(("Acme",), ("B-ORG",))], LABEL2ID, max_length=16)
