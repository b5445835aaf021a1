"""Reading the holdout split: one :class:`HoldoutCase` per usable Gemini-format example."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from gemini_sft.errors import EvaluationError, InputFormatError
from gemini_sft.examples import EvaluationCase, evaluation_case

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HoldoutCase:
    """One holdout example ready for evaluation."""

    example_id: str
    case: EvaluationCase


def _example_id(example: Mapping[str, Any], line_number: int) -> str:
    for key in ("id", "example_id"):
        value = example.get(key)
        if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value):
            return str(value)
    return f"line-{line_number}"


def load_holdout(path: str | Path) -> tuple[list[HoldoutCase], int]:
    """Read a Gemini-format JSONL holdout file; returns (cases, number of lines skipped).

    Blank lines are ignored; examples without a model turn after a user turn are
    skipped and counted. Raises InputFormatError when the file is missing or a line
    is not a JSON object, EvaluationError when no usable example remains.

    Args:
        path: the holdout JSONL file (the clean step's holdout split).
    """
    file = Path(path)
    if not file.is_file():
        raise InputFormatError(f"holdout file {file} does not exist")
    cases: list[HoldoutCase] = []
    skipped = 0
    seen: set[str] = set()
    with file.open(encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                example = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputFormatError(f"{file}:{line_number}: not valid JSON ({exc.msg})") from exc
            if not isinstance(example, dict):
                raise InputFormatError(f"{file}:{line_number}: expected a JSON object per line")
            try:
                case = evaluation_case(example)
            except ValueError:
                skipped += 1
                continue
            example_id = _example_id(example, line_number)
            if example_id in seen:
                example_id = f"{example_id}@line-{line_number}"
            seen.add(example_id)
            cases.append(HoldoutCase(example_id=example_id, case=case))
    if not cases:
        raise EvaluationError(
            f"holdout file {file} has no usable examples ({skipped} lines without a model turn); "
            "check the clean step's holdout fraction"
        )
    if skipped:
        log.warning("holdout: skipped %d examples without a model turn to use as reference", skipped)
    log.info("holdout: %d examples", len(cases))
    return cases, skipped
