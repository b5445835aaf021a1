"""What Vertex says about the training data: ``tuning_data_stats.supervised_tuning_data_stats``.

Vertex reports the examples it truncated or dropped by their 1-based index in
the training file (``truncated_example_indices``, a partial sample) with a
reason each (``dropped_example_reasons``), plus token distributions. This
module turns indices into line numbers of the training split file
(:func:`training_line_numbers`) and, when the clean stage gives the raw
file's line of each training row, into lines of the raw file
(:func:`map_to_source_lines`), so a user can find and fix the example.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence


@dataclass(frozen=True)
class TokenDistribution:
    """One ``SupervisedTuningDatasetDistribution``: per-example counts' summary."""

    min: float | None = None
    max: float | None = None
    mean: float | None = None
    median: float | None = None
    p5: float | None = None
    p95: float | None = None
    sum: int | None = None
    billable_sum: int | None = None


@dataclass(frozen=True)
class TruncatedExample:
    """An example Vertex truncated or dropped.

    ``index`` is Vertex's 1-based example index; ``training_line`` the 1-based
    line in the training split file (None when the file could not be read);
    ``source_line`` the line in the raw file the clean stage read (None until
    that mapping is given).
    """

    index: int
    reason: str
    training_line: int | None = None
    source_line: int | None = None


@dataclass(frozen=True)
class TuningDataStats:
    """The parts of ``supervised_tuning_data_stats`` the tune step reports (None: Vertex did not say)."""

    example_count: int | None = None
    tuning_step_count: int | None = None
    total_truncated_example_count: int | None = None
    truncated_example_indices: tuple[int, ...] = ()
    dropped_example_reasons: tuple[str, ...] = ()
    user_input_tokens: TokenDistribution | None = None
    user_output_tokens: TokenDistribution | None = None
    messages_per_example: TokenDistribution | None = None

    def truncated_examples(
        self, training_lines: Sequence[int] | None = None, source_lines: Sequence[int | None] | None = None
    ) -> list[TruncatedExample]:
        """The truncated examples Vertex named, with their reasons and line numbers.

        Args:
            training_lines: the training file's line number of each example (:func:`training_line_numbers`);
                None maps none.
            source_lines: the raw file's line of each training row, when known (see :func:`map_to_source_lines`).
        """
        found = []
        for position, index in enumerate(self.truncated_example_indices):
            reason = self.dropped_example_reasons[position] if position < len(self.dropped_example_reasons) else ""
            line = training_lines[index - 1] if training_lines and 0 < index <= len(training_lines) else None
            found.append(TruncatedExample(index, reason or "no reason given", line, None))
        return map_to_source_lines(found, source_lines) if source_lines is not None else found

    def as_dict(self) -> dict[str, Any]:
        """The stats as plain JSON values."""
        return asdict(self)


def training_line_numbers(path: str | Path) -> list[int] | None:
    """The 1-based line number of each example (non-blank line) of a JSONL file; None when it cannot be read.

    Args:
        path: the training split file as the tune step sees it.
    """
    try:
        with Path(path).open("rb") as handle:
            return [number for number, line in enumerate(handle, start=1) if line.strip()]
    except OSError:
        return None


def map_to_source_lines(
    examples: Sequence[TruncatedExample], source_lines: Sequence[int | None]
) -> list[TruncatedExample]:
    """The examples with ``source_line`` set from a per-row list of raw-file lines.

    Args:
        examples: truncated examples with their Vertex index (1-based example of the training file).
        source_lines: for each row of the training split, in order, its line in the raw file (None: unknown).
    """
    mapped = []
    for example in examples:
        line = source_lines[example.index - 1] if 0 < example.index <= len(source_lines) else None
        mapped.append(TruncatedExample(example.index, example.reason, example.training_line, line))
    return mapped
