"""The rules on a whole file (its start, size and example counts) and the warnings aggregated over its lines.

Codes: ``compressed_file``, ``byte_order_mark``, ``line_too_long``,
``no_examples``, ``file_too_large``, ``too_many_examples``,
``too_many_validation_examples``; warnings ``few_examples``,
``missing_system_instruction``, ``inconsistent_system_instructions``,
``near_token_limit``.
"""

from __future__ import annotations

from gemini_sft.model_catalog import ModelLimits
from gemini_sft.validate.checker import NEAR_LIMIT_FRACTION
from gemini_sft.validate.issues import IssueSink
from gemini_sft.validate.merge import Merger
from gemini_sft.validate.reading import MAX_LINE_BYTES
from gemini_sft.validate.report import human_bytes
from gemini_sft.validate.settings import ValidationConfig


def report_compressed(sink: IssueSink, compression: str) -> None:
    """``compressed_file``: Vertex reads plain JSONL."""
    sink.error(
        None,
        "compressed_file",
        f"The file is {compression}-compressed; Vertex reads plain JSONL. Decompress it, or run "
        "`gemini-sft clean`, which reads compressed input and writes plain JSONL.",
    )


def report_byte_order_mark(sink: IssueSink) -> None:
    """``byte_order_mark``: the file starts with a UTF-8 BOM (the rest of line 1 is still checked)."""
    sink.error(
        1,
        "byte_order_mark",
        "The file starts with a UTF-8 byte order mark (BOM). Save it as UTF-8 without BOM "
        "(the rest of line 1 was still checked).",
    )


def report_long_line(sink: IssueSink, line_no: int, limits: ModelLimits, max_line_bytes: int = MAX_LINE_BYTES) -> None:
    """``line_too_long``: a line far above any example's size, skipped unread."""
    sink.error(
        line_no,
        "line_too_long",
        f"The line is longer than {max_line_bytes // (1024 * 1024)} MiB, far above the token limit of "
        f"{limits.max_tokens_per_example:,} per example. Split it or check that lines end with a newline.",
    )


def check_file_limits(merger: Merger, config: ValidationConfig, limits: ModelLimits, file_bytes: int) -> None:
    """``no_examples``, ``file_too_large``, ``too_many_examples``, ``too_many_validation_examples``, ``few_examples``."""
    examples = merger.examples
    if examples == 0 and "compressed_file" not in merger.error_counts:
        merger.error(None, "no_examples", "The file holds no examples. Add one JSON example per line.")
    if file_bytes > limits.max_training_file_bytes:
        merger.error(
            None,
            "file_too_large",
            f"The file is {human_bytes(file_bytes)}, above Vertex's limit of {human_bytes(limits.max_training_file_bytes)}. "
            "Remove examples or deduplicate it.",
        )
    if config.split == "validation":
        if examples > limits.max_validation_examples:
            merger.error(
                None,
                "too_many_validation_examples",
                f"The validation file has {examples:,} examples; Vertex accepts at most "
                f"{limits.max_validation_examples:,}. Move the rest to the training or holdout split.",
            )
        return
    if merger.multimodal_examples and examples > limits.max_training_examples_multimodal:
        merger.error(
            None,
            "too_many_examples",
            f"The file has {examples:,} examples with multimodal parts; Vertex accepts at most "
            f"{limits.max_training_examples_multimodal:,} for multimodal tuning. Remove examples.",
        )
    elif examples > limits.max_training_examples_text:
        merger.error(
            None,
            "too_many_examples",
            f"The file has {examples:,} examples; Vertex accepts at most "
            f"{limits.max_training_examples_text:,}. Remove examples.",
        )
    if 0 < examples < config.min_recommended_examples:
        merger.warning(
            None,
            "few_examples",
            f"The file has {examples:,} examples; Google recommends at least {config.min_recommended_examples} "
            "for supervised tuning.",
        )


def check_system_instructions(merger: Merger) -> None:
    """``missing_system_instruction``, ``inconsistent_system_instructions``: one instruction in every example."""
    if merger.missing_system_instruction:
        merger.warning(
            merger.first_missing_system_instruction_line,
            "missing_system_instruction",
            f"{merger.missing_system_instruction:,} example(s) have no systemInstruction (the first at this line). "
            "If your application sends a system instruction, give every example the same one.",
        )
    distinct = len(merger.system_instructions)
    if distinct > 1 or (distinct and merger.missing_system_instruction) or merger.more_system_instructions:
        lines = sorted(merger.system_instructions.values())
        first_other = lines[1] if len(lines) > 1 else lines[0]
        more = "+" if merger.more_system_instructions else ""
        merger.warning(
            first_other,
            "inconsistent_system_instructions",
            f"The examples use {distinct}{more} different system instructions"
            f"{' (and some have none)' if merger.missing_system_instruction else ''}; the first differing one "
            "is at this line. Use exactly the instruction your application will send, in every example.",
        )


def check_near_token_limit(merger: Merger, limits: ModelLimits) -> None:
    """``near_token_limit``: examples whose estimate is close to the limit (the estimate may be off)."""
    if merger.near_limit_count:
        merger.warning(
            merger.first_near_limit_line,
            "near_token_limit",
            f"{merger.near_limit_count:,} example(s) have an estimated token count above "
            f"{NEAR_LIMIT_FRACTION:.0%} of the {limits.max_tokens_per_example:,} limit (the first at this line); "
            "the estimate may be off, so shorten them or check them with the countTokens API.",
        )


def check_whole_file(merger: Merger, config: ValidationConfig, limits: ModelLimits, file_bytes: int) -> None:
    """Every file-level rule and aggregated warning, in report order."""
    check_file_limits(merger, config, limits, file_bytes)
    check_system_instructions(merger)
    check_near_token_limit(merger, limits)
