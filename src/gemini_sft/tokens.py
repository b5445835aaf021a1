"""Offline token estimates for Gemini text.

Gemini's tokenizer is not available offline, so these functions estimate:
about four characters of text per token, plus a small per-turn overhead.
Anything that shows a count made here must say it is an estimate.
"""

from __future__ import annotations

import math
from typing import Any

CHARS_PER_TOKEN = 4.0
TOKENS_PER_TURN = 3


def estimate_text_tokens(text: str) -> int:
    """Estimated tokens of a piece of text (0 for empty text)."""
    if not text:
        return 0
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def estimate_example_tokens(example: dict[str, Any]) -> int:
    """Estimated input + output tokens of one Gemini example, system instruction included."""
    total = 0
    turns: list[Any] = list(example.get("contents") or [])
    instruction = example.get("systemInstruction")
    if isinstance(instruction, dict):
        turns.append(instruction)
    for turn in turns:
        if not isinstance(turn, dict):
            continue
        total += TOKENS_PER_TURN
        for part in turn.get("parts") or []:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                total += estimate_text_tokens(part["text"])
    return total
