"""Offline token estimates for Gemini text.

Gemini's tokenizer is not available offline, so these functions estimate:
about four bytes of UTF-8 text per token (four characters of English; scripts
such as CJK, which take about a token per character or two, have three bytes
per character), plus a small overhead per turn. Anything that shows a count
made here must say it is an estimate.
"""

from __future__ import annotations

from typing import Any

UTF8_BYTES_PER_TOKEN = 4
CHARS_PER_TOKEN = UTF8_BYTES_PER_TOKEN  # for ASCII text, where a character is a byte
TOKENS_PER_TURN = 3


def extra_utf8_bytes(text: str) -> int:
    """Bytes the non-ASCII characters of ``text`` add in UTF-8 (0 for ASCII text, checked in O(1))."""
    if text.isascii():
        return 0
    return len(text.encode("utf-8", "surrogatepass")) - len(text)


def _ceil_div(value: int, divisor: int) -> int:
    return -(-value // divisor)


def estimate_text_tokens(text: str) -> int:
    """Estimated tokens of a piece of text: its UTF-8 size / 4, rounded up (0 for empty text)."""
    return _ceil_div(len(text) + extra_utf8_bytes(text), UTF8_BYTES_PER_TOKEN)


def estimate_example_tokens(example: dict[str, Any]) -> int:
    """Estimated input + output tokens of one Gemini example, system instruction included.

    TOKENS_PER_TURN per turn (the system instruction counts as one), plus the
    UTF-8 size of all its text parts / 4, rounded up. Tolerates any shape
    (malformed turns and parts count nothing), so it can be used on unchecked data.
    """
    turns_counted = 0
    text_bytes = 0
    contents = example.get("contents")
    turns: list[Any] = list(contents) if isinstance(contents, list) else []
    instruction = example.get("systemInstruction")
    if isinstance(instruction, dict):
        turns.append(instruction)
    for turn in turns:
        if not isinstance(turn, dict):
            continue
        turns_counted += 1
        parts = turn.get("parts")
        if not isinstance(parts, list):
            continue
        for part in parts:
            if isinstance(part, dict):
                text = part.get("text")
                if isinstance(text, str):
                    text_bytes += len(text) + extra_utf8_bytes(text)
    return TOKENS_PER_TURN * turns_counted + _ceil_div(text_bytes, UTF8_BYTES_PER_TOKEN)
