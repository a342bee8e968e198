"""The fast CPU path: an ONNX Runtime copy of a registered version, used only when it scores like torch.

``serve.runtime = "onnx"`` exports the version's transformers model to ONNX (``"onnx-int8"`` also applies
dynamic INT8 quantisation of the weights; static quantisation is not offered, it can wreck accuracy).
Before the copy may answer, it and the torch model predict the version's frozen test set; when accuracy
or macro-F1 differ by more than ``serve.runtime_tolerance`` the service keeps torch and says why. The
export and the verdict are cached beside the version's download (home/models/<name>-v<N>-<runtime>),
written to a temporary folder first and renamed, so a killed export is redone, never half-used.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from loopline.config import Settings
from loopline.errors import LooplineError
from loopline.evaluation.metrics import compute_metrics
from loopline.inference import Classifier, ProbabilityClassifier, check_texts
from loopline.pipeline.canary import CANARY_TEXTS
from loopline.serving.prediction_log import Embed
from loopline.training.batching import encode_texts, length_sorted_batches, pad_batch

logger = logging.getLogger(__name__)

TORCH = "torch"
ONNX_FILE = "model.onnx"
VERDICT_FILE = "verdict.json"
#: Bump when the export changes, so cached exports of older code are redone.
EXPORT_FORMAT = 1


@dataclass(frozen=True)
class RuntimeVerdict:
    """Which runtime answers a version and the evidence: both runtimes' scores on the frozen test set."""

    requested: str
    used: str
    reason: str
    test_rows: int = 0
    torch_accuracy: float | None = None
    torch_macro_f1: float | None = None
    accuracy: float | None = None
    macro_f1: float | None = None
    max_probability_difference: float | None = None
    export_seconds: float | None = None
    onnx_sha256: str | None = None
    export_format: int = EXPORT_FORMAT

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class OnnxClassifier(ProbabilityClassifier):
    """A sequence classifier exported to ONNX, answered by ONNX Runtime on the CPU."""

    session: Any  # onnxruntime.InferenceSession
    tokenizer: Any
    labels: list[str]
    max_length: int = 64

    def predict_proba(self, texts: Sequence[str], batch_size: int = 128) -> np.ndarray:
        texts = check_texts(texts)
        input_ids = encode_texts(self.tokenizer, texts, self.max_length)
        pad_id = self.tokenizer.pad_token_id or 0
        probabilities = np.zeros((len(input_ids), len(self.labels)), dtype=np.float32)
        for indices in length_sorted_batches([len(ids) for ids in input_ids], batch_size):
            batch = pad_batch([input_ids[i] for i in indices], pad_id)
            feed = {name: tensor.numpy() for name, tensor in batch.items()}
            (logits,) = self.session.run(["logits"], feed)
            probabilities[indices] = _softmax(logits)
        return probabilities


def fast_classifier(
    settings: Settings, version: str, model_dir: Path, torch_model: Classifier, test_version: str
) -> tuple[ProbabilityClassifier, RuntimeVerdict]:
    """The classifier that should answer for ``version`` under ``serve.runtime``, and why."""
    requested = settings.serve.runtime
    if requested == TORCH:
        return torch_model, RuntimeVerdict(requested, TORCH, "serve.runtime is torch")
    folder = settings.home / "models" / f"{settings.model_name}-v{version}-{requested}"
    verdict = _cached_verdict(folder)
    if verdict is None:
        try:
            verdict = _export_and_judge(settings, model_dir, torch_model, test_version, folder, requested)
        except (LooplineError, OSError, RuntimeError, ValueError) as err:  # export or data trouble
            logger.warning("v%s: no %s copy (%s); torch answers", version, requested, err)
            return torch_model, RuntimeVerdict(requested, TORCH, f"{requested} not used: {err}")
    if verdict.used == TORCH:
        logger.warning("v%s: torch answers: %s", version, verdict.reason)
        return torch_model, verdict
    logger.info("v%s: %s answers (%s)", version, verdict.used, verdict.reason)
    return load_onnx(folder / ONNX_FILE, torch_model), verdict


def export_onnx(model_dir: Path, target: Path, quantize: bool) -> Path:
    """Export a transformers sequence classifier to ``target`` (ONNX, dynamic batch and length axes)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    plain = target.with_name("plain.onnx") if quantize else target
    _trace_to_onnx(model, AutoTokenizer.from_pretrained(model_dir), plain, "logits", {0: "batch"})
    if quantize:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # quantize_dynamic logs "consider pre-processing" advice on the root
        try:
            quantize_dynamic(str(plain), str(target), weight_type=QuantType.QInt8)
        finally:
            root.setLevel(level)
        plain.unlink()
    return target


def load_onnx(path: Path, like: Classifier) -> OnnxClassifier:
    return OnnxClassifier(load_onnx_session(path), like.tokenizer, list(like.labels), like.max_length)


def load_onnx_session(path: Path, threads: int | None = None) -> Any:
    """An ONNX Runtime CPU session; ``threads`` defaults to the cores torch would use."""
    import onnxruntime as ort
    import torch

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _export_and_judge(
    settings: Settings,
    model_dir: Path,
    torch_model: Classifier,
    test_version: str,
    folder: Path,
    requested: str,
) -> RuntimeVerdict:
    from loopline.pipeline.datasets import load_splits

    test = load_splits(settings, test_version).test if test_version else None
    if test is None or test.empty:
        raise LooplineError(f"no frozen test set to judge the {requested} copy (snapshot {test_version!r})")
    partial = folder.with_name(f"{folder.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        started = time.perf_counter()
        onnx_path = export_onnx(model_dir, partial / ONNX_FILE, quantize=requested == "onnx-int8")
        export_seconds = time.perf_counter() - started
        verdict = judge(
            load_onnx(onnx_path, torch_model),
            torch_model,
            [str(t) for t in test["text"]],
            [str(y) for y in test["label"]],
            requested,
            settings.serve.runtime_tolerance,
        )
        verdict = RuntimeVerdict(
            **{**verdict.to_dict(), "export_seconds": export_seconds, "onnx_sha256": _sha256(onnx_path)}
        )
        (partial / VERDICT_FILE).write_text(json.dumps(verdict.to_dict(), indent=2), encoding="utf-8")
        shutil.rmtree(folder, ignore_errors=True)  # a damaged earlier export
        try:
            partial.rename(folder)
        except OSError:  # another replica sharing this home renamed its export first: use that one
            cached = _cached_verdict(folder)
            if cached is None:
                raise
            return cached
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return verdict


def judge(
    candidate: ProbabilityClassifier,
    torch_model: ProbabilityClassifier,
    texts: list[str],
    labels: list[str],
    requested: str,
    tolerance: float,
) -> RuntimeVerdict:
    """Score both on the same labelled texts; the candidate is used only within ``tolerance`` of torch."""
    reference = torch_model.predict_proba(texts)
    probabilities = candidate.predict_proba(texts)
    names = torch_model.labels
    scores = [
        compute_metrics(labels, [names[i] for i in p.argmax(axis=1)], p.max(axis=1), names)
        for p in (reference, probabilities)
    ]
    drop = max(
        scores[0].accuracy - scores[1].accuracy,
        scores[0].macro_f1 - scores[1].macro_f1,
    )
    within = drop <= tolerance
    reason = (
        f"test set ({len(texts)} rows): accuracy {scores[1].accuracy:.4f} vs torch {scores[0].accuracy:.4f}, "
        f"macro-F1 {scores[1].macro_f1:.4f} vs {scores[0].macro_f1:.4f}; "
        + ("within" if within else "outside")
        + f" the tolerance of {tolerance:.4f}"
    )
    return RuntimeVerdict(
        requested=requested,
        used=requested if within else TORCH,
        reason=reason,
        test_rows=len(texts),
        torch_accuracy=scores[0].accuracy,
        torch_macro_f1=scores[0].macro_f1,
        accuracy=scores[1].accuracy,
        macro_f1=scores[1].macro_f1,
        max_probability_difference=float(np.abs(reference - probabilities).max()),
    )


def _cached_verdict(folder: Path) -> RuntimeVerdict | None:
    """The verdict of an earlier export, when its ONNX file is still the one judged."""
    try:
        data = json.loads((folder / VERDICT_FILE).read_text(encoding="utf-8"))
        verdict = RuntimeVerdict(**data)
    except (OSError, ValueError, TypeError):
        return None
    if verdict.export_format != EXPORT_FORMAT:
        return None
    if verdict.used != TORCH and (
        not (folder / ONNX_FILE).is_file() or _sha256(folder / ONNX_FILE) != verdict.onnx_sha256
    ):
        logger.warning("The cached ONNX copy in %s is damaged; exporting again", folder)
        return None
    return verdict


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32)


# ---- the prediction log's embedder -------------------------------------------------------------------


def onnx_embedder(settings: Settings) -> Embed | None:
    """The drift check's sentence embedder (mean-pooled, normalised) on ONNX Runtime, for the prediction
    log; None (the log keeps torch) when the export fails or its vectors differ from torch's: served and
    reference embeddings must be the same function, so only fp32 is used here, never INT8."""
    from loopline.monitoring.embeddings import embed_texts

    base, max_length = settings.resolved_base_model, settings.training.max_length
    key = hashlib.sha256(f"{Path(base).resolve()}\0{EXPORT_FORMAT}".encode()).hexdigest()[:16]
    path = settings.home / "models" / f"embedder-{key}-onnx" / ONNX_FILE
    try:
        if not path.is_file():
            _export_encoder(Path(base), path)
        # One thread: the log is background work and must leave the other cores to requests.
        embedder = OnnxEmbedder(load_onnx_session(path, threads=1), _tokenizer(base), max_length)
        probe = list(CANARY_TEXTS)
        difference = float(np.abs(embedder(probe) - embed_texts(base, probe, max_length=max_length)).max())
    except (OSError, RuntimeError, ValueError) as err:
        logger.warning("Prediction log embeds with torch: no ONNX embedder (%s)", err)
        return None
    if difference > 1e-4:
        logger.warning("Prediction log embeds with torch: the ONNX embedder differs by %.2g", difference)
        return None
    return embedder


@dataclass
class OnnxEmbedder:
    session: Any
    tokenizer: Any
    max_length: int

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        """Like ``monitoring.embeddings.embed_texts``: masked mean of the last layer, unit length."""
        from loopline.monitoring.embeddings import clean_texts

        cleaned = clean_texts(texts)  # the torch embedder's rules for missing values
        input_ids = encode_texts(self.tokenizer, cleaned, self.max_length)
        rows: dict[int, np.ndarray] = {}
        for indices in length_sorted_batches([len(ids) for ids in input_ids], 128):
            batch = pad_batch([input_ids[i] for i in indices], self.tokenizer.pad_token_id or 0)
            feed = {name: tensor.numpy() for name, tensor in batch.items()}
            (hidden,) = self.session.run(["last_hidden_state"], feed)
            mask = feed["attention_mask"][..., None].astype(np.float32)
            pooled = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
            pooled /= np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
            rows.update(zip(indices, pooled, strict=True))
        return np.stack([rows[i] for i in range(len(cleaned))]).astype(np.float32)


def _export_encoder(base: Path, target: Path) -> None:
    """The transformer body of ``base`` to ONNX (output: last_hidden_state), written atomically."""
    from transformers import AutoModel

    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    try:
        model = AutoModel.from_pretrained(base).eval()
        axes = {0: "batch", 1: "sequence"}
        _trace_to_onnx(model, _tokenizer(str(base)), partial, "last_hidden_state", axes)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)


def _trace_to_onnx(model: Any, tokenizer: Any, path: Path, output: str, output_axes: dict[int, str]) -> None:
    """Trace ``model(input_ids, attention_mask)`` to ONNX with dynamic batch and sequence axes."""
    import torch

    sample = tokenizer(["a first example text", "a second, longer example text to pad"], padding=True)
    inputs = (torch.tensor(sample["input_ids"]), torch.tensor(sample["attention_mask"]))
    with warnings.catch_warnings():  # the TorchScript exporter warns about tracing; callers judge the result
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            inputs,
            str(path),
            input_names=["input_ids", "attention_mask"],
            output_names=[output],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "sequence"},
                "attention_mask": {0: "batch", 1: "sequence"},
                output: output_axes,
            },
            opset_version=17,
            dynamo=False,
        )


def _tokenizer(path: str) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)
