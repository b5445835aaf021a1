"""The clean stage's report: counts, rejections, splits and labels, as metrics and as Markdown."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from gemini_sft import __version__
from gemini_sft.dataset.decisions import Decisions
from gemini_sft.dataset.fates import FATE_OF_REASON, REASONS
from gemini_sft.dataset.first_pass import FirstPass
from gemini_sft.dataset.pii import PII_KINDS
from gemini_sft.dataset.settings import CleanConfig, SplitPaths
from gemini_sft.dataset.sources import SourceInfo
from gemini_sft.dataset.splits import SPLIT_NAMES
from gemini_sft.dataset.version import (
    GCP_LABEL_VALUE_MAX,
    DatasetVersion,
    FileRecord,
    dataset_sha256,
    file_record,
    file_sha256,
)
from gemini_sft.errors import CleanInvariantError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CleanReport:
    """Outcome of :func:`gemini_sft.dataset.clean.clean_dataset`: counts, the version record and warnings."""

    rows_read: int
    blank_lines: int
    kept_rows: int
    rejected_rows: int
    split_rows: dict[str, int]
    rejected_by_reason: dict[str, int]
    pii_masked: dict[str, int]
    system_instructions_replaced: int
    version: DatasetVersion
    warnings: list[str] = field(default_factory=list)

    @property
    def train_rows(self) -> int:
        """Examples in the train split."""
        return self.split_rows["train"]

    @property
    def validation_rows(self) -> int:
        """Examples in the validation split."""
        return self.split_rows["validation"]

    @property
    def holdout_rows(self) -> int:
        """Examples in the holdout split."""
        return self.split_rows["holdout"]

    @property
    def dataset_hash(self) -> str:
        """Label-safe hash of the splits (see :class:`DatasetVersion`)."""
        return self.version.dataset_hash

    def metrics(self) -> dict[str, float]:
        """Flat counts for a metrics sink: rows, splits, rejections per reason, PII per kind."""
        values: dict[str, float] = {
            "rows_read": self.rows_read,
            "blank_lines": self.blank_lines,
            "kept_rows": self.kept_rows,
            "rejected_rows": self.rejected_rows,
        }
        values.update({f"{name}_rows": count for name, count in self.split_rows.items()})
        values.update({f"rejected_{reason}": count for reason, count in self.rejected_by_reason.items()})
        values.update({f"pii_masked_{kind}": count for kind, count in self.pii_masked.items()})
        return values

    def to_markdown(self) -> str:
        """A human-readable report: counts, rejections, PII, splits, labels, version. No example content."""
        version = self.version
        gzip_note = ", gzip" if version.source_compressed else ""
        sections = [
            "# Data cleaning report",
            "\n".join([
                (
                    f"- Source: `{version.source_uri}` ({version.source_container}{gzip_note}), "
                    f"SHA-256 `{version.source_sha256}`"
                ),
                *([f"- Source pattern: `{version.source_uri_pattern}`"]
                  if version.source_uri_pattern and version.source_uri_pattern != version.source_uri else []),
                f"- Dataset hash: `{version.dataset_hash}`",
                f"- Code version: {version.code_version}",
                f"- Cleaned at: {version.created_at}",
            ]),
        ]
        if self.warnings:
            sections += ["## Warnings", "\n".join(f"- {warning}" for warning in self.warnings)]
        sections += [
            "## Rows",
            _table(("", "rows"), [
                ("read", self.rows_read),
                ("kept", self.kept_rows),
                ("rejected", self.rejected_rows),
                ("blank lines (not rows)", self.blank_lines),
            ]),
            (
                "Every row read is either kept (in one split) or rejected (in `rejected.jsonl` with its line "
                "number, reason and raw text)."
            ),
            "## Rejections by reason",
            _table(("reason", "rows"), [(f"`{r}`", c) for r, c in self.rejected_by_reason.items() if c] or [("none", 0)]),
            "## Input formats (rows recognised)",
            _table(("format", "rows"), [(f"`{f}`", c) for f, c in version.source_formats.items()] or [("none", 0)]),
            "## Splits",
            _table(("split", "examples", "share", "bytes", "SHA-256"), [
                (name, record.rows, f"{record.rows / self.kept_rows if self.kept_rows else 0.0:.1%}", record.bytes,
                 f"`{record.sha256}`")
                for name, record in version.splits.items()
            ]),
        ]
        if version.label_distribution:
            labels = sorted({label for split in version.label_distribution.values() for label in split})
            sections += [
                f"## Label distribution (`{_md_escape(version.config['stratify_by'])}`)",
                _table(("label", *SPLIT_NAMES), [
                    (_md_escape(label), *(version.label_distribution.get(name, {}).get(label, 0) for name in SPLIT_NAMES))
                    for label in labels
                ]),
            ]
        if version.config.get("mask_pii"):
            sections += ["## Personal data masked", _table(("kind", "matches"), list(self.pii_masked.items()))]
        if self.system_instructions_replaced:
            sections.append(
                f"The configured system instruction replaced a different one in "
                f"{self.system_instructions_replaced} examples."
            )
        sections += [
            "## Configuration",
            _table(("setting", "value"), [(k, f"`{_md_escape(json.dumps(v))}`") for k, v in version.config.items()]),
        ]
        return "\n\n".join(sections) + "\n"


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> str:
    """A Markdown table; numeric columns are right-aligned."""
    numeric = [all(isinstance(row[i], (int, float)) for row in rows) and bool(rows) for i in range(len(header))]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---:" if is_number else "---" for is_number in numeric) + "|",
    ]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")



def _label_distribution(state: FirstPass, destinations: np.ndarray) -> dict[str, dict[str, int]]:
    """Examples per label per split, when stratified."""
    if not state.label_names:
        return {}
    names = sorted(state.label_names, key=state.label_names.__getitem__)
    labels = np.frombuffer(state.label_ids, dtype=np.int16)
    distribution: dict[str, dict[str, int]] = {}
    for code, split in enumerate(SPLIT_NAMES):
        counts = np.bincount(labels[destinations == code], minlength=len(names))
        distribution[split] = {name: int(counts[i]) for i, name in enumerate(names) if counts[i]}
    return distribution


def build_report(
    source: Path,
    source_uri: str | None,
    info: SourceInfo,
    config: CleanConfig,
    state: FirstPass,
    decisions: Decisions,
    outputs: SplitPaths,
    splits: dict[str, FileRecord],
    rejected_written: int,
    source_uri_pattern: str = "",
) -> CleanReport:
    """Check the accounting, hash the outputs and assemble the report. Raises CleanInvariantError.

    Args:
        source: the raw data file.
        source_uri: its URI for the record (defaults to the path).
        info: how it was read.
        config: the settings of the stage.
        state: the first pass's counts and fates.
        decisions: each converted row's destination.
        outputs: the files written.
        splits: the record of each split file, by split name.
        rejected_written: rows written to the rejected file.
        source_uri_pattern: the configured raw data URI, with placeholders.
    """
    split_counts = {name: record.rows for name, record in splits.items()}
    rows_read = state.counter.rows
    kept = sum(split_counts.values())
    fate_counts = np.bincount(np.frombuffer(state.fates, dtype=np.uint8), minlength=256)
    reason_counts = {reason.value: int(fate_counts[FATE_OF_REASON[reason]]) for reason in REASONS}
    rejected = sum(reason_counts.values())
    if not (rows_read == kept + rejected == len(state.fates) and rejected == rejected_written):
        raise CleanInvariantError(
            f"row accounting does not balance: read {rows_read}, kept {kept}, rejected {rejected} "
            f"({rejected_written} written)"
        )
    full_hash = dataset_sha256({name: record.sha256 for name, record in splits.items()})
    warnings: list[str] = []
    if kept == 0:
        warnings.append("no example was kept: see rejected.jsonl for the reasons")
    for name in ("validation", "holdout"):
        fraction = getattr(config, f"{name}_fraction")
        if kept and fraction > 0 and split_counts[name] == 0:
            warnings.append(f"the {name} split is empty: too few examples for {name}_fraction={fraction:g}")
    pii_masked = dict(state.pii.counts) if config.mask_pii else dict.fromkeys(PII_KINDS, 0)
    version = DatasetVersion(
        dataset_hash=full_hash[:GCP_LABEL_VALUE_MAX],
        dataset_sha256=full_hash,
        splits=splits,
        rejected=file_record(outputs.rejected, rejected),
        counts={
            "rows_read": rows_read,
            "blank_lines": state.counter.blank_lines,
            "kept": kept,
            "rejected": rejected,
            **{name: split_counts[name] for name in SPLIT_NAMES},
        },
        rejected_by_reason=reason_counts,
        pii_masked=pii_masked,
        source_formats=dict(sorted(state.format_counts.items())),
        label_distribution=_label_distribution(state, decisions.destinations),
        config=config.to_dict(),
        source_uri=source_uri or str(source),
        source_sha256=state.source_sha256 or file_sha256(source),
        source_container=info.container,
        source_compressed=info.compressed,
        code_version=__version__,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        source_uri_pattern=source_uri_pattern,
    )
    logger.info(
        "cleaned: %d rows read, %d kept (train %d, validation %d, holdout %d), %d rejected, %d blank lines",
        rows_read, kept, split_counts["train"], split_counts["validation"], split_counts["holdout"], rejected,
        state.counter.blank_lines,
    )
    return CleanReport(
        rows_read=rows_read,
        blank_lines=state.counter.blank_lines,
        kept_rows=kept,
        rejected_rows=rejected,
        split_rows=split_counts,
        rejected_by_reason=reason_counts,
        pii_masked=pii_masked,
        system_instructions_replaced=state.system_instructions_replaced,
        version=version,
        warnings=warnings,
    )
