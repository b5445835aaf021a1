"""The stable codes of the problems validation reports, and one reported problem.

Each code names one rule; the text beside it titles the code's group in
reports. The rule that raises a code lives in :mod:`gemini_sft.validate.rules`
(line rules) or :mod:`gemini_sft.validate.file_rules` (file-level rules) with
the message saying how to fix it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

ERROR_CODES: dict[str, str] = {
    "invalid_utf8": "line is not valid UTF-8",
    "byte_order_mark": "file starts with a byte order mark",
    "compressed_file": "file is compressed, not plain JSONL",
    "blank_line": "blank line",
    "line_too_long": "line too long to be an example",
    "invalid_json": "line is not valid JSON",
    "non_finite_number": "NaN or Infinity in JSON",
    "not_an_object": "line is not a JSON object",
    "missing_contents": "no `contents`",
    "invalid_contents": "`contents` is not a list",
    "empty_contents": "`contents` is empty",
    "invalid_turn": "a turn is not an object",
    "invalid_role": "unknown or missing role",
    "system_role_in_contents": "`system` role inside `contents`",
    "first_turn_not_user": "first turn is not `user`",
    "consecutive_roles": "two turns in a row with the same role",
    "last_turn_not_model": "last turn is not `model`",
    "missing_parts": "turn without a `parts` list",
    "empty_parts": "turn with an empty `parts` list",
    "invalid_part": "part is not a text or fileData object",
    "invalid_text": "`text` is not a string",
    "empty_text": "`text` is empty or blank",
    "invalid_file_data": "`fileData` without mimeType or gs:// fileUri",
    "invalid_system_instruction": "malformed `systemInstruction`",
    "too_many_tokens": "example above the token limit",
    "file_too_large": "file larger than Vertex accepts",
    "too_many_examples": "more examples than Vertex accepts",
    "too_many_validation_examples": "validation set above Vertex's cap",
    "no_examples": "file holds no examples",
}

WARNING_CODES: dict[str, str] = {
    "unknown_key": "key Vertex does not know",
    "missing_system_instruction": "examples without a system instruction",
    "inconsistent_system_instructions": "different system instructions",
    "few_examples": "fewer examples than recommended",
    "near_token_limit": "estimated tokens close to the limit",
    "token_count_api_unavailable": "countTokens API failed; offline estimate used",
    "token_count_api_skipped": "too many examples for countTokens; offline estimate used",
}

RawIssue = tuple[int | None, str, str]
"""(line or None, code, message): an issue as chunk checkers record it (cheap to pickle)."""


class IssueSink(Protocol):
    """Where rules record what they find: ``error``/``warning(line, code, message)``."""

    def error(self, line: int | None, code: str, message: str) -> None: ...

    def warning(self, line: int | None, code: str, message: str) -> None: ...


@dataclass(frozen=True)
class ValidationIssue:
    """One error or warning: stable code, 1-based line (None for the whole file), how to fix it."""

    line: int | None
    code: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"line": self.line, "code": self.code, "message": self.message}
