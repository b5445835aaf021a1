"""Answers from Gemini models and tuned endpoints through google-genai (evaluation and serving)."""

from __future__ import annotations

import logging
from typing import Any, Mapping

from gemini_sft.errors import ConfigError, GenerationCallError
from gemini_sft.retry import TRANSIENT_HTTP_CODES
from gemini_sft.vertex_client.settings import (
    VertexSettings,
    genai_client,
)

log = logging.getLogger(__name__)


class GenAIGenerator:
    """Answers evaluation cases with ``client.models.generate_content`` (temperature 0).

    ``model`` is passed as given: a publisher model id (``gemini-2.5-flash``) or a
    tuned model's endpoint (``projects/P/locations/L/endpoints/ID``). Failures are
    raised as :class:`gemini_sft.errors.GenerationCallError`, retryable for HTTP
    408/429/500/502/503/504, timeouts and connection errors; retries themselves are
    the caller's job (the SDK's own retries stay off). ``thinking`` holds the
    ``ThinkingConfig`` keywords to send (``{"thinking_budget": 0}``,
    ``{"thinking_level": "MINIMAL"}``; None = the model's default, see
    :func:`gemini_sft.model_catalog.thinking_config_for`). Each result carries the
    answer's token counts, thinking tokens (``thoughts_token_count``) apart.
    """

    def __init__(
        self,
        settings: VertexSettings,
        model: str,
        max_output_tokens: int = 1024,
        *,
        thinking: Mapping[str, Any] | None = None,
        client: Any = None,
    ) -> None:
        if not model:
            raise ConfigError("a model name or endpoint resource name is required to generate answers")
        if max_output_tokens < 1:
            raise ConfigError(f"max_output_tokens must be at least 1, got {max_output_tokens}")
        self.settings = settings
        self.model = model
        self.max_output_tokens = max_output_tokens
        self.thinking = dict(thinking) if thinking else None
        self._client = client if client is not None else genai_client(settings, timeout_ms=120_000)

    def __call__(self, case: Any) -> Any:
        """Generate an answer for an EvaluationCase; returns a GenerationResult."""
        from google.genai import types

        from gemini_sft.evaluation.generation import GenerationResult

        config = types.GenerateContentConfig(
            temperature=0.0,
            max_output_tokens=self.max_output_tokens,
            system_instruction=case.system_instruction or None,
            thinking_config=types.ThinkingConfig(**self.thinking) if self.thinking else None,
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        )
        response = generate_content(self._client, self.model, case.contents, config)
        candidates = response.candidates or []
        finish = candidates[0].finish_reason if candidates else None
        usage = response.usage_metadata
        return GenerationResult(
            text=_response_text(response),
            model_version=response.model_version or "",
            finish_reason=str(getattr(finish, "value", finish) or ""),
            input_tokens=int(getattr(usage, "prompt_token_count", None) or 0),
            output_tokens=int(getattr(usage, "candidates_token_count", None) or 0),
            thinking_tokens=int(getattr(usage, "thoughts_token_count", None) or 0),
        )


def _response_text(response: Any) -> str:
    """The text parts of the first candidate joined ('' when the answer has no text, e.g. blocked)."""
    candidates = response.candidates or []
    if not candidates or candidates[0].content is None:
        return ""
    parts = candidates[0].content.parts or []
    return "".join(p.text for p in parts if getattr(p, "text", None) and not getattr(p, "thought", False))


class GenAIReplyGenerator:
    """Answers production questions (``gemini_sft.serving``) with ``client.models.generate_content``.

    Like :class:`GenAIGenerator`, but for one prompt at a time and with what the
    serving fallback rules need: the average token log-probability (when
    ``response_logprobs`` is asked and the endpoint gives it) and a ``BLOCKED``
    finish reason when the prompt itself was blocked. Sends no response schema.
    Failures raise :class:`GenerationCallError`, retryable for 408/429/5xx,
    timeouts and connection errors (the caller retries; the SDK's own retries stay off).

    Args:
        settings: project, region and API endpoint.
        model: a publisher model id or a tuned model's endpoint resource name.
        client: a google-genai client to reuse (one is built when None).
        timeout_ms: per-call timeout when a client is built here.
    """

    def __init__(self, settings: VertexSettings, model: str, *, client: Any = None, timeout_ms: int = 60_000) -> None:
        if not model:
            raise ConfigError("a model name or endpoint resource name is required to answer")
        self.settings = settings
        self.model = model
        self._client = client if client is not None else genai_client(settings, timeout_ms=timeout_ms)

    def __call__(self, request: Any) -> Any:
        """Answer a ``gemini_sft.serving.reply.ReplyRequest``; returns a ``ModelReply``."""
        from google.genai import types

        from gemini_sft.serving.reply import ModelReply

        config = types.GenerateContentConfig(
            temperature=request.temperature,
            max_output_tokens=request.max_output_tokens,
            system_instruction=request.system_instruction or None,
            response_logprobs=True if request.response_logprobs else None,
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        )
        contents = [types.Content(role="user", parts=[types.Part(text=request.prompt)])]
        response = generate_content(self._client, self.model, contents, config)
        candidates = response.candidates or []
        feedback = response.prompt_feedback
        if not candidates and feedback is not None and feedback.block_reason:
            return ModelReply(text="", finish_reason="BLOCKED", model_version=response.model_version or "")
        finish = candidates[0].finish_reason if candidates else None
        avg_logprob = candidates[0].avg_logprobs if candidates else None
        return ModelReply(
            text=_response_text(response),
            finish_reason=str(getattr(finish, "value", finish) or ""),
            avg_logprob=float(avg_logprob) if avg_logprob is not None else None,
            model_version=response.model_version or "",
        )


def generate_content(client: Any, model: str, contents: Any, config: Any) -> Any:
    """One ``generate_content`` call; its failures as GenerationCallError (retryable for 408/429/5xx and timeouts).

    Args:
        client: a google-genai client.
        model: the model id or endpoint resource name.
        contents: the conversation to answer.
        config: the GenerateContentConfig.
    """
    import httpx
    from google.genai import errors as genai_errors

    try:
        return client.models.generate_content(model=model, contents=contents, config=config)
    except genai_errors.APIError as exc:
        code = int(exc.code) if exc.code else None
        raise GenerationCallError(
            f"{model}: {exc.status or 'error'} {exc.message or ''}".strip(),
            status_code=code,
            retryable=code in TRANSIENT_HTTP_CODES,
        ) from exc
    except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
        raise GenerationCallError(f"{model}: {type(exc).__name__}", retryable=True) from exc
