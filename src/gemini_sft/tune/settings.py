"""The tune stage's settings: one record, its checks, and the create request built from it.

:class:`TuningSettings` is the stage contract: every field is a parameter of
the KFP component ``tune_model`` (same name, type and default; the contract
tests keep them equal) with a one-line description the Vertex console shows.
The datasets are not settings: they are the clean stage's splits, given as a
:class:`TuningData`.
"""

from __future__ import annotations

import logging
import math
import re
import string
from dataclasses import dataclass, replace
from pathlib import Path

from gemini_sft import model_catalog
from gemini_sft.contracts import setting
from gemini_sft.errors import ConfigError, TuningSettingsError
from gemini_sft.names import sanitize_label_key, sanitize_label_value
from gemini_sft.tune.open_model_rules import gemini_only_problems, open_model_problems
from gemini_sft.tune.service import TuningRequest
from gemini_sft.tune.watch import WatchSettings

log = logging.getLogger(__name__)

RUN_LABEL_KEY = "gemini-sft-run"
REQUEST_LABEL_KEY = "gemini-sft-request"
DATASET_LABEL_KEY = "gemini-sft-dataset"
MANAGED_BY_LABEL_KEY = "managed-by"
MANAGED_BY_LABEL_VALUE = "gemini-sft"
RESERVED_LABEL_KEYS = frozenset({RUN_LABEL_KEY, REQUEST_LABEL_KEY, DATASET_LABEL_KEY, MANAGED_BY_LABEL_KEY})

_MAX_LABELS = 64
_MAX_DISPLAY_NAME_LENGTH = 128
_DISPLAY_NAME_FIELDS = frozenset({"run", "dataset_hash", "base_model"})
_TUNED_MODEL_RE = re.compile(
    r"^projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
    r"/models/(?P<model>[^/@]+)(@(?P<version>[A-Za-z0-9_-]+))?$"
)
_KMS_KEY_RE = re.compile(
    r"^projects/[^/]+/locations/(?P<location>[^/]+)/keyRings/[^/]+/cryptoKeys/[^/]+$"
)


def holds_no_rows(path: str | Path) -> bool:
    """True only for a readable file without a non-blank line (an unreadable one is Vertex's to judge)."""
    file = Path(path)
    if not file.is_file():
        return False
    with file.open("rb") as handle:
        return not any(line.strip() for line in handle)


def _regional_name_problems(
    pattern: re.Pattern[str], name: str, location: str | None, malformed: str, other_region: str
) -> list[str]:
    """The problem of a regional resource name: its shape, or with ``location`` only whether it is in that region.

    Args:
        pattern: the resource name's shape, with a ``location`` group.
        name: the resource name to check.
        location: the job's region; None checks the shape only.
        malformed: the problem when the name does not have the shape.
        other_region: the problem when the name is in another region, a format string of ``resource_location``
            and ``location``.
    """
    match = pattern.match(name)
    if location is None:
        return [] if match else [malformed]
    if match and match.group("location") != location:
        return [other_region.format(resource_location=match.group("location"), location=location)]
    return []


def _invalid(problems: list[str]) -> str:
    return "Tuning settings are invalid (nothing was launched):\n- " + "\n- ".join(problems)


@dataclass(frozen=True)
class TuningData:
    """The datasets of one tuning job: the training JSONL and the validation JSONL ("" for none).

    URIs are ``gs://`` on Vertex; a local server reads local paths.
    """

    training_uri: str
    validation_uri: str = ""

    @classmethod
    def from_splits(cls, train_uri: str, validation_uri: str, validation_path: str | Path) -> "TuningData":
        """The clean stage's splits; an empty validation split is not sent (Vertex refuses an empty file).

        Args:
            train_uri: URI of the training split.
            validation_uri: URI of the validation split.
            validation_path: local path of the validation split, read to see whether it holds a row.
        """
        if holds_no_rows(validation_path):
            log.info("the validation split is empty: tuning without a validation dataset")
            return cls(training_uri=train_uri)
        return cls(training_uri=train_uri, validation_uri=validation_uri)


@dataclass(frozen=True)
class TuningSettings:
    """Every setting of the tune stage, as the pipeline passes them.

    Validated on construction (TuningSettingsError lists every problem);
    :meth:`check` adds what depends on the region and the datasets.

    The job starts from :meth:`start_model`: ``continuous_from_model`` when set;
    else, with ``continuous_tuning``, ``champion_model`` (the model in
    production); else (no champion yet) the base model.
    """

    base_model: str = setting(
        model_catalog.DEFAULT_BASE_MODEL,
        "Model to tune: Gemini (gemini-2.5-flash) or an open model Vertex tunes (meta/llama3_1@llama-3.1-8b-instruct).",
    )
    epochs: int = setting(3, "Passes over the training data (1 or more).")
    adapter_size: int = setting(4, "LoRA adapter size: 1, 2, 4, 8 or 16 (Pro: up to 8); 0 lets Vertex choose.")
    learning_rate_multiplier: float = setting(1.0, "Multiplier of the learning rate Vertex recommends (above 0).")
    tuned_model_display_name: str = setting(
        "gemini-sft-{run}", "Display name of the tuned model; {run}, {dataset_hash} and {base_model} are filled in."
    )
    description: str = setting(
        "", "Description of the tuning job; empty gives one naming the pipeline run.", pipeline_name="tuning_description"
    )
    labels: dict[str, str] = setting(
        {}, "Labels of the tuning job, sanitised to Google Cloud label rules.", pipeline_name="tuning_labels"
    )
    dataset_hash: str = setting("", "Hash of the cleaned splits from the clean step; set as a job label.")
    estimated_cost_usd: float = setting(0.0, "Cost estimated by the validate step, reported beside the actual cost.")
    encryption_key: str = setting(
        "", "Cloud KMS key projects/P/locations/L/keyRings/R/cryptoKeys/K in the job's region; empty for none."
    )
    output_uri: str = setting(
        "", "Cloud Storage prefix for the job's outputs; open models only, leave it empty for Gemini.",
        pipeline_name="tuning_output_uri",
    )
    export_last_checkpoint_only: bool = setting(False, "Export only the final checkpoint of the tuned model.")
    continuous_from_model: str = setting(
        "", "Tuned model to continue from (projects/P/locations/L/models/ID@alias); overrides continuous_tuning."
    )
    poll_interval_seconds: float = setting(60.0, "Longest wait between two polls of the tuning job, in seconds.")
    max_wait_hours: float = setting(24.0, "Hours to watch the job before the step fails; the job is left running.")
    pipeline_run: str = setting(
        "", "Pipeline run name; its label lets a retry resume this step's job (empty disables resume).", cli=False
    )
    continuous_tuning: bool = setting(False, "Start from the model in production (champion_model) when there is one.")
    champion_model: str = setting("", "The model in production (projects/P/locations/L/models/ID@alias), or empty.")
    price_per_million_tokens_usd: float = setting(
        0.0, "Price per million training tokens for the actual cost; 0 uses the catalogue price."
    )
    retry_failed_job: bool = setting(
        False, "Launch a new job when an earlier attempt's job ended FAILED, CANCELLED or EXPIRED."
    )
    cancel_on_timeout: bool = setting(False, "Cancel the job when max_wait_hours runs out, instead of leaving it.")
    cancel_on_stop: bool = setting(
        True, "Cancel the job when the step is stopped (SIGTERM); turn off on preemptible nodes."
    )
    quota_wait_warning_minutes: float = setting(
        30.0, "Minutes the job may wait for tuning quota or hardware capacity before the step warns; 0 never warns."
    )
    start_checkpoint_id: str = setting(
        "", "Checkpoint of the start model to continue from (continuous tuning); empty uses its default checkpoint."
    )
    tuning_mode: str = setting(
        "", "Open models only: PEFT_ADAPTER (LoRA) or FULL fine-tuning; empty lets Vertex choose. Refused for Gemini.",
        choices=("", *model_catalog.TUNING_MODES),
    )
    learning_rate: float = setting(
        0.0, "Open models only: the learning rate (above 0); 0 lets Vertex choose. Gemini takes the multiplier.",
        pipeline_name="tuning_learning_rate",
    )
    batch_size: int = setting(
        0, "Open models only: examples per training step (1 or more); 0 lets Vertex choose.",
        pipeline_name="tuning_batch_size",
    )

    def start_model(self) -> str:
        """The tuned model the job continues from, or "" to tune the base model."""
        if self.continuous_from_model:
            return self.continuous_from_model
        return self.champion_model if self.continuous_tuning else ""

    @property
    def open_model(self) -> model_catalog.CatalogModel | None:
        """The catalogue entry of the base model when it is an open model Vertex tunes itself, else None."""
        return model_catalog.managed_open_model(self.base_model)

    @property
    def effective_base_model(self) -> str:
        """The model the job starts from: the tuned model for continuous tuning, else the base model."""
        return self.start_model() or self.base_model

    @property
    def run_label(self) -> str:
        """The sanitised pipeline-run label value ("" when no run is known)."""
        return sanitize_label_value(self.pipeline_run) if self.pipeline_run.strip() else ""

    def watch_settings(self) -> WatchSettings:
        """The watch pace of these settings (``poll_interval_seconds`` is the backoff ceiling)."""
        return WatchSettings.from_pipeline(self.poll_interval_seconds, self.max_wait_hours)

    def __post_init__(self) -> None:
        problems = self._own_problems()
        if problems:
            raise TuningSettingsError(_invalid(problems))

    def check(self, location: str, data: TuningData, remote: bool = True) -> None:
        """Check what depends on where the job runs and what it reads; raises TuningSettingsError listing each.

        The settings' own rules (model, epochs, adapter size, labels, ...) are checked when the record is made.

        Args:
            location: the region the job runs in.
            data: the datasets the job reads.
            remote: False when the API endpoint is a local server, which reads local paths; on Vertex,
                dataset URIs must be ``gs://``.
        """
        problems: list[str] = []
        open_model = self.open_model
        if open_model is not None and open_model.open_model is not None:
            if location not in open_model.open_model.regions:
                problems.append(
                    f"region {location!r} does not offer tuning of {open_model.name}; use one of: "
                    + ", ".join(open_model.open_model.regions)
                )
        elif location not in model_catalog.TUNING_REGIONS:
            problems.append(
                f"region {location!r} does not offer Gemini tuning; use one of: "
                + ", ".join(sorted(model_catalog.TUNING_REGIONS))
            )
        problems += self._start_model_problems(location)
        problems += self._data_problems(data, remote)
        if self.output_uri and remote and not self.output_uri.startswith("gs://"):
            problems.append(f"output_uri {self.output_uri!r} must be a gs:// prefix")
        problems += self._encryption_key_problems(location)
        if problems:
            raise TuningSettingsError(_invalid(problems))

    def _own_problems(self) -> list[str]:
        """What these settings break on their own, wherever the job would run."""
        problems: list[str] = []
        limits: model_catalog.ModelLimits | None = None
        try:
            limits = model_catalog.limits_for(self.base_model)
        except ConfigError as error:
            problems.append(str(error))
        problems += self._start_model_problems()
        if not isinstance(self.epochs, int) or isinstance(self.epochs, bool) or self.epochs < 1:
            problems.append(f"epochs must be a whole number >= 1, got {self.epochs!r}")
        if not (math.isfinite(self.learning_rate_multiplier) and self.learning_rate_multiplier > 0):
            problems.append(f"learning_rate_multiplier must be > 0, got {self.learning_rate_multiplier!r}")
        open_model = self.open_model
        if open_model is not None:
            problems += open_model_problems(self, open_model)
        else:
            problems += gemini_only_problems(self)
        if self.adapter_size != 0 and open_model is None:
            allowed = limits.adapter_sizes if limits else tuple(model_catalog.ADAPTER_SIZE_ENUM)
            if self.adapter_size not in allowed or self.adapter_size not in model_catalog.ADAPTER_SIZE_ENUM:
                problems.append(
                    f"adapter_size {self.adapter_size} is not allowed for {self.base_model}; "
                    f"allowed: {', '.join(map(str, allowed))} (or 0 to let Vertex choose)"
                )
        problems += self._encryption_key_problems()
        if self.price_per_million_tokens_usd < 0:
            problems.append("price_per_million_tokens_usd must be >= 0 (0 = catalogue price)")
        if not self.poll_interval_seconds > 0:
            problems.append(f"poll_interval_seconds must be > 0, got {self.poll_interval_seconds}")
        if not self.max_wait_hours > 0:
            problems.append(f"max_wait_hours must be > 0, got {self.max_wait_hours}")
        if not (math.isfinite(self.quota_wait_warning_minutes) and self.quota_wait_warning_minutes >= 0):
            problems.append(f"quota_wait_warning_minutes must be >= 0 (0 = never warn), got "
                            f"{self.quota_wait_warning_minutes}")
        return problems + self._label_problems() + self._display_name_problems()

    def _start_model_problems(self, location: str | None = None) -> list[str]:
        """The start model's shape; with ``location``, only whether it is in the job's region."""
        start = self.start_model()
        if not start:
            return []
        return _regional_name_problems(
            _TUNED_MODEL_RE,
            start,
            location,
            malformed=(
                f"continuous_from_model {start!r} is not a tuned model resource "
                "like projects/P/locations/L/models/ID@production"
            ),
            other_region=(
                "continuous_from_model is in {resource_location!r} but the job runs in {location!r}; "
                "continuous tuning must run in the model's region"
            ),
        )

    @staticmethod
    def _data_problems(data: TuningData, remote: bool) -> list[str]:
        if not data.training_uri.strip():
            return ["the training dataset URI is empty; the tune step needs the clean stage's train split"]
        problems = []
        if remote and not data.training_uri.startswith("gs://"):
            problems.append(f"training dataset {data.training_uri!r} must be a gs:// URI for Vertex to read it")
        if data.validation_uri and remote and not data.validation_uri.startswith("gs://"):
            problems.append(f"validation dataset {data.validation_uri!r} must be a gs:// URI for Vertex to read it")
        return problems

    def _encryption_key_problems(self, location: str | None = None) -> list[str]:
        """The key's shape; with ``location``, only whether it is in the job's region."""
        if not self.encryption_key:
            return []
        return _regional_name_problems(
            _KMS_KEY_RE,
            self.encryption_key,
            location,
            malformed=(
                f"encryption_key {self.encryption_key!r} is not a Cloud KMS key name like "
                "projects/P/locations/L/keyRings/R/cryptoKeys/K"
            ),
            other_region="encryption_key is in {resource_location!r}; the key must be in the job's region {location!r}",
        )

    def _label_problems(self) -> list[str]:
        try:
            labels = self.job_labels()
        except TuningSettingsError as error:
            return [str(error)]
        if len(labels) + 1 > _MAX_LABELS:  # + the request fingerprint label
            return [f"{len(labels) + 1} labels in all; Vertex accepts at most {_MAX_LABELS}"]
        return []

    def _display_name_problems(self) -> list[str]:
        try:
            self.display_name()
        except TuningSettingsError as error:
            return [str(error)]
        return []

    def job_labels(self) -> dict[str, str]:
        """User labels plus the run, dataset and managed-by labels, all sanitised.

        :meth:`build_request` adds the request fingerprint label.

        Raises TuningSettingsError when a user label uses a reserved key or two keys collide.
        """
        labels: dict[str, str] = {}
        for key, value in (self.labels or {}).items():
            clean_key = sanitize_label_key(str(key))
            if clean_key in RESERVED_LABEL_KEYS:
                raise TuningSettingsError(
                    f"Label {key!r} is set by the tune step itself; remove it from the labels parameter."
                )
            if clean_key in labels:
                raise TuningSettingsError(f"Labels {key!r} and another key both become {clean_key!r}; rename one.")
            labels[clean_key] = sanitize_label_value(str(value))
        labels[MANAGED_BY_LABEL_KEY] = MANAGED_BY_LABEL_VALUE
        if self.run_label:
            labels[RUN_LABEL_KEY] = self.run_label
        if self.dataset_hash:
            labels[DATASET_LABEL_KEY] = sanitize_label_value(self.dataset_hash)
        return labels

    def display_name(self) -> str:
        """The tuned model display name with the template filled in (cut to Vertex's 128 characters).

        Raises TuningSettingsError for an unknown ``{field}`` or a malformed template.
        """
        try:
            fields = {name for _, name, _, _ in string.Formatter().parse(self.tuned_model_display_name) if name}
        except ValueError as error:
            raise TuningSettingsError(
                f"tuned_model_display_name {self.tuned_model_display_name!r} is not a valid template: {error}"
            ) from error
        unknown = fields - _DISPLAY_NAME_FIELDS
        if unknown:
            raise TuningSettingsError(
                f"tuned_model_display_name uses unknown field(s) {sorted(unknown)}; "
                f"available: {{run}}, {{dataset_hash}}, {{base_model}}"
            )
        name = self.tuned_model_display_name.format(
            run=self.pipeline_run or "adhoc",
            dataset_hash=self.dataset_hash[:12],
            base_model=model_catalog.base_model_id(self.base_model),
        ).strip()
        if not name:
            raise TuningSettingsError("tuned_model_display_name is empty")
        return name[:_MAX_DISPLAY_NAME_LENGTH]

    def build_request(self, data: TuningData) -> TuningRequest:
        """The create request for these settings and datasets (call :meth:`check` first)."""
        description = self.description or (
            f"Supervised fine-tune of {self.effective_base_model} by the gemini-sft pipeline"
            + (f" (run {self.pipeline_run})" if self.pipeline_run else "")
        )
        gemini = self.open_model is None
        request = TuningRequest(
            base_model=self.effective_base_model,
            training_dataset_uri=data.training_uri,
            validation_dataset_uri=data.validation_uri or None,
            epoch_count=self.epochs,
            adapter_size=model_catalog.ADAPTER_SIZE_ENUM[self.adapter_size] if self.adapter_size and gemini else None,
            learning_rate_multiplier=float(self.learning_rate_multiplier) if gemini else None,
            tuning_mode=model_catalog.TUNING_MODE_ENUM_PREFIX + self.tuning_mode if self.tuning_mode else None,
            learning_rate=float(self.learning_rate) if self.learning_rate else None,
            batch_size=int(self.batch_size) if self.batch_size else None,
            tuned_model_display_name=self.display_name(),
            description=description,
            labels=self.job_labels(),
            kms_key_name=self.encryption_key or None,
            output_uri=self.output_uri or None,
            export_last_checkpoint_only=self.export_last_checkpoint_only,
            pre_tuned_model_checkpoint_id=(self.start_checkpoint_id or None) if self.start_model() else None,
        )
        if not self.run_label:
            return request
        return replace(request, labels={**request.labels, REQUEST_LABEL_KEY: request.fingerprint()})

    def price_per_million_tokens(self) -> float:
        """The price used for the actual cost: the override, else the catalogue price of the base model."""
        if self.price_per_million_tokens_usd > 0:
            return self.price_per_million_tokens_usd
        return model_catalog.limits_for(self.base_model).price_per_million_training_tokens_usd
