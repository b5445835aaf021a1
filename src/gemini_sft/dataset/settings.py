"""The clean stage's settings (:class:`CleanConfig`) and where it writes (:class:`SplitPaths`)."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gemini_sft.contracts import setting
from gemini_sft.dataset.dedup import POLICIES
from gemini_sft.dataset.splits import OVERFLOW_DESTINATIONS, SplitPlan
from gemini_sft.errors import ConfigError

CONFLICT_POLICIES: tuple[str, ...] = POLICIES
MAX_STRATA = 1000
TOO_MANY_STRATA = (
    f"stratify_by has more than {MAX_STRATA} distinct values; stratify by a categorical label "
    "(a category, not an id or free text)"
)
NO_LABEL = "(none)"


@dataclass(frozen=True)
class CleanConfig:
    """How to clean and split. Validated on construction; raises ConfigError listing every problem.

    ``stratify_by``: "" (no stratification), ``field:NAME`` (a top-level field
    of the raw record or a CSV column) or ``regex:PATTERN`` (group 1 of the
    pattern searched in the response, e.g. ``regex:Category: (\\w+)``).
    ``system_instruction``: when non-empty, replaces every example's own.
    ``min_response_chars``: 0 means no minimum (one-word labels are legitimate).
    """

    train_fraction: float = setting(0.8, "Share of the examples used for training (0 to 1).")
    validation_fraction: float = setting(0.1, "Share of the examples used for validation during tuning (0 to 1).")
    holdout_fraction: float = setting(0.1, "Share of the examples kept for the base-vs-tuned evaluation (0 to 1).")
    seed: int = setting(42, "Seed of the split; the same data and seed give the same splits.")
    system_instruction: str = setting("", "System instruction given to every example; empty keeps each example's own.")
    min_response_chars: int = setting(0, "Reject responses shorter than this many characters; 0 means no minimum.")
    conflict_policy: str = setting(
        "drop_all", "Same prompt with different responses: drop_all drops every such row, keep_first keeps the first.",
        choices=POLICIES,
    )
    mask_pii: bool = setting(False, "Mask e-mail addresses, phone numbers and card numbers before anything else sees them.")
    stratify_by: str = setting(
        "", "Keep label shares equal across splits: field:NAME (raw field) or regex:PATTERN (group 1 in the response)."
    )
    max_validation_examples: int = setting(5000, "Most examples in the validation split (Vertex accepts at most 5000).")
    validation_overflow: str = setting(
        "train", "Where validation examples over the cap go: train, holdout or drop.", choices=OVERFLOW_DESTINATIONS
    )
    min_split_examples: int = setting(
        2,
        "Fail the step when train, or validation or holdout with a fraction above 0, has fewer examples; 0 = no check.",
    )

    def __post_init__(self) -> None:
        problems: list[str] = []
        fractions = {
            "train_fraction": self.train_fraction,
            "validation_fraction": self.validation_fraction,
            "holdout_fraction": self.holdout_fraction,
        }
        for name, value in fractions.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value <= 1.0:
                problems.append(f"{name} must be a number between 0 and 1, got {value!r}")
        if not problems:
            total = sum(fractions.values())
            if abs(total - 1.0) > 1e-6:
                problems.append(
                    f"train_fraction + validation_fraction + holdout_fraction must be 1, got {total:g} "
                    f"({self.train_fraction:g} + {self.validation_fraction:g} + {self.holdout_fraction:g})"
                )
            if self.train_fraction <= 0:
                problems.append("train_fraction must be greater than 0: tuning needs training examples")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            problems.append(f"seed must be a non-negative integer, got {self.seed!r}")
        if not isinstance(self.min_response_chars, int) or self.min_response_chars < 0:
            problems.append(f"min_response_chars must be an integer >= 0 (0 = no minimum), got {self.min_response_chars!r}")
        if self.conflict_policy not in CONFLICT_POLICIES:
            problems.append(f"conflict_policy must be one of {', '.join(CONFLICT_POLICIES)}, got {self.conflict_policy!r}")
        if not isinstance(self.max_validation_examples, int) or self.max_validation_examples < 1:
            problems.append(
                f"max_validation_examples must be an integer >= 1 (Vertex accepts at most 5000), "
                f"got {self.max_validation_examples!r}"
            )
        minimum = self.min_split_examples
        if not isinstance(minimum, int) or isinstance(minimum, bool) or minimum < 0:
            problems.append(f"min_split_examples must be an integer >= 0 (0 = no check), got {minimum!r}")
        if self.validation_overflow not in OVERFLOW_DESTINATIONS:
            problems.append(
                f"validation_overflow must be one of {', '.join(OVERFLOW_DESTINATIONS)}, got {self.validation_overflow!r}"
            )
        if not isinstance(self.system_instruction, str):
            problems.append("system_instruction must be a string ('' for none)")
        problems.extend(_stratify_problems(self.stratify_by))
        if problems:
            raise ConfigError("invalid cleaning configuration: " + "; ".join(problems))

    @property
    def stratify_field(self) -> str | None:
        """The raw-record field to stratify by, when ``stratify_by`` is ``field:NAME``."""
        return self.stratify_by[len("field:"):] if self.stratify_by.startswith("field:") else None

    @property
    def stratify_pattern(self) -> re.Pattern[str] | None:
        """The compiled response pattern, when ``stratify_by`` is ``regex:PATTERN``."""
        return re.compile(self.stratify_by[len("regex:"):]) if self.stratify_by.startswith("regex:") else None

    def split_plan(self) -> SplitPlan:
        """The split parameters of this configuration."""
        return SplitPlan(
            self.train_fraction,
            self.validation_fraction,
            self.holdout_fraction,
            self.seed,
            self.max_validation_examples,
            self.validation_overflow,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict of every setting."""
        return asdict(self)


def _stratify_problems(stratify_by: str) -> list[str]:
    if not isinstance(stratify_by, str):
        return ["stratify_by must be a string"]
    if not stratify_by:
        return []
    if stratify_by.startswith("field:"):
        return [] if stratify_by[len("field:"):] else ["stratify_by 'field:' needs a field name, e.g. field:category"]
    if stratify_by.startswith("regex:"):
        try:
            pattern = re.compile(stratify_by[len("regex:"):])
        except re.error as exc:
            return [f"stratify_by regex does not compile ({exc}); e.g. regex:Category: (\\w+)"]
        if pattern.groups < 1:
            return ["stratify_by regex needs a capture group for the label, e.g. regex:Category: (\\w+)"]
        return []
    return [f"stratify_by must be '', 'field:NAME' or 'regex:PATTERN', got {stratify_by!r}"]


@dataclass(frozen=True)
class SplitPaths:
    """Where :func:`gemini_sft.dataset.clean.clean_dataset` writes its JSONL outputs and the rows' source lines.

    ``source_lines`` (see :mod:`gemini_sft.dataset.source_lines`) is not written when None.
    """

    train: Path
    validation: Path
    holdout: Path
    rejected: Path
    source_lines: Path | None = None

    @classmethod
    def in_directory(cls, directory: Path) -> SplitPaths:
        """``train.jsonl``, ``validation.jsonl``, ``holdout.jsonl``, ``rejected.jsonl`` and ``source_lines.json``."""
        splits = (directory / f"{name}.jsonl" for name in ("train", "validation", "holdout", "rejected"))
        return cls(*splits, source_lines=directory / "source_lines.json")

    def files(self) -> tuple[Path, ...]:
        """Every path written: train, validation, holdout, rejected, then source_lines when set."""
        return (self.train, self.validation, self.holdout, self.rejected, *filter(None, [self.source_lines]))
