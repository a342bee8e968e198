"""Tokenise once, batch texts of similar length, pad each batch only to its own longest text.

Random batches padded to their longest text spend much of a CPU's time on padding: short
support messages share a batch with a long one. Grouping by length keeps batches random across
an epoch while the padding inside each batch stays small.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler
from transformers import PreTrainedTokenizerBase

#: Batches per mega-batch: texts are sorted by length inside a random window of this many batches.
MEGA_BATCH_FACTOR = 50


def encode_texts(
    tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int
) -> list[list[int]]:
    """Token ids per text (special tokens included, truncated to ``max_length``, not padded)."""
    if not texts:
        return []
    encoded = tokenizer(
        list(texts),
        truncation=True,
        max_length=max_length,
        padding=False,
        return_attention_mask=False,
        return_token_type_ids=False,
    )
    return list(encoded["input_ids"])


#: Target of a subword that is not trained (cross-entropy's default ``ignore_index``).
IGNORE_INDEX = -100

Target = int | list[int]  # a class id per text, or one id per subword (token classification)


@dataclass(frozen=True)
class EncodedDataset(Dataset):
    """Tokenised texts with optional targets; items are ``(input_ids, target or -1)``."""

    input_ids: list[list[int]]
    label_ids: Sequence[Target] | None = None

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, index: int) -> tuple[list[int], Target]:
        label = -1 if self.label_ids is None else self.label_ids[index]
        return self.input_ids[index], label

    @property
    def lengths(self) -> np.ndarray:
        return np.fromiter((len(ids) for ids in self.input_ids), dtype=np.int64, count=len(self.input_ids))


class LengthGroupedSampler(Sampler[list[int]]):
    """Yields batches of indices: random, but each batch holds texts of similar length.

    Per epoch: shuffle all indices, cut them into mega-batches of ``mega_batch_factor`` batches,
    sort each mega-batch by length (longest first) and cut it into batches, then shuffle the
    order of the batches; the batch with the longest text goes first so that running out of
    memory happens at step one, not mid-epoch. Every index appears exactly once per epoch; the
    order depends only on ``seed`` and the epoch (``set_epoch``), so a resumed run sees the same
    batches as an uninterrupted one.
    """

    def __init__(
        self,
        lengths: Sequence[int] | np.ndarray,
        batch_size: int,
        seed: int = 0,
        mega_batch_factor: int = MEGA_BATCH_FACTOR,
    ) -> None:
        if batch_size < 1 or mega_batch_factor < 1:
            raise ValueError("batch_size and mega_batch_factor must be at least 1")
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.batch_size = batch_size
        self.seed = seed
        self.mega_batch_size = batch_size * mega_batch_factor
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size)

    def batches(self) -> list[list[int]]:
        """This epoch's batches, in order."""
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(len(self.lengths))
        batches: list[np.ndarray] = []
        for start in range(0, len(order), self.mega_batch_size):
            mega = order[start : start + self.mega_batch_size]
            mega = mega[np.argsort(-self.lengths[mega], kind="stable")]
            batches.extend(mega[i : i + self.batch_size] for i in range(0, len(mega), self.batch_size))
        shuffled = [batches[i] for i in rng.permutation(len(batches))]
        longest = max(range(len(shuffled)), key=lambda i: int(self.lengths[shuffled[i]].max()), default=0)
        if shuffled:
            shuffled[0], shuffled[longest] = shuffled[longest], shuffled[0]
        return [batch.tolist() for batch in shuffled]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches())


def length_sorted_batches(lengths: Sequence[int] | np.ndarray, batch_size: int) -> list[list[int]]:
    """Indices sorted by length (longest first) and cut into batches: for evaluation/inference."""
    order = np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")
    return [order[i : i + batch_size].tolist() for i in range(0, len(order), batch_size)]


def pad_batch(
    sequences: Sequence[Sequence[int]], pad_token_id: int, pad_to_multiple_of: int | None = None
) -> dict[str, torch.Tensor]:
    """``input_ids`` and ``attention_mask`` padded (right) to the longest sequence of the batch."""
    longest = max((len(ids) for ids in sequences), default=0)
    if pad_to_multiple_of:
        longest = -(-longest // pad_to_multiple_of) * pad_to_multiple_of
    input_ids = torch.full((len(sequences), longest), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), longest), dtype=torch.long)
    for row, ids in enumerate(sequences):
        input_ids[row, : len(ids)] = torch.as_tensor(ids, dtype=torch.long)
        attention_mask[row, : len(ids)] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask}


@dataclass(frozen=True)
class PaddingCollator:
    """``collate_fn`` for ``EncodedDataset`` items: dynamic padding plus a ``labels`` tensor (per-subword
    targets are padded with ``IGNORE_INDEX`` to the batch's length)."""

    pad_token_id: int
    pad_to_multiple_of: int | None = None

    def __call__(self, items: Sequence[tuple[list[int], Target]]) -> dict[str, torch.Tensor]:
        batch = pad_batch([ids for ids, _ in items], self.pad_token_id, self.pad_to_multiple_of)
        targets = [target for _, target in items]
        if targets and isinstance(targets[0], list):
            labels = torch.full(batch["input_ids"].shape, IGNORE_INDEX, dtype=torch.long)
            for row, target in enumerate(targets):
                per_subword = torch.as_tensor(target, dtype=torch.long)
                labels[row, : len(per_subword)] = per_subword
            batch["labels"] = labels
        else:
            batch["labels"] = torch.tensor(targets, dtype=torch.long)
        return batch
