"""Parsing one JSONL source line: orjson where it agrees with the stdlib, the stdlib otherwise."""

from __future__ import annotations

import json
from json.scanner import make_scanner  # type: ignore[attr-defined]
from typing import Any

import orjson

from gemini_sft.dataset.formats import SingleTurnFields, single_turn_fields
from gemini_sft.dataset.records import RejectReason, RowRejected

_ORJSON_MAX_NESTING = 500


def read_json_line(line: bytes) -> tuple[dict[str, Any], SingleTurnFields | None]:
    """The JSON object on one source line and its single-turn fields; raises RowRejected as :func:`parse_line`.

    orjson parses first. Its result is used only for an object the single-turn
    fast path accepts: that path reads nothing but strings, keys and container
    shapes, on which orjson and the stdlib agree (numbers may differ; a
    stratification label reads them with the stdlib, see
    :func:`gemini_sft.dataset.first_pass.field_label`).
    Every other line (NaN or Infinity, lone surrogate escapes, integers beyond
    64 bits, which orjson reads as floats, nesting too deep for the stdlib,
    other shapes, errors) is parsed again by the stdlib, so results and
    rejection messages are exactly the stdlib's.
    """
    record = None
    # The stdlib gives up on nesting around the recursion limit (1000 levels, less the stack in use),
    # orjson at 1024: lines that could nest that deep are left to the stdlib. Nesting N levels takes
    # 2N bytes, so short lines need no counting.
    if len(line) < 2 * _ORJSON_MAX_NESTING or line.count(b"[") + line.count(b"{") < _ORJSON_MAX_NESTING:
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            pass
    if type(record) is dict:
        try:
            fields = single_turn_fields(record)
        except RowRejected:
            fields = None
        if fields is not None:
            return record, fields
    record = parse_line(line)
    return record, single_turn_fields(record)


_scan_json = make_scanner(json.JSONDecoder())


def parse_line(line: bytes) -> dict[str, Any]:
    """The JSON object on one source line; raises RowRejected when it is not UTF-8, not JSON or not an object.

    The C scanner is called directly (``json.loads`` adds a few wrapper calls per
    line); anything unusual goes through ``json.loads`` for its error message.
    """
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RowRejected(RejectReason.INVALID_ENCODING, f"the line is not valid UTF-8 (byte {exc.start + 1})") from None
    try:
        record, end = _scan_json(text, 0)
        if end != len(text) and not text[end:].isspace():
            raise ValueError("extra data")
    except (StopIteration, ValueError, RecursionError):
        record = _parse_slowly(text)
    if type(record) is not dict:
        raise RowRejected(RejectReason.NOT_AN_OBJECT, f"the line is a JSON {_json_type(record)}, not an object")
    return record


def _parse_slowly(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise RowRejected(RejectReason.UNPARSEABLE_LINE, f"not valid JSON: {exc.msg} at column {exc.colno}") from None
    except RecursionError:
        raise RowRejected(RejectReason.UNPARSEABLE_LINE, "JSON nested too deeply") from None


def _json_type(value: Any) -> str:
    return {list: "array", str: "string", bool: "boolean", type(None): "null"}.get(type(value), "number")
