"""What the serving client sends to a model and what it gets back (no SDK types)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class ReplyRequest:
    """One production question: the user's text and how to ask.

    ``response_logprobs`` asks the endpoint for token log-probabilities. No
    response schema is ever part of a request: controlled generation degrades
    tuned models.
    """

    prompt: str
    system_instruction: str = ""
    max_output_tokens: int = 1024
    temperature: float = 0.0
    response_logprobs: bool = True


@dataclass(frozen=True)
class ModelReply:
    """A model's answer: text, finish reason (``BLOCKED`` when the prompt itself was blocked), average logprob."""

    text: str
    finish_reason: str = ""
    avg_logprob: float | None = None
    model_version: str = ""


class ReplyGenerator(Protocol):
    """Asks one model; raises ``gemini_sft.errors.GenerationCallError`` when the call fails."""

    model: str

    def __call__(self, request: ReplyRequest) -> ModelReply: ...
