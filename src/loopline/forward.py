"""Run a model forward over tokenised texts: where (device), and in length-sorted batches.

Training (validation), inference and serving share these, so they sit below all three.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from transformers import PreTrainedModel

from loopline.errors import LooplineError
from loopline.training.batching import length_sorted_batches, pad_batch


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA when present, else CPU; asking for CUDA without one is an error."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise LooplineError(
            "device='cuda' was requested but no CUDA GPU is visible.",
            hint="Use device='auto' or 'cpu', or run on a machine with a GPU.",
        )
    return torch.device(device)


@torch.inference_mode()
def batched_probabilities(
    model: PreTrainedModel,
    input_ids: Sequence[Sequence[int]],
    *,
    pad_token_id: int,
    device: torch.device,
    batch_size: int = 128,
) -> Iterator[tuple[list[int], np.ndarray]]:
    """``(row indices, softmax of the logits)`` per length-sorted batch; the model is put in eval mode.

    Sequence models give ``(rows, labels)``, token models ``(rows, padded subwords, labels)``.
    """
    model.eval()
    cuda = device.type == "cuda"
    for indices in length_sorted_batches([len(ids) for ids in input_ids], batch_size):
        batch = pad_batch([input_ids[i] for i in indices], pad_token_id, 8 if cuda else None)
        batch = {key: value.to(device, non_blocking=cuda) for key, value in batch.items()}
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            logits = model(**batch).logits
        yield indices, torch.softmax(logits.float(), dim=-1).cpu().numpy()


def predict_proba_encoded(
    model: PreTrainedModel,
    input_ids: Sequence[Sequence[int]],
    *,
    pad_token_id: int,
    device: torch.device,
    batch_size: int = 128,
) -> np.ndarray:
    """Class probabilities (float32, caller's order) of a sequence classifier for tokenised texts."""
    probabilities = np.zeros((len(input_ids), model.config.num_labels), dtype=np.float32)
    for indices, batch in batched_probabilities(
        model, input_ids, pad_token_id=pad_token_id, device=device, batch_size=batch_size
    ):
        probabilities[indices] = batch
    return probabilities


def word_probabilities_encoded(
    model: PreTrainedModel,
    input_ids: Sequence[Sequence[int]],
    word_starts: Sequence[Sequence[int]],
    *,
    pad_token_id: int,
    device: torch.device,
    batch_size: int = 128,
) -> list[np.ndarray]:
    """Tag probabilities of a token classifier, one ``(words, labels)`` array per sentence, read at
    each word's first subword (the position its tag was trained on)."""
    out: list[np.ndarray] = [np.zeros((0, model.config.num_labels), np.float32)] * len(input_ids)
    for indices, batch in batched_probabilities(
        model, input_ids, pad_token_id=pad_token_id, device=device, batch_size=batch_size
    ):
        for row, index in enumerate(indices):
            out[index] = batch[row, list(word_starts[index])]
    return out
