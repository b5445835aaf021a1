"""The vocabulary of the data stage: record format names, known fields, rejection reasons, a converted example.

Shared by the readers (:mod:`gemini_sft.dataset.sources`), the format
conversion (:mod:`gemini_sft.dataset.formats`) and the writers.
"""

from __future__ import annotations

import unicodedata
from enum import Enum
from typing import Any

FORMAT_GEMINI = "gemini_contents"
FORMAT_MESSAGES = "chat_messages"
FORMAT_INPUT_TEXT = "input_text"
FORMAT_INPUT_OUTPUT = "input_output"
FORMAT_PROMPT_COMPLETION = "prompt_completion"
RECORD_FORMATS: tuple[str, ...] = (
    FORMAT_GEMINI,
    FORMAT_MESSAGES,
    FORMAT_INPUT_TEXT,
    FORMAT_INPUT_OUTPUT,
    FORMAT_PROMPT_COMPLETION,
)

# (format, prompt field, response field) for the single-turn formats, in detection order.
PAIR_FORMATS: tuple[tuple[str, str, str], ...] = (
    (FORMAT_INPUT_TEXT, "input_text", "output_text"),
    (FORMAT_INPUT_OUTPUT, "input", "output"),
    (FORMAT_PROMPT_COMPLETION, "prompt", "completion"),
)
PAIR_FIELDS: frozenset[str] = frozenset(f for _, p, r in PAIR_FORMATS for f in (p, r))
# Optional per-record system instruction of single-turn records and CSV columns.
SYSTEM_FIELDS: tuple[str, ...] = ("systemInstruction", "system_instruction", "system")

MODEL_ROLES: frozenset[str] = frozenset({"model", "assistant"})


class RejectReason(str, Enum):
    """Stable reason codes written to ``rejected.jsonl`` (never renamed: users filter on them)."""

    INVALID_ENCODING = "invalid_encoding"  # the line is not valid UTF-8
    UNPARSEABLE_LINE = "unparseable_line"  # not JSON, or a CSV row with the wrong number of fields
    NOT_AN_OBJECT = "not_an_object"  # valid JSON, but not an object
    UNKNOWN_FORMAT = "unknown_format"  # an object in none of the supported formats
    INVALID_STRUCTURE = "invalid_structure"  # a known format with the wrong shape or field types
    INVALID_ROLES = "invalid_roles"  # unknown role, system turn in contents, turns not alternating, ...
    EMPTY_PROMPT = "empty_prompt"
    EMPTY_RESPONSE = "empty_response"
    RESPONSE_TOO_SHORT = "response_too_short"  # shorter than min_response_chars
    DUPLICATE = "duplicate"  # same system instruction, prompt and response as an earlier row
    CONFLICTING_RESPONSE = "conflicting_response"  # same prompt as another row, different response
    VALIDATION_OVERFLOW = "validation_overflow"  # over the validation cap with overflow policy "drop"


class RowRejected(Exception):
    """A row cannot become a training example; ``reason`` is a :class:`RejectReason`."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class ConvertedRecord:
    """One record as a normalised single Gemini example.

    ``prompt_key`` is a canonical text of the turns before the answer (the
    prompt's text for a single text turn, else canonical JSON of the turns);
    it identifies the prompt for duplicates, conflicts and split groups.
    ``response`` is the answer's text. ``history`` (the Gemini contents before
    the final model turn) and ``response_parts`` (that turn's parts) are
    ``None`` for the common single-turn text example, which is fully described
    by ``prompt_key`` and ``response``; use :meth:`contents` for the turns.
    """

    __slots__ = ("history", "prompt_key", "response", "response_parts", "source_format", "system_instruction")

    def __init__(
        self,
        source_format: str,
        system_instruction: str | None,
        prompt_key: str,
        response: str,
        history: list[dict[str, Any]] | None = None,
        response_parts: list[dict[str, Any]] | None = None,
    ) -> None:
        self.source_format = source_format
        self.system_instruction = system_instruction
        self.prompt_key = prompt_key
        self.response = response
        self.history = history
        self.response_parts = response_parts

    @property
    def is_single_text_turn(self) -> bool:
        """True when the example is one user text and one model text."""
        return self.history is None

    def contents(self) -> list[dict[str, Any]]:
        """The example's Gemini ``contents``: the prompt turns, then the model's answer."""
        if self.history is None:
            return [
                {"role": "user", "parts": [{"text": self.prompt_key}]},
                {"role": "model", "parts": [{"text": self.response}]},
            ]
        return [*self.history, {"role": "model", "parts": self.response_parts}]

    def __repr__(self) -> str:  # never shows content: examples are private data
        return f"ConvertedRecord(format={self.source_format!r}, single_turn={self.history is None})"


_normalize = unicodedata.normalize


def has_lone_surrogate(text: str) -> bool:
    """Whether ``text`` holds a lone surrogate (from a ``\\u`` escape or undecodable bytes), not encodable as UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def normalize_text(text: str) -> str:
    """NFC-normalise and trim ``text`` (ASCII text skips the Unicode pass: it is always NFC)."""
    return text.strip() if text.isascii() else _normalize("NFC", text).strip()
