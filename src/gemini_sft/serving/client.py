"""The production client: ask the model in production, fall back to the base model when its answer is unfit.

Applications import :class:`ServingClient`::

    from gemini_sft.serving import ServingClient

    client = ServingClient.from_registry("gs://BUCKET/registry")
    answer = client.ask("My card was charged twice", request_key=user_id)
    print(answer.text, answer.answered_by, answer.fallback_reason)

What it reads from the promotion registry, once (call :meth:`refresh` to read again):
``champion.json`` (the production model, its endpoint and base model), the
canary in force (from the records) and each model's output contract
(``contracts/``). Per question: the canary answers when the request key falls
in its share (see :mod:`.canary`), else the production model; an answer that
fails a fallback rule (see :mod:`.fallback`), or a call that failed after its
retries, is replaced by the production model's (after a canary) and then by the
base model's. In shadow mode the candidate also answers, into the shadow log.
"""

from __future__ import annotations

import logging
import random
import re
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Callable

from gemini_sft.errors import ConfigError, GenerationCallError, PromotionError, VertexApiError
from gemini_sft.model_catalog import DEFAULT_BASE_MODEL, base_model_id
from gemini_sft.open_weights.pipeline_step import OPEN_WEIGHTS_BACKEND
from gemini_sft.promotion import CHAMPION_FILE, PromotionRecord, PromotionStore
from gemini_sft.retry import RetryPolicy, call_with_retries
from gemini_sft.review.staging import active_canary
from gemini_sft.serving.canary import ShadowEntry, ShadowLog, goes_to_canary, key_digest, utc_stamp
from gemini_sft.serving.contract import OutputContract, contract_path
from gemini_sft.serving.fallback import CALL_FAILED_REASON, DEFAULT_RULES, FallbackRules, fallback_reason
from gemini_sft.serving.reply import ModelReply, ReplyGenerator, ReplyRequest
from gemini_sft.serving.vllm import VllmReplyGenerator

log = logging.getLogger(__name__)

TUNED = "tuned"
BASE = "base"
CANARY = "canary"
_ENDPOINT_NAME = re.compile(r"^projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)/endpoints/[^/]+$")


@dataclass(frozen=True)
class ServedAnswer:
    """The answer returned to the caller, which model gave it and why the first choice was not used.

    ``answered_by`` is ``tuned`` (the production model), ``canary`` or ``base``;
    ``fallback_reason`` is None when the first choice answered, else the reason
    it was passed over (see ``gemini_sft.serving.fallback``); ``notes`` say what
    the client could not check (e.g. an endpoint without log-probabilities).
    """

    text: str
    answered_by: str
    model: str
    fallback_reason: str | None = None
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "notes": list(self.notes)}


@dataclass(frozen=True)
class ServingSettings:
    """How the client asks: answer length, temperature, fallback thresholds, retries, logprobs."""

    max_output_tokens: int = 1024
    temperature: float = 0.0
    rules: FallbackRules = DEFAULT_RULES
    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(max_attempts=3, initial_backoff=0.5, max_backoff=8.0))
    ask_logprobs: bool = True

    def __post_init__(self) -> None:
        if self.max_output_tokens < 1:
            raise ConfigError(f"max_output_tokens must be at least 1, got {self.max_output_tokens}")


@dataclass(frozen=True)
class ServingPlan:
    """Who answers: the production record, the canary in force (if any) and each model's contract."""

    production: PromotionRecord
    base_model: str
    canary: PromotionRecord | None = None
    contracts: dict[str, OutputContract] = field(default_factory=dict)
    base_model_note: str = ""

    def contract_for(self, record: PromotionRecord | None) -> OutputContract | None:
        return self.contracts.get(record.model.versioned_name) if record is not None else None

    @property
    def open_weights_endpoints(self) -> frozenset[str]:
        """The endpoints of the records served by a vLLM container (asked with vLLM requests, not Gemini's)."""
        return frozenset(r.model.endpoint for r in (self.production, self.canary)
                         if r is not None and r.tuning_backend == OPEN_WEIGHTS_BACKEND)


def is_gemini_model(model: str) -> bool:
    """Whether a model reference names a Gemini model (one generateContent can ask without a deployment)."""
    return base_model_id(model).startswith("gemini-")


def fallback_base_model(
    production: PromotionRecord, canary: PromotionRecord | None, base_model: str, gemini_fallback: str
) -> tuple[str, str]:
    """The model answering when the tuned ones cannot, and a note when it is not the production model's base.

    A tuned Gemini model falls back to its own base model. The base model of an open-weights run is not
    a Gemini model and is not deployed, so an open model falls back to ``base_model`` (``--base-model``),
    else the base of a Gemini canary, else ``gemini_fallback`` (the config's ``base_model``, default: the
    catalogue's default Gemini model). Raises ConfigError when that model is not a Gemini model.
    """
    gemini_canary = canary.base_model if canary and canary.tuning_backend != OPEN_WEIGHTS_BACKEND else ""
    if production.tuning_backend != OPEN_WEIGHTS_BACKEND:
        base = base_model or production.base_model or gemini_canary
        if not base:
            raise ConfigError("The production record names no base model to fall back to; pass one (--base-model).")
        return base, ""
    base = base_model or gemini_canary or gemini_fallback or DEFAULT_BASE_MODEL
    if not is_gemini_model(base):
        raise ConfigError(
            f"The open model in production cannot fall back to {base!r}: the fallback must be a Gemini model; "
            f"set --base-model (or base_model in the config) to one, e.g. {DEFAULT_BASE_MODEL}."
        )
    open_base = production.base_model or "its base model"
    return base, (f"the open model in production falls back to the Gemini model {base}: {open_base} is not a "
                  "Gemini model and is not deployed")


def read_serving_plan(
    store: PromotionStore, base_model: str = "", contract: OutputContract | None = None, gemini_fallback: str = ""
) -> ServingPlan:
    """The plan from a registry: ``champion.json``, the active canary and the stored contracts.

    ``contract`` (when given) replaces the production model's stored contract; ``base_model`` and
    ``gemini_fallback`` choose the fallback model (see :func:`fallback_base_model`). Raises PromotionError
    when nothing is in production or the champion has no endpoint, ConfigError when no usable fallback
    model is known.
    """
    try:
        text = store.files.read_text(CHAMPION_FILE)
    except FileNotFoundError:
        raise PromotionError(f"Nothing is in production in {store.uri} (no {CHAMPION_FILE}): promote a model first.") from None
    except OSError as exc:
        raise PromotionError(f"Cannot read {store.uri}/{CHAMPION_FILE}: {exc}") from exc
    try:
        production = PromotionRecord.model_validate_json(text)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise PromotionError(f"{store.uri}/{CHAMPION_FILE} is not a promotion record; fix or rewrite it.") from exc
    if not production.model.endpoint:
        raise PromotionError(f"The model in production ({production.model.versioned_name}) has no endpoint to ask.")
    canary = _with_backend(store, active_canary(store))
    base, base_note = fallback_base_model(production, canary, base_model, gemini_fallback)
    contracts: dict[str, OutputContract] = {}
    for record in (production, canary):
        if record is None:
            continue
        stored = read_contract(store, record.model.versioned_name)
        if stored is not None:
            contracts[record.model.versioned_name] = stored
    if contract is not None:
        contracts[production.model.versioned_name] = contract
    return ServingPlan(production=production, base_model=base, canary=canary, contracts=contracts,
                       base_model_note=base_note)


def _with_backend(store: PromotionStore, canary: PromotionRecord | None) -> PromotionRecord | None:
    """The canary record with the tuning backend of its candidate (a canary record itself names none)."""
    if canary is None or canary.tuning_backend == OPEN_WEIGHTS_BACKEND:
        return canary
    for earlier in store.history():
        if earlier.model == canary.model and earlier.tuning_backend == OPEN_WEIGHTS_BACKEND:
            return canary.model_copy(update={"tuning_backend": OPEN_WEIGHTS_BACKEND})
    return canary


def read_contract(store: PromotionStore, model_versioned_name: str) -> OutputContract | None:
    """The stored output contract of a model version, or None when it has none."""
    path = contract_path(model_versioned_name)
    try:
        text = store.files.read_text(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise PromotionError(f"Cannot read {store.uri}/{path}: {exc}") from exc
    return OutputContract.from_json(text, source=f"{store.uri}/{path}")


def save_contract(store: PromotionStore, model_versioned_name: str, contract: OutputContract) -> str:
    """Store a model version's output contract in the registry; returns its URI. PromotionError on failure."""
    path = contract_path(model_versioned_name)
    try:
        store.files.write_text(path, contract.to_json())
    except OSError as exc:
        raise PromotionError(f"Cannot write {store.uri}/{path}: {exc}") from exc
    return f"{store.uri}/{path}"


def settings_from_endpoint(endpoint: str) -> tuple[str, str]:
    """``(project, location)`` of ``projects/P/locations/L/endpoints/ID``; ConfigError for another name."""
    match = _ENDPOINT_NAME.match(endpoint)
    if not match:
        raise ConfigError(f"{endpoint!r} is not an endpoint name; pass the project and region (--config).")
    return match.group("project"), match.group("location")


def _logprobs_refused(error: GenerationCallError) -> bool:
    return error.status_code == 400 and "logprob" in str(error).lower()


class ServingClient:
    """Answers questions with the production model behind the fallback rules (see the module docstring).

    Args:
        plan: who answers (from :func:`read_serving_plan`).
        generator_for: builds the generator of one Gemini model name or endpoint (cached per model).
        settings: answer length, thresholds, retries.
        open_generator_for: builds the generator of an open model's vLLM endpoint (cached per endpoint);
            needed only when a record of the plan is open weights.
        shadow_log: where shadow answers go (needed only when the canary answers in shadow).
        sleep: how to wait between retries (tests pass a recorder).
    """

    def __init__(
        self,
        plan: ServingPlan,
        generator_for: Callable[[str], ReplyGenerator],
        settings: ServingSettings | None = None,
        *,
        open_generator_for: Callable[[str], ReplyGenerator] | None = None,
        shadow_log: ShadowLog | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.plan = plan
        self.settings = settings or ServingSettings()
        self._generator_for = generator_for
        self._open_generator_for = open_generator_for
        self._generators: dict[str, ReplyGenerator] = {}
        self._no_logprobs: set[str] = set()
        self._shadow_log = shadow_log
        self._sleep = sleep
        self._rng = random.Random()
        self._store: PromotionStore | None = None
        self._base_override = ""
        self._gemini_fallback = ""
        self._contract_override: OutputContract | None = None

    @classmethod
    def from_registry(
        cls,
        registry_uri: str,
        *,
        project: str = "",
        location: str = "",
        api_endpoint: str | None = None,
        settings: ServingSettings | None = None,
        base_model: str = "",
        contract: OutputContract | None = None,
        timeout_ms: int = 60_000,
        gemini_fallback: str = "",
    ) -> "ServingClient":
        """A client for the registry's production model, calling Vertex (or ``api_endpoint``).

        Project and region default to those of the production endpoint's name. Tuned Gemini models are
        asked with generateContent, open models with vLLM chat requests through their endpoint's rawPredict.
        ``gemini_fallback`` is the Gemini model an open model falls back to (see :func:`fallback_base_model`).
        Raises PromotionError or ConfigError as :func:`read_serving_plan` does.
        """
        from gemini_sft.vertex_client import GenAIReplyGenerator, VertexSettings, genai_client
        from gemini_sft.vertex_client.deployments import EndpointPredictor

        store = PromotionStore(registry_uri)
        plan = read_serving_plan(store, base_model=base_model, contract=contract, gemini_fallback=gemini_fallback)
        if not (project and location):
            endpoint_project, endpoint_location = settings_from_endpoint(plan.production.model.endpoint)
            project, location = project or endpoint_project, location or endpoint_location
        vertex = VertexSettings.create(project, location, api_endpoint)
        shared = genai_client(vertex, timeout_ms=timeout_ms)
        client = cls(
            plan,
            lambda model: GenAIReplyGenerator(vertex, model, client=shared),
            settings,
            open_generator_for=lambda endpoint: VllmReplyGenerator(
                endpoint, EndpointPredictor(vertex, timeout_seconds=timeout_ms / 1000)),
            shadow_log=ShadowLog(store.files),
        )
        client._store, client._base_override, client._contract_override = store, base_model, contract
        client._gemini_fallback = gemini_fallback
        return client

    def refresh(self) -> None:
        """Read the registry again (a new champion, canary or contract); only for clients made by from_registry."""
        if self._store is not None:
            self.plan = read_serving_plan(self._store, base_model=self._base_override, contract=self._contract_override,
                                          gemini_fallback=self._gemini_fallback)

    # -- asking ----------------------------------------------------------------------------------

    def ask(self, prompt: str, *, request_key: str | None = None) -> ServedAnswer:
        """Answer ``prompt``; ``request_key`` (a user or session id; default: the prompt) keeps canary routing sticky.

        Raises ConfigError for an empty prompt and VertexApiError when even the base model cannot answer.
        """
        if not prompt or not prompt.strip():
            raise ConfigError("The question is empty.")
        key = request_key if request_key is not None else prompt
        plan = self.plan
        notes: list[str] = []
        choices: list[tuple[str, PromotionRecord]] = []
        canary = plan.canary
        if canary is not None and goes_to_canary(key, canary.model.versioned_name, canary.canary_share):
            choices.append((CANARY, canary))
        choices.append((TUNED, plan.production))

        first_reason: str | None = None
        served: ServedAnswer | None = None
        for role, record in choices:
            reply, reason = self._checked_reply(record.model.endpoint, prompt, plan.contract_for(record), notes)
            if reason is None and reply is not None:
                served = ServedAnswer(reply.text, role, record.model.endpoint, first_reason, tuple(notes))
                break
            first_reason = first_reason or reason
            log.info("%s model passed over (%s)", role, reason)
        if served is None:
            system = self._system_instruction(plan.contract_for(plan.production))
            if plan.base_model_note:
                notes.append(plan.base_model_note)
            try:
                reply = self._call(plan.base_model, prompt, system, notes)
            except GenerationCallError as exc:
                raise VertexApiError(f"Neither the tuned nor the base model could answer: {exc}") from exc
            served = ServedAnswer(reply.text, BASE, plan.base_model, first_reason, tuple(notes))
        if canary is not None and canary.shadow:
            self._answer_in_shadow(prompt, key, canary, served)
        return served

    def _system_instruction(self, contract: OutputContract | None) -> str:
        return contract.system_instruction if contract is not None else ""

    def _checked_reply(
        self, model: str, prompt: str, contract: OutputContract | None, notes: list[str]
    ) -> tuple[ModelReply | None, str | None]:
        """The model's reply and the fallback reason (``error`` when the call failed after its retries)."""
        try:
            reply = self._call(model, prompt, self._system_instruction(contract), notes)
        except GenerationCallError as exc:
            log.warning("%s failed after retries: %s", model, exc)
            return None, CALL_FAILED_REASON
        return reply, fallback_reason(reply.text, reply.finish_reason, contract, reply.avg_logprob, self.settings.rules)

    def _generator(self, model: str) -> ReplyGenerator:
        if model not in self._generators:
            if model in self.plan.open_weights_endpoints:
                if self._open_generator_for is None:
                    raise ConfigError(f"{model} serves an open model, and this client cannot ask vLLM endpoints "
                                      "(pass open_generator_for).")
                self._generators[model] = self._open_generator_for(model)
            else:
                self._generators[model] = self._generator_for(model)
        return self._generators[model]

    def _call(self, model: str, prompt: str, system_instruction: str, notes: list[str]) -> ModelReply:
        """One answer with retries; asks for logprobs unless the model refused them before."""
        generator = self._generator(model)
        open_weights = model in self.plan.open_weights_endpoints
        # vLLM's container documents no logprobs for the predict route: not asked, checked when returned
        wants_logprobs = self.settings.ask_logprobs and model not in self._no_logprobs and not open_weights
        request = ReplyRequest(
            prompt=prompt,
            system_instruction=system_instruction,
            max_output_tokens=self.settings.max_output_tokens,
            temperature=self.settings.temperature,
            response_logprobs=wants_logprobs,
        )
        reply = self._call_with(generator, request, notes)
        if open_weights and reply.avg_logprob is None and self.settings.ask_logprobs:
            notes.append(f"{model} (vLLM) returned no log-probabilities: they were not checked")
        return reply

    def _call_with(self, generator: ReplyGenerator, request: ReplyRequest, notes: list[str]) -> ModelReply:
        try:
            return call_with_retries(
                lambda: generator(request),
                retryable=lambda exc: isinstance(exc, GenerationCallError) and exc.retryable,
                policy=self.settings.retry,
                what=f"{'rawPredict' if generator.model in self.plan.open_weights_endpoints else 'generateContent'} "
                     f"for {generator.model}",
                sleep=self._sleep,
                rng=self._rng,
            )
        except GenerationCallError as exc:
            if not (request.response_logprobs and _logprobs_refused(exc)):
                raise
            self._no_logprobs.add(generator.model)
            note = f"{generator.model} does not return log-probabilities; answered without the logprob check"
            log.warning(note)
            notes.append(note)
            return self._call_with(generator, replace(request, response_logprobs=False), notes)

    def _answer_in_shadow(
        self,
        prompt: str,
        key: str,
        canary: PromotionRecord,
        served: ServedAnswer,
    ) -> None:
        """Ask the shadow candidate and log its answer next to production's; never affects ``served``."""
        if self._shadow_log is None:
            log.warning("a shadow candidate is set but this client has no shadow log; not asking it")
            return
        contract = self.plan.contract_for(canary)
        text: str | None = None
        reason: str | None = None
        error: str | None = None
        try:
            reply = self._call(canary.model.endpoint, prompt, self._system_instruction(contract), [])
            text = reply.text
            reason = fallback_reason(reply.text, reply.finish_reason, contract, reply.avg_logprob, self.settings.rules)
        except GenerationCallError as exc:
            error, reason = str(exc), CALL_FAILED_REASON
        entry = ShadowEntry(
            created_at=utc_stamp(),
            request_key_sha256=key_digest(key),
            prompt=prompt,
            production_model=served.model,
            production_answered_by=served.answered_by,
            production_text=served.text,
            production_fallback_reason=served.fallback_reason,
            shadow_model=canary.model.endpoint,
            shadow_text=text,
            shadow_fallback_reason=reason,
            shadow_error=error,
        )
        try:
            self._shadow_log.write(canary.model.versioned_name, entry)
        except PromotionError as exc:
            log.warning("shadow answer not logged: %s", exc)
