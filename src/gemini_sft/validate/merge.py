"""Merging chunk results, in file order, into the figures of one file's report."""

from __future__ import annotations

from collections import Counter
from typing import Sequence

from gemini_sft.validate.checker import MAX_TRACKED_SYSTEM_INSTRUCTIONS, ChunkResult
from gemini_sft.validate.issues import RawIssue, ValidationIssue
from gemini_sft.validate.settings import ValidationConfig


class Merger:
    """Accumulates chunk results in file order; also the sink of file-level issues."""

    def __init__(self, config: ValidationConfig) -> None:
        self.config = config
        self.lines = 0
        self.examples = 0
        self.errors: list[ValidationIssue] = []
        self.warnings: list[ValidationIssue] = []
        self.error_counts: Counter[str] = Counter()
        self.warning_counts: Counter[str] = Counter()
        self.estimate_histogram: Counter[int] = Counter()
        self.api_histogram: Counter[int] = Counter()
        self.api_estimate_histogram: Counter[int] = Counter()  # estimates of the examples counted by the API
        self.api_counted = 0
        self.api_total = 0
        self.api_estimated_total = 0
        self.api_ok = True
        self.multimodal_examples = 0
        self.missing_system_instruction = 0
        self.first_missing_system_instruction_line: int | None = None
        self.system_instructions: dict[str, int] = {}
        self.more_system_instructions = False
        self.near_limit_count = 0
        self.first_near_limit_line: int | None = None

    def error(self, line: int | None, code: str, message: str) -> None:
        self.error_counts[code] += 1
        if len(self.errors) < self.config.max_stored_errors:
            self.errors.append(ValidationIssue(line, code, message))

    def warning(self, line: int | None, code: str, message: str) -> None:
        self.warning_counts[code] += 1
        if len(self.warnings) < self.config.max_stored_warnings:
            self.warnings.append(ValidationIssue(line, code, message))

    def add(self, chunk: ChunkResult, extra_errors: Sequence[RawIssue] = (), line_offset: int = 0) -> None:
        """Merge the next chunk; its line numbers are shifted by ``line_offset`` (worker chunks count from 1).

        Args:
            chunk: what checking the chunk found.
            extra_errors: errors found after the chunk was checked (token counts), merged in line order.
            line_offset: the lines merged before the chunk, when it was numbered from 1.
        """

        def shift(line: int | None) -> int | None:
            return line + line_offset if line is not None else None

        self.lines += chunk.lines
        self.examples += chunk.examples
        errors = chunk.errors if not extra_errors else sorted(
            [*chunk.errors, *extra_errors], key=lambda issue: issue[0] or 0
        )
        room = max(self.config.max_stored_errors - len(self.errors), 0)
        self.errors.extend(ValidationIssue(shift(line), code, message) for line, code, message in errors[:room])
        self.error_counts.update(chunk.error_counts)
        for _, code, _ in extra_errors:
            self.error_counts[code] += 1
        room = max(self.config.max_stored_warnings - len(self.warnings), 0)
        self.warnings.extend(
            ValidationIssue(shift(line), code, message) for line, code, message in chunk.warnings[:room]
        )
        self.warning_counts.update(chunk.warning_counts)
        self.estimate_histogram.update(chunk.token_histogram)
        self.multimodal_examples += chunk.multimodal_examples
        self.missing_system_instruction += chunk.missing_system_instruction
        if self.first_missing_system_instruction_line is None:
            self.first_missing_system_instruction_line = shift(chunk.first_missing_system_instruction_line)
        for text, line in chunk.system_instructions.items():
            if text not in self.system_instructions:
                if len(self.system_instructions) < MAX_TRACKED_SYSTEM_INSTRUCTIONS:
                    self.system_instructions[text] = line + line_offset
                else:
                    self.more_system_instructions = True
        self.more_system_instructions = self.more_system_instructions or chunk.more_system_instructions
        self.near_limit_count += chunk.near_limit_count
        if self.first_near_limit_line is None:
            self.first_near_limit_line = shift(chunk.first_near_limit_line)
