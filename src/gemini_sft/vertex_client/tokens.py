"""Token counts of whole tuning examples through ``client.models.count_tokens`` (the validate stage)."""

from __future__ import annotations

import logging
from typing import Any, Mapping

from gemini_sft.errors import ConfigError, VertexApiError
from gemini_sft.retry import RetryPolicy, call_with_retries
from gemini_sft.vertex_client.settings import (
    VertexSettings,
    _transient_genai_error,
    genai_client,
)

log = logging.getLogger(__name__)


class ApiTokenCounter:
    """Counts the tokens of whole tuning examples with ``client.models.count_tokens``.

    One request per distinct example (contents, system instruction and tools), up
    to ``max_concurrency`` at a time; counts are cached by a digest of the example
    (duplicates cost one request; the cache holds at most ``cache_size`` digests,
    never example content). HTTP 408/429/5xx, timeouts and connection errors are
    retried ``attempts`` times with backoff; anything else, or retries running
    out, raises VertexApiError (the validator then falls back to its offline
    estimate). Implements :class:`gemini_sft.validate.TokenCounter`.

    Args:
        settings: project, region and endpoint of the requests.
        model: the model whose tokenizer counts (a tuned model's resource name counts like its family).
        max_concurrency: requests in flight at once.
        cache_size: digests of counted examples remembered (the cache is cleared when full).
        attempts: tries per request for transient failures.
        backoff_seconds: the first wait between tries (it grows with each retry).
        client: a google-genai client to use instead of building one (tests).
    """

    def __init__(
        self,
        settings: VertexSettings,
        model: str,
        *,
        max_concurrency: int = 8,
        cache_size: int = 100_000,
        attempts: int = 3,
        backoff_seconds: float = 0.5,
        client: Any = None,
    ) -> None:
        from gemini_sft.model_catalog import base_model_id, limits_for

        if max_concurrency < 1 or attempts < 1:
            raise ConfigError("max_concurrency and attempts must be at least 1")
        self.settings = settings
        # A tuned model (continuous tuning) counts like its family; publisher ids are used as given.
        self.model = base_model_id(model) if not model.startswith("projects/") else limits_for(model).name
        self.max_concurrency = max_concurrency
        self.cache_size = cache_size
        self.attempts = attempts
        self.backoff_seconds = backoff_seconds
        self._client = client
        self._cache: dict[bytes, int] = {}
        self.requests = 0

    def _get_client(self) -> Any:
        if self._client is None:
            from google.auth.exceptions import GoogleAuthError

            try:
                self._client = genai_client(self.settings, timeout_ms=60_000)
            except (GoogleAuthError, ValueError) as exc:  # no credentials / incomplete settings
                raise VertexApiError(f"cannot build a countTokens client: {type(exc).__name__}: {exc}") from exc
        return self._client

    @staticmethod
    def _digest(example: Mapping[str, Any]) -> bytes:
        import hashlib
        import json

        canonical = json.dumps(
            [example.get("contents"), example.get("systemInstruction"), example.get("tools")],
            sort_keys=True,
            ensure_ascii=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode("ascii")).digest()

    def _count_one(self, example: Mapping[str, Any]) -> int:
        import httpx
        from google.genai import errors as genai_errors
        from google.genai import types

        client = self._get_client()
        config = types.CountTokensConfig(
            system_instruction=example.get("systemInstruction"),
            tools=example.get("tools"),
        )
        policy = RetryPolicy(max_attempts=self.attempts, initial_backoff=self.backoff_seconds, jitter=0.5)

        def count() -> int:
            self.requests += 1
            return client.models.count_tokens(model=self.model, contents=example["contents"], config=config)

        try:
            response = call_with_retries(
                count, retryable=_transient_genai_error, policy=policy, what=f"countTokens for {self.model}"
            )
        except (genai_errors.APIError, httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            problem = (
                f"HTTP {exc.code} {exc.status or ''}".strip() if isinstance(exc, genai_errors.APIError)
                else type(exc).__name__
            )
            if _transient_genai_error(exc):
                problem = f"after {self.attempts} attempts: {problem}"
            raise VertexApiError(f"countTokens for {self.model} failed {problem}") from exc
        if response.total_tokens is None:
            raise VertexApiError(f"countTokens for {self.model} returned no totalTokens")
        return int(response.total_tokens)

    def count_example_tokens(self, examples: Any) -> list[int]:
        """Token count of each example (input + output, system instruction included), in order."""
        from concurrent.futures import ThreadPoolExecutor

        digests = [self._digest(example) for example in examples]
        missing: dict[bytes, Mapping[str, Any]] = {}
        for digest, example in zip(digests, examples):
            if digest not in self._cache and digest not in missing:
                missing[digest] = example
        if missing:
            with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(missing))) as pool:
                counts = list(pool.map(self._count_one, missing.values()))
            fresh = dict(zip(missing, counts))
            if len(self._cache) + len(fresh) > self.cache_size:
                self._cache.clear()
            self._cache.update(fresh)
        else:
            fresh = {}
        return [fresh[d] if d in fresh else self._cache[d] for d in digests]
