from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

from loopline.training.batching import (
    EncodedDataset,
    LengthGroupedSampler,
    PaddingCollator,
    encode_texts,
    length_sorted_batches,
    pad_batch,
)


@pytest.fixture(scope="module")
def lengths() -> np.ndarray:
    return np.random.default_rng(0).integers(3, 64, size=1003)


def _padding_waste(batches: list[list[int]], lengths: np.ndarray) -> float:
    padded = sum(len(b) * lengths[b].max() for b in batches)
    return 1 - lengths.sum() / padded


def test_encode_texts_truncates_and_does_not_pad(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    ids = encode_texts(tokenizer, ["hi", "word " * 50], max_length=16)

    assert [len(x) for x in ids] == [3, 16]  # [CLS] hi [SEP]; truncated to max_length
    assert ids[0][0] == tokenizer.cls_token_id and ids[1][-1] == tokenizer.sep_token_id
    assert encode_texts(tokenizer, [], max_length=16) == []


def test_sampler_yields_every_index_once_per_epoch(lengths):
    sampler = LengthGroupedSampler(lengths, batch_size=16, seed=1)
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        flat = [i for batch in batches for i in batch]
        assert sorted(flat) == list(range(len(lengths)))
        assert len(batches) == len(sampler) == 63
        assert sum(len(b) < 16 for b in batches) == 1  # only one partial batch


def test_sampler_batches_are_length_homogeneous(lengths):
    sampler = LengthGroupedSampler(lengths, batch_size=16, seed=1)
    grouped = sampler.batches()
    order = np.random.default_rng(1).permutation(len(lengths))
    random_batches = [order[i : i + 16] for i in range(0, len(order), 16)]

    spreads = [lengths[b].max() - lengths[b].min() for b in grouped]
    assert np.mean(spreads) < 3
    assert _padding_waste(grouped, lengths) < 0.1 < 0.3 < _padding_waste(random_batches, lengths)
    assert lengths[grouped[0]].max() == lengths.max()  # longest batch first: memory errors show at once


def test_sampler_order_depends_only_on_seed_and_epoch(lengths):
    a = LengthGroupedSampler(lengths, batch_size=16, seed=1)
    b = LengthGroupedSampler(lengths, batch_size=16, seed=1)
    a.set_epoch(3)
    b.set_epoch(3)
    assert a.batches() == b.batches()
    b.set_epoch(4)
    assert a.batches() != b.batches()
    assert a.batches() != LengthGroupedSampler(lengths, batch_size=16, seed=2).batches()
    # batch order is shuffled, not sorted by length
    maxima = [lengths[batch].max() for batch in a.batches()[1:]]
    assert maxima != sorted(maxima) and maxima != sorted(maxima, reverse=True)


def test_length_sorted_batches_cover_all_longest_first(lengths):
    batches = length_sorted_batches(lengths, 100)
    flat = [i for batch in batches for i in batch]
    assert sorted(flat) == list(range(len(lengths)))
    assert list(lengths[flat]) == sorted(lengths, reverse=True)


def test_pad_batch_pads_to_longest_and_masks():
    batch = pad_batch([[5, 6, 7], [8]], pad_token_id=0)
    assert torch.equal(batch["input_ids"], torch.tensor([[5, 6, 7], [8, 0, 0]]))
    assert torch.equal(batch["attention_mask"], torch.tensor([[1, 1, 1], [1, 0, 0]]))
    assert pad_batch([[5, 6, 7]], pad_token_id=0, pad_to_multiple_of=8)["input_ids"].shape == (1, 8)


def test_collator_adds_labels():
    dataset = EncodedDataset([[1, 2], [3]], [2, 0])
    batch = PaddingCollator(pad_token_id=0)([dataset[0], dataset[1]])
    assert torch.equal(batch["labels"], torch.tensor([2, 0]))
    assert batch["input_ids"].shape == (2, 2)
    assert list(dataset.lengths) == [2, 1]
