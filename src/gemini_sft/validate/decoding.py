"""Turning one line into a JSON value, or into the error that says why it is not one.

Codes: ``invalid_utf8``, ``non_finite_number``, ``invalid_json``, ``blank_line``.
"""

from __future__ import annotations

import json
from typing import Any

from gemini_sft.validate.issues import IssueSink


class NonFiniteNumber(ValueError):
    """JSON holds NaN, Infinity or -Infinity, which Python accepts but JSON (and Vertex) does not."""


def _reject_constant(name: str) -> Any:
    raise NonFiniteNumber(name)


DECODER = json.JSONDecoder(parse_constant=_reject_constant)
SCAN_ONCE = DECODER.scan_once
"""The C scanner behind json.loads; calling it directly skips two regex passes per line."""
JSON_WHITESPACE = " \t\r\n"
FAILED = object()
"""Returned by :func:`parse_line` for a line that holds no JSON value (the reason is recorded)."""


def report_decode_failure(sink: IssueSink, line_no: int, exc: Exception) -> None:
    """Record why a line could not be turned into a JSON value."""
    if isinstance(exc, UnicodeDecodeError):
        sink.error(
            line_no,
            "invalid_utf8",
            f"Byte {exc.start + 1} of the line is not valid UTF-8. Save the file as UTF-8 "
            "(for example re-export it, or convert it with `iconv -t UTF-8`).",
        )
    elif isinstance(exc, NonFiniteNumber):
        sink.error(
            line_no,
            "non_finite_number",
            f"The line contains {exc.args[0]}, which JSON does not allow. Replace it with a number, "
            "null or a string.",
        )
    elif isinstance(exc, RecursionError):
        sink.error(line_no, "invalid_json", "The JSON is nested too deeply to read. Write one flat example per line.")
    else:
        detail = f"{exc.msg} at column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else str(exc)
        sink.error(
            line_no,
            "invalid_json",
            f"The line is not valid JSON ({detail}). Each line must be one complete JSON object; "
            "check quoting and escaping, and that no object spans several lines.",
        )


def parse_line(sink: IssueSink, line_no: int, raw: bytes) -> Any:
    """The JSON value of a line, or :data:`FAILED` after recording why not (the slow, complete path)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        report_decode_failure(sink, line_no, exc)
        return FAILED
    try:
        # Anything unusual after the value falls back to the full decoder for its message.
        value, end = SCAN_ONCE(text, 0)
        if end != len(text) and text[end:].strip(JSON_WHITESPACE):
            DECODER.decode(text)  # raises "Extra data" with its position
        return value
    except StopIteration:
        pass
    except (ValueError, RecursionError) as exc:
        report_decode_failure(sink, line_no, exc)
        return FAILED
    if not text.strip(JSON_WHITESPACE):
        sink.error(line_no, "blank_line", "The line is blank. Remove blank lines: every line must hold one example.")
        return FAILED
    try:
        return DECODER.decode(text)
    except (ValueError, RecursionError) as exc:
        report_decode_failure(sink, line_no, exc)
        return FAILED
