"""What checking a run of lines records, and the complete checks of one parsed example.

A :class:`ChunkChecker` runs in a worker process for large files, so its state
is module-level and picklable. The fast path (:mod:`gemini_sft.validate.fast_path`)
drives it line by line and calls :meth:`ChunkChecker.check_example` for every
line outside the common valid shape.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from gemini_sft.tokens import estimate_example_tokens
from gemini_sft.validate import rules
from gemini_sft.validate.issues import RawIssue
from gemini_sft.validate.token_limit import OFFLINE_ESTIMATE, too_many_tokens_message

NEAR_LIMIT_FRACTION = 0.9
# Distinct system instructions remembered to detect inconsistency (kept in memory only, never reported).
MAX_TRACKED_SYSTEM_INSTRUCTIONS = 16


@dataclass(frozen=True)
class ChunkParams:
    """What a chunk checker needs to know: the token limit, how many issues to keep, whether to collect for the API.

    ``limit_note`` and ``limit_fix`` are what a too_many_tokens message adds (see
    :class:`gemini_sft.validate.token_limit.TokenLimit`).
    """

    max_tokens_per_example: int
    max_stored_issues: int
    collect_for_api: bool
    limit_note: str = ""
    limit_fix: str = ""


@dataclass
class ChunkResult:
    """What checking a run of lines found; merged in file order by :class:`gemini_sft.validate.merge.Merger`."""

    lines: int = 0
    examples: int = 0
    errors: list[RawIssue] = field(default_factory=list)
    error_counts: Counter[str] = field(default_factory=Counter)
    warnings: list[RawIssue] = field(default_factory=list)
    warning_counts: Counter[str] = field(default_factory=Counter)
    token_histogram: Counter[int] = field(default_factory=Counter)
    multimodal_examples: int = 0
    missing_system_instruction: int = 0
    first_missing_system_instruction_line: int | None = None
    # system instruction text -> first line: kept in memory only, never logged or reported
    system_instructions: dict[str, int] = field(default_factory=dict)
    more_system_instructions: bool = False
    near_limit_count: int = 0
    first_near_limit_line: int | None = None
    # (line, example, estimate) of structurally valid examples, when an API counter is used
    for_api: list[tuple[int, dict, int]] = field(default_factory=list)


class ChunkChecker:
    """Records the issues and figures of one chunk of lines; the rules live in :mod:`gemini_sft.validate.rules`."""

    def __init__(self, params: ChunkParams) -> None:
        self.params = params
        self.result = ChunkResult()
        self.error_total = 0
        self.token_counts: list[int] = []

    def error(self, line: int | None, code: str, message: str) -> None:
        result = self.result
        self.error_total += 1
        result.error_counts[code] += 1
        if len(result.errors) < self.params.max_stored_issues:
            result.errors.append((line, code, message))

    def warning(self, line: int | None, code: str, message: str) -> None:
        result = self.result
        result.warning_counts[code] += 1
        if len(result.warnings) < self.params.max_stored_issues:
            result.warnings.append((line, code, message))

    def track_system_instruction(self, text: str, line_no: int) -> None:
        """Remember a system instruction not seen before (a bounded number of them)."""
        if len(self.result.system_instructions) < MAX_TRACKED_SYSTEM_INSTRUCTIONS:
            self.result.system_instructions[text] = line_no
        else:
            self.result.more_system_instructions = True

    def note_missing_system_instruction(self, line_no: int) -> None:
        """Count an example without a system instruction, remembering the first line."""
        self.result.missing_system_instruction += 1
        if self.result.first_missing_system_instruction_line is None:
            self.result.first_missing_system_instruction_line = line_no

    def check_token_limit(self, line_no: int, tokens: int) -> None:
        """``too_many_tokens`` above the per-example limit; remember examples close to it (the estimate may be off)."""
        max_tokens = self.params.max_tokens_per_example
        if tokens > max_tokens:
            message = too_many_tokens_message(tokens, OFFLINE_ESTIMATE, max_tokens, self.params.limit_note,
                                              self.params.limit_fix)
            self.error(line_no, "too_many_tokens", message)
        elif tokens > int(max_tokens * NEAR_LIMIT_FRACTION):
            self.result.near_limit_count += 1
            if self.result.first_near_limit_line is None:
                self.result.first_near_limit_line = line_no

    def check_example(self, line_no: int, example: Any) -> None:
        """Apply every rule to one parsed line and record what it finds (the slow, complete path)."""
        if not rules.check_is_object(self, line_no, example):
            return
        errors_before = self.error_total
        rules.check_top_level_keys(self, line_no, example)
        if "systemInstruction" not in example:
            self.note_missing_system_instruction(line_no)
        else:
            instruction_text = rules.check_system_instruction(self, line_no, example["systemInstruction"])
            if instruction_text is not None and instruction_text not in self.result.system_instructions:
                self.track_system_instruction(instruction_text, line_no)
        contents = rules.check_contents_list(self, line_no, example)
        if contents is not None and rules.check_turns(self, line_no, contents):
            self.result.multimodal_examples += 1
        tokens = estimate_example_tokens(example)
        self.token_counts.append(tokens)
        if self.params.collect_for_api:
            if self.error_total == errors_before:
                self.result.for_api.append((line_no, example, tokens))
        else:
            self.check_token_limit(line_no, tokens)
