"""What Vertex allows and charges per Gemini model, read from one data file.

The catalogue is ``gemini_sft/data/models.json`` (:data:`CATALOG_FILE`): per
model whether Vertex tunes it, its adapter sizes, token limits, thinking rules
and list prices (for an open model Vertex tunes itself: its tuning modes,
regions and sequence lengths, :class:`ManagedOpenModel`), each group with the page it was read from, when, and whether
it was verified. :func:`catalog` reads it once. Prices are list prices and not
guaranteed; they can be overridden (``price_per_million_tokens_usd`` settings)
wherever a cost is estimated.

A model the file does not know is not an error: :func:`limits_for` warns
(naming the file and how to add the model) and uses the default base model's
limits, so a model Google adds can be used before the file knows it. A model
the file marks discontinued or not tunable is refused with ConfigError.
"""

from __future__ import annotations

import functools
import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gemini_sft.errors import ConfigError

log = logging.getLogger(__name__)

CATALOG_FILE = Path(__file__).resolve().parent / "data" / "models.json"
AVAILABLE = "available"
DISCONTINUED = "discontinued"
THINKING_BUDGET = "budget"
THINKING_LEVEL = "level"
THINKING_NONE = "none"

ADAPTER_SIZE_ENUM: dict[int, str] = {
    1: "ADAPTER_SIZE_ONE",
    2: "ADAPTER_SIZE_TWO",
    4: "ADAPTER_SIZE_FOUR",
    8: "ADAPTER_SIZE_EIGHT",
    16: "ADAPTER_SIZE_SIXTEEN",
}

# Regions where Vertex offers Gemini supervised tuning (Google's documentation, 2026).
TUNING_REGIONS: frozenset[str] = frozenset(
    {
        "us-central1",
        "us-east1",
        "us-east4",
        "us-east5",
        "us-south1",
        "us-west1",
        "us-west4",
        "europe-west1",
        "europe-west2",
        "europe-west3",
        "europe-west4",
        "europe-west6",
        "europe-west8",
        "europe-west9",
        "europe-north1",
        "europe-central2",
        "europe-southwest1",
        "asia-northeast1",
        "asia-northeast3",
        "asia-southeast1",
        "asia-south1",
        "australia-southeast1",
        "me-central1",
        "me-central2",
        "me-west1",
        "northamerica-northeast1",
        "southamerica-east1",
    }
)


# Tuning modes of managed open-model tuning (v1beta1 SupervisedTuningSpec.TuningMode, without the prefix).
TUNING_MODES: tuple[str, ...] = ("PEFT_ADAPTER", "FULL")
TUNING_MODE_ENUM_PREFIX = "TUNING_MODE_"


class UncataloguedModelWarning(UserWarning):
    """A model the catalogue file does not know was used; its limits are the default model's."""


@dataclass(frozen=True)
class ThinkingRules:
    """How a model's thinking is controlled.

    ``control`` is ``budget`` (``thinkingBudget`` tokens), ``level``
    (``thinkingLevel``) or ``none``. ``lowest`` is the least thinking the model
    allows (a budget or a level name); ``can_disable`` says whether it can be
    turned off (budget 0). ``budget_refused``: ``thinkingBudget`` is refused.
    """

    control: str
    can_disable: bool
    lowest: int | str | None
    budget_min: int | None = None
    budget_max: int | None = None
    dynamic_budget: int | None = None
    levels: tuple[str, ...] = ()
    budget_refused: bool = False
    verified: bool = False


@dataclass(frozen=True)
class ModelPrices:
    """List prices in USD per million tokens (None: unknown); thinking tokens are billed as output."""

    training: float | None
    generation_input: float | None
    generation_output: float | None
    read_on: str
    source: str
    verified: bool


@dataclass(frozen=True)
class ManagedOpenModel:
    """How Vertex tunes an open model itself (managed open-model tuning, the v1beta1 tuning API).

    ``tuning_modes`` are the modes the model allows (``PEFT_ADAPTER``, ``FULL``);
    ``max_sequence_length`` the longest example per mode; ``regions`` where the
    tuning is offered; ``output_uri_required``: a job must name a Cloud Storage
    folder for its outputs.
    """

    tuning_modes: tuple[str, ...]
    max_sequence_length: dict[str, int]
    regions: tuple[str, ...]
    output_uri_required: bool
    verified: bool = False


@dataclass(frozen=True)
class CatalogModel:
    """One model of the catalogue file, as the code uses it (``open_model`` is None for a Gemini model)."""

    name: str
    display_name: str
    status: str
    tunable: bool
    discontinued_on: str | None
    adapter_sizes: tuple[int, ...]
    limits: dict[str, int]
    thinking: ThinkingRules | None
    prices: ModelPrices | None
    open_model: ManagedOpenModel | None = None
    aliases: tuple[str, ...] = ()

    @property
    def available(self) -> bool:
        return self.status == AVAILABLE


@dataclass(frozen=True)
class ModelLimits:
    """Tuning limits and list price of one base model."""

    name: str
    max_tokens_per_example: int
    max_training_examples_text: int
    max_training_examples_multimodal: int
    max_validation_examples: int
    max_training_file_bytes: int
    adapter_sizes: tuple[int, ...]
    price_per_million_training_tokens_usd: float


@dataclass(frozen=True)
class Catalog:
    """The parsed catalogue file."""

    path: Path
    default_base_model: str
    models: dict[str, CatalogModel]

    def find(self, model: str) -> CatalogModel | None:
        """The entry of a model reference (``-001`` versions map to their family), or None when unknown.

        An open model is named in full (``meta/llama3_1@llama-3.1-8b-instruct``, also under ``publishers/``).
        """
        open_id = model.strip().removeprefix("publishers/").replace("/models/", "/", 1)
        for entry in self.models.values():
            if entry.open_model is not None and open_id in (entry.name, *entry.aliases):
                return entry
        model_id = base_model_id(model)
        for name in sorted(self.models, key=len, reverse=True):
            if model_id == name or model_id.startswith(name + "-0"):
                return self.models[name]
        return None

    def tunable_names(self) -> list[str]:
        return sorted(name for name, entry in self.models.items() if entry.tunable and entry.available)


def _thinking(raw: dict[str, Any] | None) -> ThinkingRules | None:
    if not raw:
        return None
    return ThinkingRules(
        control=str(raw["control"]),
        can_disable=bool(raw.get("can_disable", False)),
        lowest=raw.get("lowest"),
        budget_min=raw.get("budget_min"),
        budget_max=raw.get("budget_max"),
        dynamic_budget=raw.get("dynamic_budget"),
        levels=tuple(raw.get("levels") or ()),
        budget_refused=bool(raw.get("budget_refused", False)),
        verified=bool(raw.get("verified", False)),
    )


def _prices(raw: dict[str, Any] | None) -> ModelPrices | None:
    if not raw:
        return None
    return ModelPrices(
        training=raw.get("training_per_million_tokens"),
        generation_input=raw.get("input_per_million_tokens"),
        generation_output=raw.get("output_per_million_tokens"),
        read_on=str(raw.get("read_on", "")),
        source=str(raw.get("source", "")),
        verified=bool(raw.get("verified", False)),
    )


def _open_model(raw: dict[str, Any] | None) -> ManagedOpenModel | None:
    if not raw:
        return None
    modes = tuple(str(mode) for mode in raw["tuning_modes"])
    unknown = [mode for mode in modes if mode not in TUNING_MODES]
    if not modes or unknown:
        raise ValueError(f"managed_open_model.tuning_modes must be some of {', '.join(TUNING_MODES)}, got {modes}")
    return ManagedOpenModel(
        tuning_modes=modes,
        max_sequence_length={str(k): int(v) for k, v in (raw.get("max_sequence_length") or {}).items()},
        regions=tuple(str(region) for region in raw["regions"]),
        output_uri_required=bool(raw.get("output_uri_required", True)),
        verified=bool(raw.get("verified", False)),
    )


def _entry(name: str, raw: dict[str, Any], path: Path) -> CatalogModel:
    try:
        tunable = bool(raw.get("tunable", False))
        adapter_sizes = tuple(int(s) for s in (raw.get("adapter_sizes") or {}).get("values", ()))
        limits = {k: int(v) for k, v in (raw.get("limits") or {}).items() if isinstance(v, int)}
        open_model = _open_model(raw.get("managed_open_model"))
        if tunable and not adapter_sizes and open_model is None:
            raise ValueError("a tunable Gemini model needs adapter_sizes.values")
        if open_model is not None and adapter_sizes:
            raise ValueError("an open model takes no adapter sizes (its tuning modes say how it is tuned)")
        unknown_sizes = [s for s in adapter_sizes if s not in ADAPTER_SIZE_ENUM]
        if unknown_sizes:
            raise ValueError(f"adapter sizes {unknown_sizes} are not Vertex adapter sizes")
        return CatalogModel(
            name=name,
            display_name=str(raw.get("display_name", name)),
            status=str(raw.get("status", AVAILABLE)),
            tunable=tunable,
            discontinued_on=raw.get("discontinued_on"),
            adapter_sizes=adapter_sizes,
            limits=limits,
            thinking=_thinking(raw.get("thinking")),
            prices=_prices(raw.get("prices_usd")),
            open_model=open_model,
            aliases=tuple(str(alias) for alias in raw.get("aliases") or ()),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"Model {name!r} in {path} is malformed ({exc}); fix its entry.") from exc


def load_catalog(path: Path = CATALOG_FILE) -> Catalog:
    """Parse a catalogue file; ConfigError naming the file when it cannot be read or is malformed."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"Cannot read the model catalogue {path}: {exc}") from exc
    models = {name: _entry(name, entry, path) for name, entry in (raw.get("models") or {}).items()}
    default = str(raw.get("default_base_model", ""))
    if default not in models or not models[default].tunable:
        raise ConfigError(f"The default_base_model {default!r} of {path} must be a tunable model of the file.")
    return Catalog(path=Path(path), default_base_model=default, models=models)


@functools.lru_cache(maxsize=1)
def catalog() -> Catalog:
    """The shipped catalogue, read once."""
    return load_catalog(CATALOG_FILE)


DEFAULT_BASE_MODEL = catalog().default_base_model


def base_model_id(model: str) -> str:
    """The bare model id of a base model reference.

    Accepts ``gemini-2.5-flash``, ``gemini-2.5-flash-001``,
    ``publishers/google/models/gemini-2.5-flash`` and full resource names.
    """
    return model.rstrip("/").rsplit("/", 1)[-1]


def managed_open_model(model: str) -> CatalogModel | None:
    """The catalogue entry of an open model Vertex tunes itself, or None (a Gemini model, a tuned model, unknown)."""
    entry = catalog_entry(model)
    return entry if entry is not None and entry.open_model is not None else None


def is_tuned_model(model: str) -> bool:
    """Whether a reference names a tuned model (``projects/.../models/ID@alias``), not a publisher model."""
    return model.startswith("projects/") and "/models/" in model and "publishers" not in model


_PRICE_WARNED: set[str] = set()


def _training_price(entry: CatalogModel, default: CatalogModel) -> float:
    if entry.prices is not None and entry.prices.training is not None:
        return float(entry.prices.training)
    if default.prices is None or default.prices.training is None:
        raise ConfigError(f"The default base model {default.name} has no training price in {CATALOG_FILE}.")
    if entry.name not in _PRICE_WARNED:
        _PRICE_WARNED.add(entry.name)
        log.warning(
            "%s has no training list price in %s: cost estimates use %s's $%.2f per million tokens; "
            "set price_per_million_tokens_usd for a right estimate.",
            entry.name, CATALOG_FILE, default.name, default.prices.training,
        )
    return float(default.prices.training)


def catalog_entry(model: str) -> CatalogModel | None:
    """The catalogue entry of a publisher model reference (thinking rules, prices), None when uncatalogued.

    A tuned model (``projects/.../models/ID@alias``) has no entry of its own: None.
    """
    return None if is_tuned_model(model) else catalog().find(model)


def _limits(entry: CatalogModel, name: str, default: CatalogModel) -> ModelLimits:
    limits = {**default.limits, **entry.limits}
    return ModelLimits(
        name=name,
        max_tokens_per_example=limits["max_tokens_per_example"],
        max_training_examples_text=limits["max_training_examples_text"],
        max_training_examples_multimodal=limits["max_training_examples_multimodal"],
        max_validation_examples=limits["max_validation_examples"],
        max_training_file_bytes=limits["max_training_file_bytes"],
        # An open model has no adapter sizes: it is tuned in a mode, not with an adapter size.
        adapter_sizes=entry.adapter_sizes or (() if entry.open_model else default.adapter_sizes),
        price_per_million_training_tokens_usd=_training_price(entry, default),
    )


def limits_for(model: str) -> ModelLimits:
    """Limits of a base model; versioned ids (``-001``) map to their family.

    A tuned model (``projects/.../models/ID@alias``, continuous tuning) has the
    limits of the family it was tuned from, which is not knowable offline: the
    default base model's limits are used. A model the catalogue does not know
    gets the default model's limits and an :class:`UncataloguedModelWarning`
    naming the catalogue file. Raises ConfigError for a model the catalogue
    marks discontinued or not tunable.
    """
    known = catalog()
    default = known.models[known.default_base_model]
    if is_tuned_model(model):
        return _limits(default, default.name, default)
    entry = known.find(model)
    if entry is None:
        model_id = base_model_id(model)
        message = (
            f"Model {model_id!r} is not in the model catalogue {known.path}: using the limits and price of "
            f"{default.name}. Add an entry for it under \"models\" in that file (copy one and fill in its "
            "values) to check its own limits."
        )
        warnings.warn(message, UncataloguedModelWarning, stacklevel=2)
        log.warning("%s", message)
        return _limits(default, model_id, default)
    if not (entry.available and entry.tunable):
        reason = (
            f"it was discontinued on {entry.discontinued_on}" if entry.status == DISCONTINUED and entry.discontinued_on
            else "Vertex does not tune it"
        )
        raise ConfigError(
            f"Model {model!r} cannot be tuned here: {reason}; tunable base models are: "
            f"{', '.join(known.tunable_names())}."
        )
    return _limits(entry, entry.name, default)


def __getattr__(name: str) -> Any:
    # MODEL_LIMITS is built from the file on first use, not at import.
    if name == "MODEL_LIMITS":
        known = catalog()
        default = known.models[known.default_base_model]
        return {n: _limits(known.models[n], n, default) for n in known.tunable_names()}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# Thinking choices of an evaluation (besides a level name or a budget number).
THINKING_OFF_OR_LOWEST = "off-or-lowest"
THINKING_MODEL_DEFAULT = "model-default"


def thinking_config_for(
    model: str, choice: str, *, rules_of: str = "", setting: str = "thinking"
) -> dict[str, int | str] | None:
    """The ``thinking_config`` to send to ``model`` for a thinking choice, or None to send none.

    Choices: ``off-or-lowest`` (budget 0 where the model can turn thinking off, else the
    lowest budget or level it allows), ``model-default`` (send nothing), a level name
    (``MINIMAL``, ``LOW``, ...) or a budget number (``0`` = off, ``-1`` = dynamic).

    Args:
        model: the model asked (a publisher model id or an endpoint/tuned model name).
        choice: the thinking choice, as above (case-insensitive for level names).
        rules_of: the catalogued model whose rules apply when ``model`` has no entry of its own
            (a tuned endpoint: the model it was tuned from).
        setting: the name of the setting, for the error messages.

    Returns:
        ``{"thinking_budget": N}`` or ``{"thinking_level": "NAME"}`` (google-genai
        ``ThinkingConfig`` keywords), or None.

    Raises:
        ConfigError: for a choice the model's rules refuse (a level where the model takes a
            budget, a budget a 3.5 model refuses, budget 0 where thinking cannot be turned off,
            a budget out of range, an unknown level), naming the allowed values.
    """
    text = str(choice).strip()
    if not text:
        raise ConfigError(f"{setting} is empty; use {THINKING_OFF_OR_LOWEST}, {THINKING_MODEL_DEFAULT}, "
                          "a level name or a budget number.")
    if text.lower() == THINKING_MODEL_DEFAULT:
        return None
    entry = catalog_entry(model) or (catalog_entry(rules_of) if rules_of else None)
    rules = entry.thinking if entry is not None else None
    if text.lower() == THINKING_OFF_OR_LOWEST:
        if rules is None or rules.control not in (THINKING_BUDGET, THINKING_LEVEL) or rules.lowest is None:
            if entry is None:
                log.warning("thinking: %s has no thinking rules in %s; sending no thinking setting",
                            base_model_id(rules_of or model), CATALOG_FILE)
            return None
        if rules.control == THINKING_BUDGET:
            return {"thinking_budget": 0 if rules.can_disable else int(rules.lowest)}
        return {"thinking_level": str(rules.lowest)}
    try:
        budget: int | None = int(text)
    except ValueError:
        budget = None
    name = entry.name if entry is not None else base_model_id(model)
    if budget is None:
        level = text.upper()
        if rules is None:
            return {"thinking_level": level}
        if rules.control != THINKING_LEVEL:
            raise ConfigError(f"{setting}={text!r}: {name} takes a thinking budget (a number), not a level; "
                              f"use {THINKING_OFF_OR_LOWEST} or a budget.")
        if level not in rules.levels:
            raise ConfigError(f"{setting}={text!r} is not a thinking level of {name}; use one of "
                              f"{', '.join(rules.levels)}.")
        return {"thinking_level": level}
    if rules is None:
        return {"thinking_budget": budget}
    if rules.budget_refused:
        raise ConfigError(f"{setting}={text!r}: {name} refuses a thinking budget; use a level "
                          f"({', '.join(rules.levels)}) or {THINKING_OFF_OR_LOWEST}.")
    if budget == rules.dynamic_budget:
        return {"thinking_budget": budget}
    if budget == 0:
        if not rules.can_disable:
            raise ConfigError(f"{setting}=0: {name} cannot turn thinking off; its lowest budget is "
                              f"{rules.lowest} (or use {THINKING_OFF_OR_LOWEST}).")
        return {"thinking_budget": 0}
    low, high = rules.budget_min or 1, rules.budget_max
    if budget < low or (high is not None and budget > high):
        allowed = f"{low} to {high}" if high is not None else f"at least {low}"
        raise ConfigError(f"{setting}={text!r} is out of range for {name}: a budget must be {allowed}"
                          + (", or 0 (off)" if rules.can_disable else "") + ".")
    return {"thinking_budget": budget}


def output_price_per_million(model: str, *, rules_of: str = "") -> float | None:
    """Output list price (USD per million tokens; thinking tokens are billed as output), None when unknown."""
    entry = catalog_entry(model) or (catalog_entry(rules_of) if rules_of else None)
    if entry is None or entry.prices is None or entry.prices.generation_output is None:
        return None
    return float(entry.prices.generation_output)


def input_price_per_million(model: str, *, rules_of: str = "") -> float | None:
    """Input list price (USD per million tokens), None when unknown."""
    entry = catalog_entry(model) or (catalog_entry(rules_of) if rules_of else None)
    if entry is None or entry.prices is None or entry.prices.generation_input is None:
        return None
    return float(entry.prices.generation_input)
