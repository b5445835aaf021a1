"""The one retry policy for Vertex calls: exponential backoff with jitter, permanent errors never retried.

Tune (job create, get, list, cancel), evaluate (generation) and validate (token
counting) all retry through :func:`call_with_retries` with a
:class:`RetryPolicy`; each passes its own test of what is worth retrying
(HTTP 408/429/5xx, timeouts, dropped connections), so a permanent error (a bad
setting, 400, 403, 404) fails at once.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from gemini_sft.errors import ConfigError

log = logging.getLogger(__name__)

T = TypeVar("T")

# HTTP answers worth retrying: request timeout, rate limit and transient server errors.
TRANSIENT_HTTP_CODES = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter for transient failures.

    Attempt k (1-based) that fails transiently waits
    ``min(max_backoff, initial_backoff * multiplier**(k-1))`` scaled by a random
    factor in ``[1 - jitter, 1]`` before attempt k+1; at most ``max_attempts`` attempts.
    """

    max_attempts: int = 6
    initial_backoff: float = 1.0
    max_backoff: float = 60.0
    multiplier: float = 2.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError("max_attempts must be at least 1")
        if self.initial_backoff < 0 or self.max_backoff < 0 or self.multiplier < 1:
            raise ConfigError("backoff must be >= 0 and multiplier >= 1")
        if not 0.0 <= self.jitter <= 1.0:
            raise ConfigError("jitter must be between 0 and 1")

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based)."""
        base = min(self.max_backoff, self.initial_backoff * self.multiplier ** (attempt - 1))
        return base * (1.0 - self.jitter * (rng or random).random())


def call_with_retries(
    call: Callable[[], T],
    *,
    retryable: Callable[[BaseException], bool],
    policy: RetryPolicy,
    what: str,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
    on_retry: Callable[[int, BaseException], None] | None = None,
) -> T:
    """``call()``, tried again after a backoff while it fails with an error ``retryable`` accepts.

    Args:
        call: the call to make; its result is returned.
        retryable: whether an exception is worth another attempt (permanent errors are raised at once).
        policy: how many attempts and how long to wait between them.
        what: a few words naming the call, for the log.
        sleep: how to wait (tests pass a recorder).
        rng: the jitter's random source.
        on_retry: told of each retried failure (attempt number, exception), e.g. to count retries.

    Raises:
        The last exception when attempts run out, or the first one ``retryable`` refuses.
    """
    for attempt in range(1, policy.max_attempts + 1):
        try:
            return call()
        except Exception as error:  # noqa: BLE001 - the caller's retryable() decides; others are re-raised
            if not retryable(error) or attempt == policy.max_attempts:
                raise
            log.warning("%s failed transiently (attempt %d/%d); retrying", what, attempt, policy.max_attempts)
            if on_retry is not None:
                on_retry(attempt, error)
            sleep(policy.backoff(attempt, rng))
    raise AssertionError("unreachable")
