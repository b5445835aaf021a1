"""The outcome of validating one file: its figures, its JSON, its Markdown and console renderings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from gemini_sft.cost import CostEstimate, TokenStats, format_usd
from gemini_sft.errors import DatasetInvalidError
from gemini_sft.validate.counting import TOKEN_SOURCE_API, TOKEN_SOURCE_ESTIMATE
from gemini_sft.validate.issues import ERROR_CODES, WARNING_CODES, ValidationIssue
from gemini_sft.validate.settings import Split

ISSUES_SHOWN_PER_CODE = 5


@dataclass(frozen=True)
class IssueGroup:
    """The issues of one code, for a report: how many there are and the first few (in file order)."""

    title: str  # "Errors" or "Warnings"
    code: str
    meaning: str
    count: int
    shown: list[ValidationIssue]

    @property
    def more(self) -> int:
        """Issues of this code not shown."""
        return self.count - len(self.shown)


def where(issue: ValidationIssue) -> str:
    """"line N", or "file" for a file-level issue."""
    return f"line {issue.line}" if issue.line is not None else "file"


@dataclass
class ValidationReport:
    """The outcome of validating one file.

    ``errors``/``warnings`` hold at most the configured number of issues (the
    first ones in file order); ``error_counts``/``warning_counts`` count every
    issue. ``token_source`` says whether token figures come from the countTokens
    API or the offline estimate. ``cost`` is the tuning estimate (zero for a
    validation file, which is not billed as training).
    """

    path: str
    split: Split
    model: str
    file_bytes: int
    lines: int
    examples: int
    errors: list[ValidationIssue]
    warnings: list[ValidationIssue]
    error_counts: dict[str, int]
    warning_counts: dict[str, int]
    token_stats: TokenStats
    token_source: str
    cost: CostEstimate
    multimodal_examples: int = 0

    @property
    def valid(self) -> bool:
        """True when the file breaks no rule (warnings do not count)."""
        return not any(self.error_counts.values())

    @property
    def error_count(self) -> int:
        return sum(self.error_counts.values())

    @property
    def warning_count(self) -> int:
        return sum(self.warning_counts.values())

    @property
    def estimated_cost_usd(self) -> float:
        return self.cost.estimated_cost_usd

    @property
    def billable_tokens(self) -> int:
        """Training tokens over all epochs (dataset tokens plus padding, times epochs)."""
        return self.cost.billable_tokens

    def to_json_dict(self) -> dict[str, Any]:
        """The report as printed by ``gemini-sft validate --json``."""
        return {
            "valid": self.valid,
            "examples": self.examples,
            "errors": [issue.to_dict() for issue in self.errors],
            "warnings": [issue.to_dict() for issue in self.warnings],
            "token_stats": self.token_stats.to_dict(),
            "estimated_cost_usd": round(self.estimated_cost_usd, 6),
        }

    def summary_rows(self) -> list[tuple[str, str]]:
        """(label, value) pairs summarising the report, for tables."""
        stats = self.token_stats
        source = "countTokens API" if self.token_source == TOKEN_SOURCE_API else "offline estimate"
        return [
            ("File", self.path),
            ("Split", self.split),
            ("Result", "VALID" if self.valid else "INVALID"),
            ("Examples", f"{self.examples:,}"),
            ("Size", human_bytes(self.file_bytes)),
            ("Errors", f"{self.error_count:,}"),
            ("Warnings", f"{self.warning_count:,}"),
            ("Token counts", source),
            (
                "Tokens per example",
                f"min {stats.min:,} / mean {stats.mean:,.1f} / p50 {_number(stats.p50)} / "
                f"p95 {_number(stats.p95)} / max {stats.max:,}",
            ),
            ("Tokens in file", f"{stats.total:,}"),
            (
                "Estimated cost",
                f"{format_usd(self.estimated_cost_usd)} ({self.cost.billable_tokens_per_epoch:,} billable tokens x "
                f"{self.cost.epochs} epochs x ${self.cost.price_per_million_tokens_usd:g}/1M, {self.model})"
                if self.split == "training"
                else "not billed as training (validation file)",
            ),
        ]

    def issue_groups(self, max_issues_per_code: int = ISSUES_SHOWN_PER_CODE) -> Iterator[IssueGroup]:
        """Errors then warnings, one group per code, the most frequent code first."""
        for title, issues, counts, meanings in (
            ("Errors", self.errors, self.error_counts, ERROR_CODES),
            ("Warnings", self.warnings, self.warning_counts, WARNING_CODES),
        ):
            for code, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
                shown = [issue for issue in issues if issue.code == code][:max_issues_per_code]
                yield IssueGroup(title, code, meanings.get(code, code), count, shown)

    def to_markdown(self, max_issues_per_code: int = ISSUES_SHOWN_PER_CODE) -> str:
        """A Markdown report: summary table, errors and warnings grouped by code with line numbers."""
        out = [f"# Validation of `{Path(self.path).name}` ({self.split})", ""]
        out.append("| | |")
        out.append("|---|---|")
        for label, value in self.summary_rows():
            out.append(f"| {label} | {value.replace('|', '&#124;')} |")
        out.append("")
        title = None
        for group in self.issue_groups(max_issues_per_code):
            if group.title != title:
                title = group.title
                out += [f"## {title}", ""]
            out.append(f"### `{group.code}`: {group.meaning} ({group.count:,})")
            out.append("")
            out += [f"- {where(issue)}: {issue.message}" for issue in group.shown]
            if group.more > 0:
                out.append(f"- ... and {group.more:,} more")
            out.append("")
        if self.token_source == TOKEN_SOURCE_ESTIMATE:
            out.append(
                "_Token figures are offline estimates (about 4 characters of ASCII text, or 4 bytes of "
                "other UTF-8 text, per token); Vertex's count may differ._"
            )
        return "\n".join(out) + "\n"

    def to_text(self, max_issues_per_code: int = ISSUES_SHOWN_PER_CODE) -> str:
        """A console report: the summary table, then the first errors and warnings grouped by code."""
        rows = self.summary_rows()
        width = max(len(label) for label, _ in rows)
        out = [f"  {label.ljust(width)}  {value}" for label, value in rows]
        title = None
        for group in self.issue_groups(max_issues_per_code):
            if group.title != title:
                title = group.title
                total = self.error_count if title == "Errors" else self.warning_count
                out.append(f"\n{title} ({total:,}), by code:")
            out.append(f"  {group.code} ({group.count:,}): {group.meaning}")
            out += [f"    {where(issue)}: {issue.message}" for issue in group.shown]
            if group.more > 0:
                out.append(f"    ... and {group.more:,} more")
        if self.token_source == TOKEN_SOURCE_ESTIMATE:
            out.append(
                "\n  Token counts are offline estimates; pass --project to count them with the countTokens API."
            )
        return "\n".join(out) + "\n"


def raise_if_invalid(report: ValidationReport, max_listed: int = 10) -> None:
    """Raise DatasetInvalidError naming the first errors when the report is not valid."""
    if report.valid:
        return
    listed = "; ".join(f"{where(issue)}: [{issue.code}] {issue.message}" for issue in report.errors[:max_listed])
    counts = ", ".join(f"{code}={count}" for code, count in sorted(report.error_counts.items()))
    raise DatasetInvalidError(
        f"{Path(report.path).name} ({report.split}) has {report.error_count:,} error(s) ({counts}). First: {listed}"
    )


def _number(value: float) -> str:
    """A figure without a pointless fraction: 28 -> '28', 28.5 -> '28.5'."""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def human_bytes(size: int) -> str:
    """A size for people: 512 B, 1.5 KB, 3.2 GB."""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    return f"{size} B"  # pragma: no cover
