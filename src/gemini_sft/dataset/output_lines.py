"""Output lines of Gemini examples: one JSON object a line, written fast and byte-identical to ``json``.

:func:`gemini_json_line` writes any converted example; the single-turn
writers (:func:`single_turn_line`, :func:`single_turn_line_utf8`) write the
common one-prompt, one-answer example from a template. Characters that some
readers treat as line breaks (U+0085, U+2028, U+2029) are escaped so every
reader sees one example per line.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from gemini_sft.dataset.records import ConvertedRecord

_encode_string = json.encoder.encode_basestring  # type: ignore[attr-defined]
_CONTENTS_HEAD = '"contents":[{"role":"user","parts":[{"text":'
_CONTENTS_MIDDLE = '}]},{"role":"model","parts":[{"text":'
_CONTENTS_TAIL = "}]}]}"


def gemini_json_line(system_instruction: str | None, converted: ConvertedRecord, end: str = "") -> str:
    """The JSONL line of the Gemini example for ``converted``, followed by ``end`` (e.g. a newline).

    Single-turn text examples, by far the most common, are written from a
    template around C-encoded strings; others go through ``json.dumps``.
    Non-ASCII text is written as UTF-8, not escaped.
    """
    if converted.history is None:
        return single_turn_line(system_instruction, converted.prompt_key, converted.response, end)
    example: dict[str, Any] = {}
    if system_instruction:
        example["systemInstruction"] = {"parts": [{"text": system_instruction}]}
    example["contents"] = converted.contents()
    line = json.dumps(example, ensure_ascii=False, separators=(",", ":")) + end
    return line if line.isascii() else _escape_line_separators(line)


def single_turn_line(system_instruction: str | None, prompt: str, response: str, end: str = "") -> str:
    """The JSONL line of a one-user-text, one-model-text Gemini example, followed by ``end``."""
    line = (
        f"{system_instruction_head(system_instruction)}{_CONTENTS_HEAD}{_encode_string(prompt)}"
        f"{_CONTENTS_MIDDLE}{_encode_string(response)}{_CONTENTS_TAIL}{end}"
    )
    return line if line.isascii() else _escape_line_separators(line)


_CONTENTS_HEAD_UTF8 = _CONTENTS_HEAD.encode()
_CONTENTS_MIDDLE_UTF8 = _CONTENTS_MIDDLE.encode()
_CONTENTS_TAIL_UTF8 = _CONTENTS_TAIL.encode()


def single_turn_line_utf8(system_instruction: str | None, prompt: str, response: str, end: bytes = b"") -> bytes:
    """:func:`single_turn_line` as UTF-8 bytes, byte for byte, encoded by orjson (several times faster).

    orjson escapes strings exactly as ``json.dumps(ensure_ascii=False)`` does.
    Raises ``TypeError`` when a text holds a lone surrogate (not encodable as
    UTF-8); the caller then uses :func:`single_turn_line`, which can.
    """
    line = b"".join((
        _system_instruction_head_utf8(system_instruction),
        _CONTENTS_HEAD_UTF8,
        orjson.dumps(prompt),
        _CONTENTS_MIDDLE_UTF8,
        orjson.dumps(response),
        _CONTENTS_TAIL_UTF8,
        end,
    ))
    # Looking for line separators in the texts is much faster than in the encoded line.
    if line.isascii() or not (
        _has_line_separator(prompt)
        or _has_line_separator(response)
        or (system_instruction and _has_line_separator(system_instruction))
    ):
        return line
    return _escape_line_separators_utf8(line)


_SYSTEM_HEADS: dict[str, str] = {}
_SYSTEM_HEADS_UTF8: dict[str, bytes] = {}
_SYSTEM_HEADS_MAX = 64


def system_instruction_head(system_instruction: str | None) -> str:
    """The start of an example line up to ``"contents"``: ``{`` plus the system instruction, if any.

    Memoised: a dataset usually carries one or a few system instructions.
    """
    if not system_instruction:
        return "{"
    head = _SYSTEM_HEADS.get(system_instruction)
    if head is None:
        head = '{"systemInstruction":{"parts":[{"text":' + _encode_string(system_instruction) + "}]},"
        if len(_SYSTEM_HEADS) < _SYSTEM_HEADS_MAX:
            _SYSTEM_HEADS[system_instruction] = head
    return head


def _system_instruction_head_utf8(system_instruction: str | None) -> bytes:
    """:func:`system_instruction_head` as UTF-8 bytes (before line-separator escaping); memoised likewise."""
    if not system_instruction:
        return b"{"
    head = _SYSTEM_HEADS_UTF8.get(system_instruction)
    if head is None:
        head = b'{"systemInstruction":{"parts":[{"text":' + orjson.dumps(system_instruction) + b"}]},"
        if len(_SYSTEM_HEADS_UTF8) < _SYSTEM_HEADS_MAX:
            _SYSTEM_HEADS_UTF8[system_instruction] = head
    return head


# Characters that some readers (str.splitlines, JavaScript) treat as line breaks; JSON allows
# them raw inside strings, so they are escaped to keep one example per line for every reader.
_LINE_SEPARATORS = {"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"}
# The same in UTF-8; in valid UTF-8 these byte sequences only ever encode those characters.
_LINE_SEPARATORS_UTF8 = {char.encode(): escaped.encode() for char, escaped in _LINE_SEPARATORS.items()}


def _has_line_separator(text: str) -> bool:
    return "\x85" in text or "\u2028" in text or "\u2029" in text


def _escape_line_separators(line: str) -> str:
    for char, escaped in _LINE_SEPARATORS.items():
        if char in line:
            line = line.replace(char, escaped)
    return line


def _escape_line_separators_utf8(line: bytes) -> bytes:
    for char, escaped in _LINE_SEPARATORS_UTF8.items():
        if char in line:
            line = line.replace(char, escaped)
    return line
