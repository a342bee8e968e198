from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig

from loopline.config import TrainingConfig
from loopline.errors import TrainingError
from loopline.inference import load_classifier
from loopline.training.trainer import CHECKPOINT_FILE, EpochMetrics, TrainResult, train_model

LEARN_CFG = TrainingConfig(
    epochs=4,
    learning_rate=1e-2,
    batch_size=8,
    eval_batch_size=32,
    max_length=32,
    warmup_ratio=0.1,
    early_stopping_patience=0,
    label_smoothing=0.05,
    seed=3,
    num_threads=1,  # a tiny model gains nothing from threads, and they stall on a busy machine
)


@pytest.fixture(scope="module")
def learned(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory, frame_maker) -> TrainResult:
    """One real (tiny) training run on the keyword task, shared by the tests that read its outputs."""
    out = tmp_path_factory.mktemp("learned")
    return train_model(frame_maker(60, 1), frame_maker(30, 2), LEARN_CFG, str(tiny_model_dir), out)


def test_tiny_model_learns_the_keyword_task(learned):
    first, last = learned.history[0], learned.history[-1]
    assert learned.epochs_run == 4 and not learned.stopped_early
    assert last.train_loss < first.train_loss
    assert max(m.val_accuracy for m in learned.history) > 0.5  # chance is 1/3
    assert learned.best_val_score == max(m.val_score for m in learned.history)
    assert learned.labels == ["billing", "delivery", "login"]  # labels=None: sorted train labels
    assert learned.device == "cpu" and learned.num_train_rows == 60
    assert learned.samples_per_s > 0 and learned.tokens_per_s > learned.samples_per_s  # >1 real token/text


def test_outputs_best_model_and_results_json(learned):
    model_dir = learned.model_dir
    assert (model_dir / "model.safetensors").is_file() and (model_dir / "tokenizer.json").is_file()
    assert AutoConfig.from_pretrained(model_dir).id2label == {0: "billing", 1: "delivery", 2: "login"}
    results = json.loads((model_dir.parent / "results.json").read_text())
    assert {k: results[k] for k in learned.to_dict()} == json.loads(json.dumps(learned.to_dict()))
    assert results["params"]["learning_rate"] == LEARN_CFG.learning_rate
    assert [m["epoch"] for m in results["history"]] == [1, 2, 3, 4]
    assert not (model_dir.parent / CHECKPOINT_FILE).exists()  # finished runs drop the checkpoint


def test_saved_model_is_the_best_epoch(learned, frame_maker):
    val = frame_maker(30, 2)
    labels, _ = load_classifier(learned.model_dir, max_length=32).predict(val["text"].tolist())
    accuracy = sum(p == t for p, t in zip(labels, val["label"], strict=True)) / len(val)
    assert accuracy == pytest.approx(learned.history[learned.best_epoch - 1].val_accuracy)


def test_warm_start_grows_labels_and_keeps_old_ids(learned, frame_maker, fast_cfg, tmp_path):
    new = {"billing": "invoice", "delivery": "parcel", "login": "password", "cancel": "subscription"}
    result = train_model(
        frame_maker(40, 5, labels=new),
        frame_maker(12, 6, labels=new),
        fast_cfg.model_copy(update={"epochs": 1}),
        "unused-base-model",
        tmp_path,
        init_model_dir=str(learned.model_dir),
    )
    assert result.labels == ["billing", "delivery", "login", "cancel"]
    assert AutoConfig.from_pretrained(result.model_dir).label2id["cancel"] == 3


def _interrupt(metrics: EpochMetrics) -> None:
    raise KeyboardInterrupt  # as if the process were stopped right after the epoch's checkpoint


def test_resume_continues_at_the_next_epoch(train_df, val_df, fast_cfg, tiny_model_dir, tmp_path):
    base, run_dir = str(tiny_model_dir), tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train_model(train_df, val_df, fast_cfg, base, run_dir, on_epoch_end=_interrupt)
    assert (run_dir / CHECKPOINT_FILE).is_file()

    seen: list[EpochMetrics] = []
    resumed = train_model(train_df, val_df, fast_cfg, base, run_dir, on_epoch_end=seen.append)
    straight = train_model(train_df, val_df, fast_cfg, base, tmp_path / "straight")

    assert [m.epoch for m in seen] == [2]
    assert [m.epoch for m in resumed.history] == [1, 2]
    # model, optimizer, scheduler and RNG state came back: the same numbers as an uninterrupted run
    for a, b in zip(resumed.history, straight.history, strict=True):
        assert a.train_loss == pytest.approx(b.train_loss, rel=1e-4)
        assert a.val_score == pytest.approx(b.val_score)


def test_checkpoint_of_other_settings_is_not_resumed(train_df, val_df, fast_cfg, tiny_model_dir, tmp_path):
    with pytest.raises(KeyboardInterrupt):
        train_model(train_df, val_df, fast_cfg, str(tiny_model_dir), tmp_path, on_epoch_end=_interrupt)
    seen: list[EpochMetrics] = []
    other = fast_cfg.model_copy(update={"learning_rate": 5e-3, "epochs": 1})
    train_model(train_df, val_df, other, str(tiny_model_dir), tmp_path, on_epoch_end=seen.append)
    assert [m.epoch for m in seen] == [1]


def test_early_stopping_when_validation_stalls(train_df, val_df, fast_cfg, tiny_model_dir, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="loopline.training.trainer")
    threads = torch.get_num_threads()
    run_threads = 1 if threads > 1 else 2  # differs from the process setting, which must come back
    frozen = fast_cfg.model_copy(
        update={"learning_rate": 1e-12, "epochs": 5, "early_stopping_patience": 1, "num_threads": run_threads}
    )
    result = train_model(train_df, val_df, frozen, str(tiny_model_dir), tmp_path)

    assert result.stopped_early and result.epochs_run == 2 and result.best_epoch == 1
    assert torch.get_num_threads() == threads  # num_threads applies to the run only
    assert "***** Running training *****" in caplog.text and "Num examples = 60" in caplog.text
    assert "Example: text=" in caplog.text and "Early stopping" in caplog.text


def test_bad_inputs_say_what_to_do(train_df, val_df, fast_cfg, tiny_model_dir, tmp_path):
    base = str(tiny_model_dir)
    with pytest.raises(TrainingError, match="train_df has no rows"):
        train_model(train_df.iloc[:0], val_df, fast_cfg, base, tmp_path)
    with pytest.raises(TrainingError, match="at least 2 labels"):
        one = train_df.assign(label="billing")
        train_model(one, val_df.assign(label="billing"), fast_cfg, base, tmp_path)
    with pytest.raises(TrainingError, match="lacks column") as err:
        train_model(train_df.rename(columns={"text": "body"}), val_df, fast_cfg, base, tmp_path)
    assert "body" in str(err.value)

    odd = val_df.copy()
    odd.loc[4, "label"] = "refund"
    with pytest.raises(TrainingError, match="refund") as err:
        train_model(train_df, odd, fast_cfg, base, tmp_path)
    assert f"rows {odd.loc[4, 'source_row']}" in str(err.value) and "What to do" in str(err.value)

    with pytest.raises(TrainingError, match="not in `labels`"):
        train_model(train_df, val_df, fast_cfg, base, tmp_path, labels=["billing", "login"])
    missing = train_df.copy()
    missing.loc[3, "text"] = None
    with pytest.raises(TrainingError, match="missing text"):
        train_model(missing, val_df, fast_cfg, base, tmp_path)
