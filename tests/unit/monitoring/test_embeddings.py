from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from loopline.errors import DataError, LooplineError
from loopline.monitoring import embeddings
from loopline.monitoring.embeddings import embed_texts, load_or_compute_reference_embeddings

TEXTS = [
    "where is my card?",
    "I was charged twice for the same coffee this morning, please refund one of the payments",
    "top up failed",
    "",
    "how long does a transfer to another country usually take?",
]


def test_embeddings_are_unit_length_float32_rows(tiny_model_dir: Path) -> None:
    vectors = embed_texts(str(tiny_model_dir), TEXTS, batch_size=2)
    assert vectors.shape == (len(TEXTS), 32) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embed_texts(str(tiny_model_dir), []).shape == (0, 32)


def test_rows_keep_the_input_order_despite_length_sorted_batches(tiny_model_dir: Path) -> None:
    together = embed_texts(str(tiny_model_dir), TEXTS, batch_size=2)
    one_by_one = np.vstack([embed_texts(str(tiny_model_dir), [text]) for text in TEXTS])
    assert np.allclose(together, one_by_one, atol=1e-5)  # padding is masked out of the mean
    assert not np.allclose(together[0], together[1])


def test_missing_texts_embed_as_empty_and_other_types_fail(tiny_model_dir: Path) -> None:
    vectors = embed_texts(str(tiny_model_dir), [None, ""])  # type: ignore[list-item]
    assert np.allclose(vectors[0], vectors[1])
    with pytest.raises(DataError, match="not a string"):
        embed_texts(str(tiny_model_dir), ["ok", 3])  # type: ignore[list-item]


def test_a_fine_tuned_classifier_folder_embeds_with_its_encoder(tiny_model_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer, BertForSequenceClassification

    classifier = BertForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=3)
    classifier.save_pretrained(tmp_path / "clf")
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(tmp_path / "clf")
    from_classifier = embed_texts(str(tmp_path / "clf"), TEXTS[:3])
    assert np.allclose(from_classifier, embed_texts(str(tiny_model_dir), TEXTS[:3]), atol=1e-5)


def test_missing_model_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(LooplineError, match="No transformers model found"):
        embed_texts(str(tmp_path / "nothing"), ["x"])


def test_reference_cache_hits_misses_and_recomputes(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real = embeddings.embed_texts

    def counting(model_path: str, texts, **kwargs):
        calls.append(len(texts))
        return real(model_path, texts, **kwargs)

    monkeypatch.setattr(embeddings, "embed_texts", counting)
    cache = tmp_path / "cache"
    first = load_or_compute_reference_embeddings(cache, "ref-v1", TEXTS, str(tiny_model_dir))
    again = load_or_compute_reference_embeddings(cache, "ref-v1", TEXTS, str(tiny_model_dir))
    assert calls == [5] and np.array_equal(first, again)
    assert sorted(p.name for p in cache.iterdir()) == ["ref-v1.json", "ref-v1.npy"]  # no temp files left

    other = load_or_compute_reference_embeddings(cache, "ref-v1", TEXTS[:3], str(tiny_model_dir))
    assert calls == [5, 3] and other.shape == (3, 32)

    (cache / "ref-v1.npy").write_bytes(b"garbage")  # a damaged cache is recomputed, not trusted
    load_or_compute_reference_embeddings(cache, "ref-v1", TEXTS[:3], str(tiny_model_dir))
    assert calls == [5, 3, 3]


def test_cache_key_must_be_a_plain_file_name(tiny_model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a safe file name"):
        load_or_compute_reference_embeddings(tmp_path, "../escape", TEXTS, str(tiny_model_dir))
