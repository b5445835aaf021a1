"""What Vertex says about the training data: ``tuning_data_stats.supervised_tuning_data_stats``.

Vertex reports the examples it truncated or dropped by their 1-based index in
the training file (``truncated_example_indices``, a partial sample) with a
reason each (``dropped_example_reasons``), plus token distributions. This
module turns each index into the place a user fixes the example
(:func:`locate_truncated_examples`): the raw file's line, from the clean
stage's source lines (:mod:`gemini_sft.dataset.source_lines`) when they
describe this training file, else the line of the training split file; and a
fix for the reason.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from gemini_sft.dataset.source_lines import SourceLines, read_source_lines
from gemini_sft.model_catalog import ModelLimits

log = logging.getLogger(__name__)


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
    """An example Vertex truncated or dropped, and where to fix it.

    ``index`` is Vertex's 1-based example index in the training file;
    ``training_line`` the 1-based line in the training split file (None when
    the file could not be read); ``source_line`` the line in the raw file the
    clean stage read (None without the clean stage's source lines). ``source``
    and ``line`` are where to fix it: the raw file and its line when
    ``in_raw_file``, else the training split file and its line. ``fix`` says
    what to change.
    """

    index: int
    reason: str
    training_line: int | None = None
    source_line: int | None = None
    source: str = ""
    line: int | None = None
    in_raw_file: bool = False
    fix: str = ""


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

    def reasons(self) -> list[tuple[int, str]]:
        """Each named example's index with its reason ("no reason given" when Vertex gave none)."""
        reasons = self.dropped_example_reasons
        return [(index, (reasons[i] if i < len(reasons) else "") or "no reason given")
                for i, index in enumerate(self.truncated_example_indices)]

    def as_dict(self) -> dict[str, Any]:
        """The stats as plain JSON values."""
        return asdict(self)


@dataclass(frozen=True)
class TrainingFile:
    """The training split file as the tune step read it: each example's 1-based line and the file's SHA-256."""

    lines: Sequence[int]
    sha256: str


def read_training_file(path: str | Path) -> TrainingFile | None:
    """The line number of each example (non-blank line) of a JSONL file and its SHA-256; None when unreadable.

    Args:
        path: the training split file as the tune step sees it.
    """
    digest = hashlib.sha256()
    try:
        with Path(path).open("rb") as handle:
            lines = []
            for number, line in enumerate(handle, start=1):
                digest.update(line)
                if line.strip():
                    lines.append(number)
    except OSError as error:
        log.warning("the training file %s cannot be read (%s): truncated examples get no line", path, error)
        return None
    return TrainingFile(lines, digest.hexdigest())


def load_source_lines(path: str | Path | None) -> SourceLines | None:
    """The clean stage's source lines in ``path``; None (and a warning) when none is given or it cannot be read.

    Never raises: without them, truncated examples are named by their line in the training split.

    Args:
        path: the clean step's ``source_lines`` file; None or "" when the step was given none.
    """
    if not path:
        return None
    try:
        return read_source_lines(path)
    except (OSError, ValueError, KeyError, TypeError) as error:
        log.warning("the source lines %s cannot be read (%s): truncated examples are named by their line in "
                    "the training split", path, error)
        return None


def _raw_lines_for(training: TrainingFile | None, source_lines: SourceLines | None) -> tuple[Sequence[int] | None, str]:
    """The raw file's line of each training example, when ``source_lines`` describe this training file.

    Returns ``(lines, "")``, or ``(None, why not)``.

    Args:
        training: the training file as read (None: unreadable).
        source_lines: the clean stage's record (None: not given).
    """
    if source_lines is None:
        return None, ("the clean stage's source lines were not given (a run made before the clean step recorded "
                      "them, or a training split given directly)")
    split = source_lines.splits.get("train")
    if training is None or split is None:
        return None, "the training file or the source lines of its split cannot be read"
    if split.rows != len(training.lines):
        return None, (f"the clean stage's source lines are of a training split of {split.rows:,} rows; this one "
                      f"has {len(training.lines):,}")
    if split.sha256 and split.sha256 != training.sha256:
        return None, "the clean stage's source lines are of another training file (its SHA-256 differs)"
    return split.lines, ""


# Words of a reason that mean the example was too long.
_LENGTH_WORDS = ("truncat", "token", "long", "length")


def fix_for(reason: str, limits: ModelLimits | None) -> str:
    """What to change in an example Vertex truncated or dropped for ``reason``.

    Args:
        reason: Vertex's reason.
        limits: the base model's limits in the model catalogue (None: unknown).
    """
    if any(word in reason.lower() for word in _LENGTH_WORDS):
        limit = (f"{limits.name} takes at most {limits.max_tokens_per_example:,} tokens" if limits
                 else "the base model has a token limit")
        return (f"Shorten the example or split it into several: {limit} per example (max_tokens_per_example "
                "in the model catalogue), and Vertex tuned on the cut text.")
    return "Fix the example as the reason says, or remove it, then clean and tune again."


def locate_truncated_examples(
    stats: TuningDataStats,
    training_file: str | Path | None,
    training_uri: str = "",
    source_lines: SourceLines | None = None,
    limits: ModelLimits | None = None,
) -> list[TruncatedExample]:
    """The truncated or dropped examples Vertex named, each with where to fix it and how.

    With source lines that describe this training file (same rows and SHA-256),
    each example is named by the raw file and its line; otherwise by the
    training split and its line, and the reason is logged.

    Args:
        stats: what Vertex said of the training data.
        training_file: local path of the training split (None: lines unknown).
        training_uri: the training split as the job read it, named when the raw line is unknown.
        source_lines: the clean stage's source lines (None: not given).
        limits: the base model's limits in the model catalogue, quoted in the fix.
    """
    named = stats.reasons()
    if not named:
        return []
    training = read_training_file(training_file) if training_file is not None else None
    raw_lines, why_not = _raw_lines_for(training, source_lines)
    if raw_lines is None:
        log.warning("truncated examples are named by their line in the training split: %s", why_not)
    fallback_source = training_uri or (str(training_file) if training_file is not None else "")
    found = []
    for index, reason in named:
        known = training is not None and 0 < index <= len(training.lines)
        training_line = training.lines[index - 1] if known else None
        source_line = int(raw_lines[index - 1]) if raw_lines is not None and known else None
        in_raw = source_line is not None
        found.append(TruncatedExample(
            index, reason, training_line, source_line,
            source=source_lines.source if in_raw else fallback_source,
            line=source_line if in_raw else training_line,
            in_raw_file=in_raw,
            fix=fix_for(reason, limits),
        ))
    return found
