"""The rules Vertex applies to one example, each a small function recording its code and fix-it message.

These are the slow, complete checks: the fast path (:mod:`gemini_sft.validate.fast_path`)
accepts the common valid shape inline and sends every other line here. Each
function records into an :class:`~gemini_sft.validate.issues.IssueSink` and
names the codes it may raise. Messages never quote example content, only
schema values (roles, key names) shortened by :func:`short`.

Every rule takes the same leading arguments: ``sink`` (where issues are
recorded) and ``line_no`` (the example's 1-based line); then the value it
checks, and where that value is: ``index`` (the turn's position in
``contents``) or ``where`` (the path of a part, e.g. ``contents[0].parts[1]``).
"""

from __future__ import annotations

import json
from typing import Any

from gemini_sft.validate.issues import IssueSink

TOP_LEVEL_KEYS = frozenset({"contents", "systemInstruction", "tools"})
TURN_KEYS = frozenset({"role", "parts"})
PART_DATA_KEYS = frozenset({"text", "fileData", "functionCall", "functionResponse"})
FILE_DATA_KEYS = frozenset({"mimeType", "fileUri"})
SYSTEM_INSTRUCTION_KEYS = frozenset({"role", "parts"})
GCS_PREFIX = "gs://"
ASSISTANT_ROLES = ("assistant", "bot", "ai")


def short(value: Any, limit: int = 40) -> str:
    """A short, printable rendering of a schema value (a role or key name) for a message."""
    text = repr(value) if isinstance(value, str) else json.dumps(value, ensure_ascii=True, default=str)
    text = text.encode("ascii", "backslashreplace").decode("ascii")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def type_name(value: Any) -> str:
    """The JSON name of a value's type, with its article ("an object", "a list", "null")."""
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number"}.get(type(value), type(value).__name__)


def check_is_object(sink: IssueSink, line_no: int, example: Any) -> bool:
    """``not_an_object``: a line holds one JSON object. Returns whether it does."""
    if type(example) is dict:
        return True
    sink.error(
        line_no,
        "not_an_object",
        f"The line is {type_name(example)}, not a JSON object. Write each example as "
        '{"contents": [...]} on its own line.',
    )
    return False


def check_top_level_keys(sink: IssueSink, line_no: int, example: dict) -> None:
    """``unknown_key`` (warning): an example holds only contents, systemInstruction and tools."""
    for key in example:
        if key not in TOP_LEVEL_KEYS:
            sink.warning(
                line_no,
                "unknown_key",
                f"Key {short(key)} is not part of Vertex's tuning format (contents, systemInstruction, tools) "
                "and will be ignored or rejected; remove or rename it.",
            )


def check_system_instruction(sink: IssueSink, line_no: int, instruction: Any) -> str | None:
    """``invalid_system_instruction``, ``unknown_key``: an object of non-blank text parts.

    Returns the instruction's text when it is valid, else None.
    """
    fix = 'Write "systemInstruction": {"parts": [{"text": "..."}]}.'
    if type(instruction) is not dict:
        if instruction is None:
            fix = 'Remove the key or write "systemInstruction": {"parts": [{"text": "..."}]}.'
        elif type(instruction) is str:
            fix = 'Wrap the string: "systemInstruction": {"parts": [{"text": "..."}]}.'
        sink.error(
            line_no,
            "invalid_system_instruction",
            f"systemInstruction is {type_name(instruction)}, not an object. {fix}",
        )
        return None
    for key in instruction:
        if key not in SYSTEM_INSTRUCTION_KEYS:
            sink.warning(
                line_no,
                "unknown_key",
                f"systemInstruction has key {short(key)}; it only has 'parts' (and an ignored 'role').",
            )
    parts = instruction.get("parts")
    if type(parts) is not list or not parts:
        sink.error(
            line_no,
            "invalid_system_instruction",
            f"systemInstruction.parts is {'empty' if parts == [] else type_name(parts)}; "
            f"it must be a non-empty list of text parts. {fix}",
        )
        return None
    texts: list[str] = []
    for part_index, part in enumerate(parts):
        text = part.get("text") if type(part) is dict else None
        if type(text) is not str or not text or text.isspace() or len(part) != 1:
            sink.error(
                line_no,
                "invalid_system_instruction",
                f"systemInstruction.parts[{part_index}] must be {{\"text\": \"...\"}} with non-blank text "
                "(a system instruction holds text only).",
            )
        else:
            texts.append(text)
    return "\n".join(texts) if len(texts) == len(parts) else None


def check_contents_list(sink: IssueSink, line_no: int, example: dict) -> list | None:
    """``missing_contents``, ``invalid_contents``, ``empty_contents``: a non-empty list of turns.

    Returns the list when it is one and not empty, else None.
    """
    contents = example.get("contents")
    if type(contents) is not list:
        if "contents" not in example:
            sink.error(
                line_no,
                "missing_contents",
                'The example has no "contents". Add "contents": a list of user/model turns, e.g. '
                '[{"role": "user", "parts": [{"text": "..."}]}, {"role": "model", "parts": [{"text": "..."}]}].',
            )
        else:
            sink.error(
                line_no,
                "invalid_contents",
                f'"contents" is {type_name(contents)}; it must be a list of turns '
                '({"role": ..., "parts": [...]}).',
            )
        return None
    if not contents:
        sink.error(
            line_no, "empty_contents", '"contents" is empty. Add at least one user turn followed by a model turn.'
        )
        return None
    return contents


def check_turns(sink: IssueSink, line_no: int, contents: list) -> bool:
    """Every rule on the turns of a non-empty ``contents`` list. Returns whether a part holds fileData."""
    previous_role: Any = None
    has_file_data = False
    for index, turn in enumerate(contents):
        if type(turn) is not dict:
            sink.error(
                line_no,
                "invalid_turn",
                f"contents[{index}] is {type_name(turn)}; each turn must be an object "
                '{"role": "user" or "model", "parts": [...]}.',
            )
            previous_role = None
            continue
        role = turn.get("role")
        check_turn_keys(sink, line_no, index, turn)
        check_role(sink, line_no, index, role, previous_role)
        previous_role = role
        parts = turn.get("parts")
        if not check_parts_list(sink, line_no, index, turn, parts):
            continue
        for part_index, part in enumerate(parts):
            has_file_data = check_part(sink, line_no, f"contents[{index}].parts[{part_index}]", part) or has_file_data
    check_last_turn(sink, line_no, contents)
    return has_file_data


def check_turn_keys(sink: IssueSink, line_no: int, index: int, turn: dict) -> None:
    """``unknown_key`` (warning): a turn has only 'role' and 'parts'."""
    for key in turn:
        if key not in TURN_KEYS:
            sink.warning(
                line_no,
                "unknown_key",
                f"contents[{index}] has key {short(key)}; a turn only has 'role' and 'parts'. Remove or rename it.",
            )


def check_role(sink: IssueSink, line_no: int, index: int, role: Any, previous_role: Any) -> None:
    """``invalid_role``, ``system_role_in_contents``, ``first_turn_not_user``, ``consecutive_roles``."""
    if role != "user" and role != "model":
        if role == "system":
            sink.error(
                line_no,
                "system_role_in_contents",
                f"contents[{index}] has role 'system'. Move its text to the top-level "
                '"systemInstruction": {"parts": [{"text": "..."}]} and remove the turn.',
            )
        elif role is None:
            sink.error(line_no, "invalid_role", f"contents[{index}] has no role. Set \"role\" to 'user' or 'model'.")
        else:
            hint = " (use 'model' for the assistant's answers)" if role in ASSISTANT_ROLES else ""
            sink.error(
                line_no,
                "invalid_role",
                f"contents[{index}] has role {short(role)}; roles must be 'user' or 'model'{hint}.",
            )
    elif index == 0 and role != "user":
        sink.error(
            line_no,
            "first_turn_not_user",
            "The first turn (contents[0]) has role 'model'. Start every example with a 'user' turn.",
        )
    elif role == previous_role:
        sink.error(
            line_no,
            "consecutive_roles",
            f"contents[{index - 1}] and contents[{index}] both have role {role!r}. "
            "Turns must alternate user/model: merge the two turns or add the missing one between them.",
        )


def check_parts_list(sink: IssueSink, line_no: int, index: int, turn: dict, parts: Any) -> bool:
    """``missing_parts``, ``empty_parts``: a turn has a non-empty ``parts`` list. Returns whether it has."""
    if type(parts) is list:
        if parts:
            return True
        sink.error(
            line_no,
            "empty_parts",
            f'contents[{index}].parts is empty. Give the turn at least one part {{"text": "..."}}.',
        )
    elif parts is None:
        hint = ' (found "content"/"text": wrap it as "parts": [{"text": ...}])' if (
            "content" in turn or "text" in turn
        ) else ""
        sink.error(
            line_no,
            "missing_parts",
            f'contents[{index}] has no "parts" list{hint}. Give each turn "parts": [{{"text": "..."}}].',
        )
    else:
        sink.error(
            line_no,
            "missing_parts",
            f'contents[{index}].parts is {type_name(parts)}; it must be a list such as [{{"text": "..."}}].',
        )
    return False


def check_part(sink: IssueSink, line_no: int, where: str, part: Any) -> bool:
    """``invalid_part``, ``unknown_key`` and the rules of its data. Returns whether it is a fileData part."""
    if type(part) is not dict:
        sink.error(
            line_no,
            "invalid_part",
            f'{where} is {type_name(part)}; a part must be an object such as {{"text": "..."}}.',
        )
        return False
    if "inlineData" in part:
        sink.error(
            line_no,
            "invalid_part",
            f"{where} uses inlineData, which tuning does not accept. Upload the file to Cloud Storage "
            'and reference it with "fileData": {"mimeType": ..., "fileUri": "gs://..."}.',
        )
        return False
    for key in part:
        if key not in PART_DATA_KEYS:
            sink.warning(
                line_no,
                "unknown_key",
                f"{where} has key {short(key)}; a part holds 'text' or 'fileData'. Remove or rename it.",
            )
    data_keys = [key for key in part if key in PART_DATA_KEYS]
    if len(data_keys) != 1:
        what = "none" if not data_keys else " and ".join(data_keys)
        sink.error(
            line_no,
            "invalid_part",
            f'{where} must hold exactly one of "text" or "fileData" (found {what}). '
            "Split it into separate parts or fill it in.",
        )
        return False
    if "text" in part:
        check_text(sink, line_no, where, part["text"])
        return False
    if "fileData" in part:
        check_file_data(sink, line_no, where, part["fileData"])
        return True
    return False  # functionCall / functionResponse: accepted as is (function-calling tuning)


def check_text(sink: IssueSink, line_no: int, where: str, text: Any) -> None:
    """``invalid_text``, ``empty_text``: a text part holds a non-blank string."""
    if type(text) is not str:
        sink.error(line_no, "invalid_text", f"{where}.text is {type_name(text)}; it must be a string. Quote the value.")
    elif not text or text.isspace():
        sink.error(
            line_no,
            "empty_text",
            f"{where}.text is empty or blank. Fill it in, or remove the part (and the example if nothing remains).",
        )


def check_file_data(sink: IssueSink, line_no: int, where: str, file_data: Any) -> None:
    """``invalid_file_data``, ``unknown_key``: a fileData part has a mimeType and a gs:// fileUri."""
    if type(file_data) is not dict:
        sink.error(
            line_no,
            "invalid_file_data",
            f'{where}.fileData is {type_name(file_data)}; write {{"mimeType": "image/png", "fileUri": "gs://bucket/file"}}.',
        )
        return
    problems = []
    mime_type = file_data.get("mimeType")
    if type(mime_type) is not str or "/" not in mime_type:
        problems.append("a mimeType such as 'image/jpeg'")
    uri = file_data.get("fileUri")
    if type(uri) is not str or not uri.startswith(GCS_PREFIX) or len(uri) <= len(GCS_PREFIX):
        problems.append("a fileUri in Cloud Storage starting with 'gs://'")
    if problems:
        sink.error(
            line_no,
            "invalid_file_data",
            f"{where}.fileData needs {' and '.join(problems)}. Upload the file to Cloud Storage and reference it there.",
        )
    for key in file_data:
        if key not in FILE_DATA_KEYS:
            sink.warning(
                line_no,
                "unknown_key",
                f"{where}.fileData has key {short(key)}; it only has 'mimeType' and 'fileUri'.",
            )


def check_last_turn(sink: IssueSink, line_no: int, contents: list) -> None:
    """``last_turn_not_model``: an example ends with the model's answer."""
    last = contents[-1]
    if type(last) is dict and last.get("role") == "user":
        sink.error(
            line_no,
            "last_turn_not_model",
            f"The last turn (contents[{len(contents) - 1}]) is a 'user' turn. End every example with "
            "the model's answer: Vertex trains on model turns.",
        )
