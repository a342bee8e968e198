"""Subword–label alignment for token classification: each word's tag goes on its first subword.

The other subwords and the special tokens get ``IGNORE`` (-100), which the loss and the metrics skip, so
a word counts once however many pieces the tokenizer cuts it into. Sentences longer than ``max_length``
subwords are truncated, and how many words were cut is returned so that it can be reported, never lost
silently. Decoding reads one tag per word back from the first-subword positions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from transformers import PreTrainedTokenizerBase

from loopline.data.tagged import TaggedSentence
from loopline.errors import DataError
from loopline.training.batching import IGNORE_INDEX as IGNORE


@dataclass(frozen=True)
class AlignedBatch:
    input_ids: list[list[int]]
    label_ids: list[list[int]]  # IGNORE except on each kept word's first subword
    word_starts: list[list[int]]  # position of each kept word's first subword
    truncated_words: int  # words cut off by max_length, over all sentences


def align_tags(
    tokenizer: PreTrainedTokenizerBase,
    sentences: Sequence[TaggedSentence],
    label2id: Mapping[str, int],
    max_length: int,
) -> AlignedBatch:
    """Tokenise pre-split words (a fast tokenizer is needed for ``word_ids``) and align their tags."""
    if not tokenizer.is_fast:
        raise DataError(
            "Token classification needs a fast tokenizer (it maps subwords back to words).",
            hint="Use a model folder with tokenizer.json.",
        )
    encoded = tokenizer(
        [list(s.tokens) for s in sentences],
        is_split_into_words=True,
        truncation=True,
        max_length=max_length,
        return_attention_mask=False,
        return_token_type_ids=False,
    )
    input_ids, label_ids, starts, truncated = [], [], [], 0
    for row, sentence in enumerate(sentences):
        labels = [IGNORE] * len(encoded["input_ids"][row])
        first: list[int] = []
        previous = None
        for position, word in enumerate(encoded.word_ids(row)):
            if word is not None and word != previous:
                tag = sentence.tags[word]
                if tag not in label2id:
                    raise DataError(
                        f"Tag {tag!r} of word {word} is not in the label set.", where=f"sentence {row}"
                    )
                labels[position] = label2id[tag]
                first.append(position)
            previous = word
        truncated += len(sentence.tokens) - len(first)
        input_ids.append(list(encoded["input_ids"][row]))
        label_ids.append(labels)
        starts.append(first)
    return AlignedBatch(input_ids, label_ids, starts, truncated)


def decode_word_tags(
    logits: np.ndarray, word_starts: Sequence[int], id2label: Mapping[int, str]
) -> list[str]:
    """One tag per kept word from a sentence's subword logits (shape ``(subwords, labels)``)."""
    best = logits[list(word_starts)].argmax(axis=-1) if len(word_starts) else np.zeros(0, dtype=int)
    return [id2label[int(i)] for i in best]
