"""Record formats of tuning data: detection and conversion to normalised Gemini examples.

:func:`convert_record` takes one parsed record (a JSON object or a CSV row),
detects its format and converts it to a normalised single Gemini example
(:mod:`gemini_sft.dataset.output_lines` writes it as a JSONL line). Supported
formats, in detection order:

  ===================== =====================================================
  ``gemini_contents``   ``{"contents": [...], "systemInstruction"?: {...}}``
  ``chat_messages``     ``{"messages": [{"role": "system"|"user"|"model"|
                        "assistant", "content": str}]}``
  ``input_text``        ``{"input_text": str, "output_text": str}``
  ``input_output``      ``{"input": str, "output": str}``
  ``prompt_completion`` ``{"prompt": str, "completion": str}``
  ===================== =====================================================

Normalisation: every text is Unicode NFC and trimmed of surrounding
whitespace; empty text parts are dropped. A record that cannot be converted
raises :class:`RowRejected` carrying a stable reason code.
"""

from __future__ import annotations

import json
import unicodedata
from typing import Any

from gemini_sft.dataset.records import (
    FORMAT_GEMINI,
    FORMAT_MESSAGES,
    MODEL_ROLES,
    PAIR_FORMATS,
    SYSTEM_FIELDS,
    ConvertedRecord,
    RejectReason,
    RowRejected,
    normalize_text,
)

_normalize = unicodedata.normalize


def convert_record(record: dict[str, Any]) -> ConvertedRecord:
    """Detect the format of one parsed record and convert it.

    Raises :class:`RowRejected` (``unknown_format``, ``invalid_structure``,
    ``invalid_roles``, ``empty_prompt``, ``empty_response``) when it cannot.
    """
    fields = single_turn_fields(record)
    if fields is not None:
        return ConvertedRecord(fields[0], fields[1], fields[2], fields[3])
    if "contents" in record:
        return _from_contents(record)
    if "messages" in record:
        return _from_messages(record)
    for fmt, prompt_field, response_field in PAIR_FORMATS:
        if prompt_field in record or response_field in record:
            return _from_pair(record, fmt, prompt_field, response_field)
    keys = ", ".join(sorted(str(k) for k in record)[:8]) or "none"
    raise RowRejected(
        RejectReason.UNKNOWN_FORMAT,
        f"no supported format recognised (keys: {keys}); expected contents, messages, "
        "input_text/output_text, input/output or prompt/completion",
    )


# (format, system instruction or None, prompt, response), texts normalised.
SingleTurnFields = tuple[str, "str | None", str, str]


def single_turn_fields(record: dict[str, Any]) -> SingleTurnFields | None:
    """The fields of a well-formed single-turn text record in any format, or None.

    The fast path for by far the most common records: one user text and one
    non-empty answer, in any of the five formats. None means "convert with
    :func:`convert_record`": other shapes (multi-turn, multi-part, files) and
    every record that must be rejected. Normalises exactly as the full
    conversion does, so both paths give the same example.
    """
    if "contents" in record:
        contents = record["contents"]
        if type(contents) is not list:
            return None
        texts = _single_turn_contents(contents)
        if texts is None:
            return None
        fmt = FORMAT_GEMINI
        prompt, response = texts
        system = _system_instruction_value(record.get("systemInstruction"), "systemInstruction")
    elif "messages" in record:
        messages = record["messages"]
        if type(messages) is not list:
            return None
        if len(messages) == 3:
            first, user, model = messages
            if type(first) is not dict or first.get("role") != "system" or type(first.get("content")) is not str:
                return None
            system = normalize_text(first["content"]) or None
        elif len(messages) == 2:
            user, model = messages
            system = None
        else:
            return None
        if (
            type(user) is not dict
            or type(model) is not dict
            or user.get("role") != "user"
            or model.get("role") not in MODEL_ROLES
        ):
            return None
        prompt = user.get("content")
        response = model.get("content")
        if type(prompt) is not str or type(response) is not str:
            return None
        fmt = FORMAT_MESSAGES
    else:
        for fmt, prompt_field, response_field in PAIR_FORMATS:
            if prompt_field in record or response_field in record:
                break
        else:
            return None
        prompt = record.get(prompt_field)
        response = record.get(response_field)
        if type(prompt) is not str or type(response) is not str:
            return None
        system = _pair_system_instruction(record) if len(record) > 2 else None  # two fields: no room for one
    prompt = prompt.strip() if prompt.isascii() else _normalize("NFC", prompt).strip()
    response = response.strip() if response.isascii() else _normalize("NFC", response).strip()
    if not prompt or not response:
        return None
    return fmt, system, prompt, response


def _from_pair(record: dict[str, Any], fmt: str, prompt_field: str, response_field: str) -> ConvertedRecord:
    prompt = record.get(prompt_field)
    response = record.get(response_field)
    if type(prompt) is not str or type(response) is not str:
        _raise_pair_type_error(prompt_field, prompt, response_field, response)
    prompt = prompt.strip() if prompt.isascii() else _normalize("NFC", prompt).strip()
    if not prompt:
        raise RowRejected(RejectReason.EMPTY_PROMPT, f"field '{prompt_field}' is blank")
    response = response.strip() if response.isascii() else _normalize("NFC", response).strip()
    if not response:
        raise RowRejected(RejectReason.EMPTY_RESPONSE, f"field '{response_field}' is blank")
    system = _pair_system_instruction(record) if len(record) > 2 else None
    return ConvertedRecord(fmt, system, prompt, response)


def _raise_pair_type_error(prompt_field: str, prompt: Any, response_field: str, response: Any) -> None:
    for field, value, empty in (
        (prompt_field, prompt, RejectReason.EMPTY_PROMPT),
        (response_field, response, RejectReason.EMPTY_RESPONSE),
    ):
        if value is None:
            raise RowRejected(empty, f"field '{field}' is missing or null")
        if type(value) is not str:
            raise RowRejected(
                RejectReason.INVALID_STRUCTURE, f"field '{field}' must be a string, got {type(value).__name__}"
            )


def _pair_system_instruction(record: dict[str, Any]) -> str | None:
    """The system instruction of a prompt/response record: its first field named in SYSTEM_FIELDS, if any."""
    for field in SYSTEM_FIELDS:
        if field in record:
            return _system_instruction_value(record[field], field)
    return None


def _system_instruction_value(value: Any, field: str) -> str | None:
    """Text of a system instruction given as a string or as a Gemini content object."""
    if value is None:
        return None
    if type(value) is dict:  # fast path: {"parts": [{"text": "..."}]}, possibly with a role
        parts = value.get("parts")
        if type(parts) is list and len(parts) == 1 and type(parts[0]) is dict:
            text = parts[0].get("text")
            if type(text) is str:
                return (text.strip() if text.isascii() else _normalize("NFC", text).strip()) or None
    if isinstance(value, str):
        return normalize_text(value) or None
    if isinstance(value, dict):
        parts = value.get("parts")
        if isinstance(parts, list):
            texts = [_part_text(p, field) for p in parts]
            return "\n".join(t for t in texts if t) or None
    raise RowRejected(
        RejectReason.INVALID_STRUCTURE,
        f"'{field}' must be a string or an object with a 'parts' list of text parts",
    )


def _part_text(part: Any, where: str) -> str:
    if isinstance(part, dict) and isinstance(part.get("text"), str):
        return normalize_text(part["text"])
    raise RowRejected(RejectReason.INVALID_STRUCTURE, f"every part of '{where}' must be an object with a string 'text'")


def _normalize_parts(parts: Any, where: str) -> list[dict[str, Any]]:
    """Normalised copy of a content's parts: texts NFC + trimmed, blank text parts dropped.

    Non-text parts (``fileData`` and the like) are kept unchanged; the validate
    stage judges them.
    """
    if not isinstance(parts, list):
        raise RowRejected(RejectReason.INVALID_STRUCTURE, f"{where}: 'parts' must be a list")
    normalized: list[dict[str, Any]] = []
    for part in parts:
        if not isinstance(part, dict):
            raise RowRejected(RejectReason.INVALID_STRUCTURE, f"{where}: every part must be an object")
        if "text" in part:
            text = part["text"]
            if not isinstance(text, str):
                raise RowRejected(RejectReason.INVALID_STRUCTURE, f"{where}: 'text' must be a string")
            text = normalize_text(text)
            if text:
                normalized.append({**part, "text": text})
        elif part:
            normalized.append(part)
    return normalized


def _parts_text(parts: list[dict[str, Any]]) -> str:
    return "\n".join(p["text"] for p in parts if "text" in p)


def _check_turn_order(roles: list[str], where: str) -> None:
    if roles[0] != "user":
        raise RowRejected(RejectReason.INVALID_ROLES, f"{where}: the first turn must be 'user', got '{roles[0]}'")
    for index in range(1, len(roles)):
        if roles[index] == roles[index - 1]:
            raise RowRejected(
                RejectReason.INVALID_ROLES,
                f"{where}: turns {index} and {index + 1} are both '{roles[index]}'; turns must alternate user/model",
            )
    if roles[-1] != "model":
        raise RowRejected(
            RejectReason.INVALID_ROLES, f"{where}: the last turn must be the model's answer, got '{roles[-1]}'"
        )


def _is_single_text(part: dict[str, Any]) -> bool:
    return len(part) == 1 and "text" in part


def _finish(fmt: str, system_instruction: str | None, turns: list[dict[str, Any]], where: str) -> ConvertedRecord:
    """Common checks of multi-turn formats once ``turns`` are normalised Gemini contents."""
    _check_turn_order([t["role"] for t in turns], where)
    history = turns[:-1]
    response_parts = turns[-1]["parts"]
    response = _parts_text(response_parts)
    if not any(t["parts"] for t in history):
        raise RowRejected(RejectReason.EMPTY_PROMPT, f"{where}: the user turns are empty")
    if not response:
        raise RowRejected(RejectReason.EMPTY_RESPONSE, f"{where}: the final model turn has no text")
    if (
        len(history) == 1
        and len(history[0]["parts"]) == 1
        and _is_single_text(history[0]["parts"][0])
        and len(response_parts) == 1
        and _is_single_text(response_parts[0])
    ):
        return ConvertedRecord(fmt, system_instruction, history[0]["parts"][0]["text"], response)
    return ConvertedRecord(fmt, system_instruction, prompt_key_of(history), response, history, response_parts)


def prompt_key_of(history: list[dict[str, Any]]) -> str:
    """Canonical text of the turns before the answer: the text itself for a one-part user turn, else JSON."""
    if len(history) == 1 and len(history[0]["parts"]) == 1 and _is_single_text(history[0]["parts"][0]):
        return history[0]["parts"][0]["text"]
    return json.dumps(history, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _single_turn_contents(contents: list[Any]) -> tuple[str, str] | None:
    """``(prompt, response)`` when ``contents`` is exactly one user text and one model text, else None."""
    if len(contents) != 2:
        return None
    user, model = contents
    if type(user) is not dict or type(model) is not dict or user.get("role") != "user" or model.get("role") != "model":
        return None
    user_parts = user.get("parts")
    model_parts = model.get("parts")
    if type(user_parts) is not list or type(model_parts) is not list or len(user_parts) != 1 or len(model_parts) != 1:
        return None
    user_part = user_parts[0]
    model_part = model_parts[0]
    if type(user_part) is not dict or type(model_part) is not dict or len(user_part) != 1 or len(model_part) != 1:
        return None
    prompt = user_part.get("text")
    response = model_part.get("text")
    if type(prompt) is not str or type(response) is not str:
        return None
    return prompt, response


def _from_contents(record: dict[str, Any]) -> ConvertedRecord:
    contents = record["contents"]
    if not isinstance(contents, list) or not contents:
        raise RowRejected(RejectReason.INVALID_STRUCTURE, "'contents' must be a non-empty list of turns")
    system = _system_instruction_value(record.get("systemInstruction"), "systemInstruction")
    single = _single_turn_contents(contents)
    if single is not None:  # the common shape, without building new turn objects
        prompt, response = single
        prompt = prompt.strip() if prompt.isascii() else _normalize("NFC", prompt).strip()
        response = response.strip() if response.isascii() else _normalize("NFC", response).strip()
        if prompt and response:
            return ConvertedRecord(FORMAT_GEMINI, system, prompt, response)
    turns: list[dict[str, Any]] = []
    for number, content in enumerate(contents, start=1):
        if not isinstance(content, dict):
            raise RowRejected(RejectReason.INVALID_STRUCTURE, f"contents turn {number} must be an object")
        role = content.get("role")
        if role == "system":
            raise RowRejected(
                RejectReason.INVALID_ROLES,
                f"contents turn {number} has role 'system'; put it in 'systemInstruction' instead",
            )
        if role not in ("user", "model"):
            raise RowRejected(
                RejectReason.INVALID_ROLES, f"contents turn {number} has role {role!r}; expected 'user' or 'model'"
            )
        turns.append({"role": role, "parts": _normalize_parts(content.get("parts"), f"contents turn {number}")})
    return _finish(FORMAT_GEMINI, system, turns, "contents")


def _message_text(content: Any, number: int) -> str:
    if isinstance(content, str):
        return normalize_text(content)
    if isinstance(content, list):  # [{"type": "text", "text": "..."}] as some chat exports write it
        return "\n".join(t for t in (_part_text(p, f"messages[{number}].content") for p in content) if t)
    raise RowRejected(
        RejectReason.INVALID_STRUCTURE, f"message {number}: 'content' must be a string, got {type(content).__name__}"
    )


def _from_messages(record: dict[str, Any]) -> ConvertedRecord:
    messages = record["messages"]
    if not isinstance(messages, list) or not messages:
        raise RowRejected(RejectReason.INVALID_STRUCTURE, "'messages' must be a non-empty list")
    system: str | None = None
    turns: list[dict[str, Any]] = []
    for number, message in enumerate(messages, start=1):
        if not isinstance(message, dict):
            raise RowRejected(RejectReason.INVALID_STRUCTURE, f"message {number} must be an object")
        role = message.get("role")
        text = _message_text(message.get("content"), number)
        if role == "system":
            if number != 1:
                raise RowRejected(RejectReason.INVALID_ROLES, f"message {number}: a 'system' message must come first")
            system = text or None
            continue
        if role == "user":
            gemini_role = "user"
        elif role in MODEL_ROLES:
            gemini_role = "model"
        else:
            raise RowRejected(
                RejectReason.INVALID_ROLES,
                f"message {number} has role {role!r}; expected system, user, model or assistant",
            )
        turns.append({"role": gemini_role, "parts": [{"text": text}] if text else []})
    if not turns:
        raise RowRejected(RejectReason.EMPTY_PROMPT, "messages hold only a system message")
    return _finish(FORMAT_MESSAGES, system, turns, "messages")
