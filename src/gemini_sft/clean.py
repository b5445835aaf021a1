"""The clean stage's core: raw rows in, Gemini train / validation / holdout splits out, nothing lost.

:func:`clean_dataset` reads a source file (JSONL in any supported record
format, CSV/TSV, optionally gzip-compressed), normalises every row to a Gemini
example, rejects what cannot be used with a stable reason code, and splits the
rest. Every row read ends in exactly one split file or in the rejected file
(``{"line", "reason", "detail", "raw"}`` per row); the count is checked.

Memory does not grow with the size of the examples: the first pass converts
each row once, writes the converted line to a temporary file and keeps only a
few integers per row (about 40 bytes: three hashes, a line number, a line
length, a fate byte, a label id); duplicates, conflicts and splits are
decided on those arrays (about 100 bytes per row for a moment); the second
pass copies runs of consecutive converted lines to their split files. Large plain JSONL files
are converted by several processes (one per CPU), with the same result.

Nothing here logs or reports example content; only ``rejected.jsonl`` holds
raw text, because the user must be able to see what was removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import multiprocessing
import os
import re
import tempfile
from array import array
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from json.scanner import make_scanner  # type: ignore[attr-defined]
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from gemini_sft import __version__
from gemini_sft.contracts import setting
from gemini_sft.dedup import CONFLICT, DUPLICATE, KEEP, POLICIES, resolve_duplicates
from gemini_sft.errors import CleanInvariantError, ConfigError, InputFormatError
from gemini_sft.formats import (
    ConvertedRecord,
    RejectReason,
    RowRejected,
    SingleTurnFields,
    convert_record,
    gemini_json_line,
    normalize_text,
    prompt_key_of,
    single_turn_fields,
    single_turn_line,
    single_turn_line_utf8,
)
from gemini_sft.parallel import available_cpus
from gemini_sft.pii import PII_KINDS, PiiCounts, mask_pii
from gemini_sft.sources import (
    CONTAINER_JSONL,
    DECOMPRESSION_ERRORS,
    RowCounter,
    SourceInfo,
    count_newlines,
    detect_source,
    jsonl_lines_at,
    line_aligned_ranges,
    open_rows,
)
from gemini_sft.splits import (
    DROPPED,
    OVERFLOW_DESTINATIONS,
    SPLIT_NAMES,
    SplitPlan,
    assign_splits,
    group_ids_by_first_appearance,
)

logger = logging.getLogger(__name__)

CONFLICT_POLICIES: tuple[str, ...] = POLICIES
MAX_STRATA = 1000
_TOO_MANY_STRATA = (
    f"stratify_by has more than {MAX_STRATA} distinct values; stratify by a categorical label "
    "(a category, not an id or free text)"
)
NO_LABEL = "(none)"
GCP_LABEL_VALUE_MAX = 63

REASON_CODES: tuple[str, ...] = tuple(reason.value for reason in RejectReason)

# A row's fate, one byte per row: a split (0-2, the codes of gemini_sft.splits), or a rejection.
_FATE_REJECT_BASE = 10
_FATE_PENDING = 255
_REASONS: tuple[RejectReason, ...] = tuple(RejectReason)
_FATE_OF_REASON: dict[RejectReason, int] = {r: _FATE_REJECT_BASE + i for i, r in enumerate(_REASONS)}
# Reasons decided after the first pass, from the whole file; the others are decided row by row.
_LATE_REASONS = (RejectReason.DUPLICATE, RejectReason.CONFLICTING_RESPONSE, RejectReason.VALIDATION_OVERFLOW)
_LATE_FATES = frozenset(_FATE_OF_REASON[r] for r in _LATE_REASONS)


# ---------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------


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
    """Where :func:`clean_dataset` writes its four JSONL outputs."""

    train: Path
    validation: Path
    holdout: Path
    rejected: Path

    @classmethod
    def in_directory(cls, directory: Path) -> SplitPaths:
        """``train.jsonl``, ``validation.jsonl``, ``holdout.jsonl`` and ``rejected.jsonl`` in ``directory``."""
        return cls(*(directory / f"{name}.jsonl" for name in ("train", "validation", "holdout", "rejected")))


# ---------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FileRecord:
    """One output file: rows, size in bytes and SHA-256 (lowercase hex)."""

    rows: int
    bytes: int
    sha256: str


@dataclass(frozen=True)
class DatasetVersion:
    """What identifies a cleaned dataset and how it was made (written as ``dataset_version.json``).

    ``dataset_hash`` is the first 63 hex digits of ``dataset_sha256`` (the
    SHA-256 over the three split hashes), short enough for a GCP label value.
    """

    dataset_hash: str
    dataset_sha256: str
    splits: dict[str, FileRecord]
    rejected: FileRecord
    counts: dict[str, int]
    rejected_by_reason: dict[str, int]
    pii_masked: dict[str, int]
    source_formats: dict[str, int]
    label_distribution: dict[str, dict[str, int]]
    config: dict[str, Any]
    source_uri: str
    source_sha256: str
    source_container: str
    source_compressed: bool
    code_version: str
    created_at: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)

    def to_json(self) -> str:
        """Indented JSON text."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DatasetVersion:
        """Inverse of :meth:`to_dict`."""
        values = dict(data)
        values["splits"] = {name: FileRecord(**record) for name, record in data["splits"].items()}
        values["rejected"] = FileRecord(**data["rejected"])
        return cls(**{f.name: values[f.name] for f in fields(cls)})


@dataclass(frozen=True)
class CleanReport:
    """Outcome of :func:`clean_dataset`: counts, the version record and warnings."""

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


# ---------------------------------------------------------------------------
# The core
# ---------------------------------------------------------------------------


def clean_dataset(
    source: Path, outputs: SplitPaths, config: CleanConfig, source_uri: str | None = None
) -> CleanReport:
    """Clean ``source`` and write the splits and rejected rows to ``outputs``.

    ``source_uri`` is recorded in the version record (defaults to the path).
    Raises :class:`InputFormatError` when the file cannot be read at all
    (missing, corrupt gzip), :class:`ConfigError` when the stratification
    field has too many distinct values, and :class:`CleanInvariantError` if
    the row accounting does not balance (a bug). Bad rows never raise: they
    are rejected with a reason code.
    """
    source = Path(source)
    info = detect_source(source)
    logger.info("cleaning %s input (%s)", info.container, "gzip" if info.compressed else "uncompressed")
    for path in (outputs.train, outputs.validation, outputs.holdout, outputs.rejected):
        path.parent.mkdir(parents=True, exist_ok=True)
    # Local scratch space: on Vertex the outputs live on the Cloud Storage mount, which is slow for scratch.
    work_dir = Path(tempfile.mkdtemp(prefix="gemini-sft-clean-"))
    try:
        first = _first_pass(source, info, config, work_dir)
        decisions = _decide(first, config)
        split_files = dict(zip(SPLIT_NAMES, _route_converted(first, decisions.destinations, outputs)))
        rejected_written = _write_rejected(source, info, first, decisions, config, outputs.rejected)
    finally:
        for leftover in work_dir.iterdir():
            leftover.unlink()
        work_dir.rmdir()
    return _build_report(source, source_uri, info, config, first, decisions, outputs, split_files, rejected_written)


@dataclass
class _FirstPass:
    """What the first pass keeps: per row a fate byte and a line number; per converted row three hashes
    and the length of its converted line.

    The hashes come from Python's ``hash`` (process-local); every decision made
    from them depends only on equality and on file order, so results are the
    same in every process.
    """

    counter: RowCounter = field(default_factory=lambda: RowCounter(log_progress=True))
    fates: bytearray = field(default_factory=bytearray)  # per row: _FATE_PENDING or an early rejection
    lines: array = field(default_factory=lambda: array("q"))  # per row: 1-based source line
    conflict_keys: array = field(default_factory=lambda: array("q"))  # per converted row: system + prompt
    response_keys: array = field(default_factory=lambda: array("q"))  # per converted row: response
    group_keys: array = field(default_factory=lambda: array("q"))  # per converted row: prompt only
    label_ids: array = field(default_factory=lambda: array("h"))  # per converted row, when stratifying
    label_names: dict[str, int] = field(default_factory=dict)
    format_counts: dict[str, int] = field(default_factory=dict)
    pii: PiiCounts = field(default_factory=PiiCounts)
    system_instructions_replaced: int = 0
    line_lengths: array = field(default_factory=lambda: array("I"))  # per converted row: bytes of its line
    converted_paths: list[Path] = field(default_factory=list)  # converted lines, in row order across files
    converted_rows: list[int] = field(default_factory=list)  # per converted-lines file: its lines
    early_rejects_paths: list[Path] = field(default_factory=list)  # early rejections, in row order across files
    source_sha256: str = ""  # when already computed
    # Distinct system instructions seen (None included), up to two: with one, prompt groups and
    # (system, prompt) groups coincide and the split needs no grouping of its own.
    system_variants: set[str | None] = field(default_factory=set)


@dataclass
class _Decisions:
    """Per converted row: destination (a split code, or _LATE for a late rejection) and referenced line."""

    destinations: np.ndarray
    reference_lines: np.ndarray


_LATE = 3


RowConverter = Callable[[dict[str, Any], "SingleTurnFields | None", bytes], tuple[bytes, int, int, int]]


def _row_converter(config: CleanConfig, state: _FirstPass) -> RowConverter:
    """A function turning a parsed record into its output line and keys, applying ``config``.

    It takes ``(record, single_turn_fields(record), raw line)`` and returns
    ``(UTF-8 output line with newline, conflict key, response key, group
    key)``; it counts formats, PII matches and labels in ``state`` for the rows
    it accepts, and raises RowRejected for the others. A closure, because it
    runs once per row and local lookups are the cheapest.
    """
    configured_system = normalize_text(config.system_instruction) or None
    min_chars = config.min_response_chars
    mask = config.mask_pii
    stratify_field = config.stratify_field
    stratify_pattern = config.stratify_pattern
    format_counts = state.format_counts
    pii_counts = state.pii
    label_names = state.label_names
    label_append = state.label_ids.append
    # The last system instruction seen: rows usually repeat one, and reusing one string
    # object reuses its cached hash.
    last_system: list[str | None] = [None]
    system_variants = state.system_variants

    def add_label(label: str) -> None:
        label_id = label_names.get(label)
        if label_id is None:
            if len(label_names) >= MAX_STRATA:
                raise ConfigError(_TOO_MANY_STRATA)
            label_id = label_names[label] = len(label_names)
        label_append(label_id)

    def convert(record: dict[str, Any], fields: SingleTurnFields | None, raw: bytes) -> tuple[bytes, int, int, int]:
        if fields is not None:  # the fast path: one user text, one answer
            fmt, system, prompt_key, response = fields
            converted = None
            if mask:
                prompt_key = mask_pii(prompt_key, pii_counts)
                response = mask_pii(response, pii_counts)
        else:
            converted = convert_record(record)
            if mask:
                converted = _masked(converted, pii_counts)
            fmt, system, prompt_key, response = (
                converted.source_format, converted.system_instruction, converted.prompt_key, converted.response,
            )
        replaced_system = False
        if configured_system is not None:
            replaced_system = system is not None and system != configured_system
            system = configured_system
        elif system is not None:
            if system == last_system[0]:
                system = last_system[0]
            else:
                last_system[0] = system
        if min_chars and len(response) < min_chars:
            raise RowRejected(
                RejectReason.RESPONSE_TOO_SHORT,
                f"the response has {len(response)} characters; min_response_chars is {min_chars}",
            )
        if converted is None:
            try:
                output_line = single_turn_line_utf8(system, prompt_key, response, b"\n")
            except TypeError:  # a lone surrogate, which orjson cannot encode
                output_line = _utf8_line(single_turn_line(system, prompt_key, response, "\n"), raw)
        else:
            output_line = _utf8_line(gemini_json_line(system, converted, "\n"), raw)
        group_key = hash(prompt_key)
        if stratify_field is not None:
            add_label(_field_label(record, stratify_field, raw))
        elif stratify_pattern is not None:
            match = stratify_pattern.search(response)
            add_label(match.group(1) if match and match.group(1) else NO_LABEL)
        format_counts[fmt] = format_counts.get(fmt, 0) + 1
        if replaced_system:
            state.system_instructions_replaced += 1
        if len(system_variants) < 2 and system not in system_variants:
            system_variants.add(system)
        return (
            output_line,
            group_key if system is None else hash((system, prompt_key)),
            hash(response),
            group_key,
        )

    return convert


def _utf8_line(line: str, raw: bytes) -> bytes:
    """``line`` encoded as UTF-8; raises RowRejected when it holds a lone surrogate from a ``\\u`` escape of ``raw``."""
    # A lone surrogate (from a "\\udXXX" escape) cannot be written as UTF-8; it makes a line non-ASCII.
    if not line.isascii() and b"\\u" in raw and _has_lone_surrogate(line):
        raise RowRejected(RejectReason.INVALID_ENCODING, "the text contains an unpaired \\u surrogate escape")
    return line.encode("utf-8")


_ORJSON_MAX_NESTING = 500


def _read_json_line(line: bytes) -> tuple[dict[str, Any], SingleTurnFields | None]:
    """The JSON object on one source line and its single-turn fields; raises RowRejected as :func:`_parse_line`.

    orjson parses first. Its result is used only for an object the single-turn
    fast path accepts: that path reads nothing but strings, keys and container
    shapes, on which orjson and the stdlib agree (numbers may differ; a
    stratification label reads them with the stdlib, see :func:`_field_label`).
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
    record = _parse_line(line)
    return record, single_turn_fields(record)


_scan_json = make_scanner(json.JSONDecoder())


def _parse_line(line: bytes) -> dict[str, Any]:
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


# Files at least this large (uncompressed JSONL) are converted by several processes.
PARALLEL_MIN_BYTES = 64 << 20
MAX_WORKERS = 4


def _worker_count(source: Path, info: SourceInfo) -> int:
    """How many processes convert ``source``: one per CPU for large plain JSONL files, else one.

    Workers are forked, so they share this process's string-hash secret and
    their hashes agree; where fork is unavailable the work stays in one process.
    """
    if info.container != CONTAINER_JSONL or info.compressed:
        return 1
    if "fork" not in multiprocessing.get_all_start_methods():
        return 1
    size = source.stat().st_size
    if size < PARALLEL_MIN_BYTES:
        return 1
    return max(1, min(available_cpus(), MAX_WORKERS, size // PARALLEL_MIN_BYTES))


def _first_pass(source: Path, info: SourceInfo, config: CleanConfig, work_dir: Path) -> _FirstPass:
    """Convert every row once: converted lines and early rejections to temporary files, keys to arrays.

    Large plain JSONL files are cut into line-aligned byte ranges converted in
    parallel; the parts are merged in file order, so the result is the same
    as in one process.
    """
    workers = _worker_count(source, info)
    if workers <= 1:
        state = _convert_part(source, info, config, work_dir, 0, None)
    else:
        ranges = line_aligned_ranges(source, workers)
        logger.info("converting in %d processes", len(ranges))
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=len(ranges), mp_context=context) as pool:
            futures = [
                pool.submit(_convert_part, source, info, config, work_dir, index, byte_range)
                for index, byte_range in enumerate(ranges)
            ]
            source_sha256 = file_sha256(source)  # meanwhile, this process hashes the source
            state = _merge_parts([future.result() for future in futures])
        state.source_sha256 = source_sha256
    logger.info(
        "first pass: %d rows, %d blank lines, %d converted", state.counter.rows, state.counter.blank_lines,
        len(state.conflict_keys),
    )
    return state


def _convert_part(
    source: Path,
    info: SourceInfo,
    config: CleanConfig,
    work_dir: Path,
    index: int,
    byte_range: tuple[int, int] | None,
) -> _FirstPass:
    """Convert the rows of ``source`` (or of one line-aligned byte range of it); see :func:`_first_pass`."""
    state = _FirstPass(
        converted_paths=[work_dir / f"converted-{index}.jsonl"],
        early_rejects_paths=[work_dir / f"rejected-early-{index}.jsonl"],
    )
    first_line = count_newlines(source, byte_range[0]) + 1 if byte_range else 1
    convert = _row_converter(config, state)
    fates_append = state.fates.append
    lines_append = state.lines.append
    conflict_append = state.conflict_keys.append
    response_append = state.response_keys.append
    group_append = state.group_keys.append
    length_append = state.line_lengths.append
    stream, rows = open_rows(source, info, state.counter, byte_range, first_line)
    try:
        with (
            open(state.converted_paths[0], "wb", buffering=1 << 20) as converted_out,
            open(state.early_rejects_paths[0], "w", encoding="utf-8", newline="\n", buffering=1 << 16) as rejects_out,
        ):
            write_converted = converted_out.write
            for line_number, raw, payload in rows:
                lines_append(line_number)
                try:
                    if payload is None:
                        record, fields = _read_json_line(raw)
                    elif type(payload) is dict:
                        record, fields = payload, single_turn_fields(payload)
                    else:
                        raise payload
                    output_line, conflict_key, response_key, group_key = convert(record, fields, raw)
                except RowRejected as rejection:
                    fates_append(_FATE_OF_REASON[rejection.reason])
                    rejects_out.write(_rejected_line(line_number, rejection.reason, rejection.detail, raw))
                    continue
                fates_append(_FATE_PENDING)
                write_converted(output_line)
                length_append(len(output_line))
                conflict_append(conflict_key)
                response_append(response_key)
                group_append(group_key)
    except DECOMPRESSION_ERRORS as exc:
        raise InputFormatError(
            f"{source} cannot be read to the end ({exc}); the file may be truncated or corrupt"
        ) from exc
    finally:
        stream.close()
    state.converted_rows.append(len(state.conflict_keys))
    return state


def _merge_parts(parts: list[_FirstPass]) -> _FirstPass:
    """One first-pass state from the states of consecutive parts of a file, as one process would build it."""
    merged = _FirstPass()
    for part in parts:
        merged.counter.rows += part.counter.rows
        merged.counter.blank_lines += part.counter.blank_lines
        merged.fates += part.fates
        for name in ("lines", "conflict_keys", "response_keys", "group_keys", "line_lengths"):
            getattr(merged, name).extend(getattr(part, name))
        if part.label_names:
            # Label ids are numbered by first appearance: renumber each part's into the merged numbering.
            renumber = np.empty(len(part.label_names), dtype=np.int16)
            for label, local_id in part.label_names.items():
                renumber[local_id] = merged.label_names.setdefault(label, len(merged.label_names))
            if len(merged.label_names) > MAX_STRATA:
                raise ConfigError(_TOO_MANY_STRATA)
            merged.label_ids.frombytes(renumber[np.frombuffer(part.label_ids, dtype=np.int16)].tobytes())
        for fmt, count in part.format_counts.items():
            merged.format_counts[fmt] = merged.format_counts.get(fmt, 0) + count
        for kind, count in part.pii.counts.items():
            merged.pii.counts[kind] += count
        merged.system_instructions_replaced += part.system_instructions_replaced
        merged.system_variants |= part.system_variants
        merged.converted_paths += part.converted_paths
        merged.converted_rows += part.converted_rows
        merged.early_rejects_paths += part.early_rejects_paths
    return merged


def _has_lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _masked(converted: ConvertedRecord, counts: PiiCounts) -> ConvertedRecord:
    """A copy of ``converted`` with personal data masked in every prompt and response text."""
    if converted.history is None or converted.response_parts is None:
        return ConvertedRecord(
            converted.source_format, converted.system_instruction,
            mask_pii(converted.prompt_key, counts), mask_pii(converted.response, counts),
        )
    history = [
        {**turn, "parts": [{**p, "text": mask_pii(p["text"], counts)} if "text" in p else p for p in turn["parts"]]}
        for turn in converted.history
    ]
    response_parts = [{**p, "text": mask_pii(p["text"], counts)} if "text" in p else p for p in converted.response_parts]
    response = "\n".join(p["text"] for p in response_parts if "text" in p)
    return ConvertedRecord(
        converted.source_format, converted.system_instruction, prompt_key_of(history), response, history,
        response_parts,
    )


def _field_label(record: dict[str, Any], name: str, raw: bytes) -> str:
    """The stratification label of ``record``: its field ``name`` as normalised text, or NO_LABEL."""
    value = record.get(name)
    if type(value) is float:
        # orjson reads integers beyond 64 bits as floats: take the number as the stdlib reads it.
        value = _parse_line(raw).get(name)
    if value is None or isinstance(value, (dict, list)):
        return NO_LABEL
    text = normalize_text(str(value))
    return text or NO_LABEL


def _rejected_line(line: int, reason: RejectReason, detail: str, raw: bytes) -> str:
    text = raw.decode("utf-8", errors="backslashreplace").rstrip("\r\n")
    return json.dumps({"line": line, "reason": reason.value, "detail": detail, "raw": text}) + "\n"


def _decide(state: _FirstPass, config: CleanConfig) -> _Decisions:
    """Decide every converted row: duplicate, conflict, a split, or validation overflow; updates ``state.fates``."""
    count = len(state.conflict_keys)
    if count == 0:
        return _Decisions(np.empty(0, dtype=np.uint8), np.empty(0, dtype=np.int64))
    fates = np.frombuffer(state.fates, dtype=np.uint8).copy()
    rows = np.flatnonzero(fates == _FATE_PENDING)  # row index of each converted row
    duplicates = resolve_duplicates(
        np.frombuffer(state.conflict_keys, dtype=np.int64),
        np.frombuffer(state.response_keys, dtype=np.int64),
        config.conflict_policy,
    )
    fate_of_converted = np.full(count, _FATE_PENDING, dtype=np.uint8)
    fate_of_converted[duplicates.outcome == DUPLICATE] = _FATE_OF_REASON[RejectReason.DUPLICATE]
    fate_of_converted[duplicates.outcome == CONFLICT] = _FATE_OF_REASON[RejectReason.CONFLICTING_RESPONSE]

    kept = np.flatnonzero(duplicates.outcome == KEEP)
    if len(state.system_variants) <= 1:  # kept prompts are unique: every example is its own group
        group_ids = np.arange(len(kept), dtype=np.int64)
    else:
        group_ids = group_ids_by_first_appearance(np.frombuffer(state.group_keys, dtype=np.int64)[kept])
    if state.label_names:
        labels = np.frombuffer(state.label_ids, dtype=np.int16)[kept]
    else:
        labels = np.zeros(len(kept), dtype=np.int16)
    splits = assign_splits(group_ids, labels, config.split_plan())
    del group_ids, labels
    fate_of_converted[kept] = np.where(splits == DROPPED, _FATE_OF_REASON[RejectReason.VALIDATION_OVERFLOW], splits)
    fates[rows] = fate_of_converted
    state.fates = bytearray(fates.tobytes())
    destinations = np.where(fate_of_converted < _LATE, fate_of_converted, _LATE).astype(np.uint8)
    line_of_row = np.frombuffer(state.lines, dtype=np.int64)
    return _Decisions(destinations, line_of_row[rows[duplicates.reference]])


def _lines(paths: list[Path]) -> Iterator[bytes]:
    """The lines of ``paths`` one after the other."""
    for path in paths:
        with open(path, "rb") as stream:
            yield from stream


_ROUTE_CHUNK_BYTES = 16 << 20
_ROUTE_BUFFER_BYTES = 1 << 20  # runs are a few kB: buffered, they cost a system call per MB, not per run


def _route_converted(state: _FirstPass, destinations: np.ndarray, outputs: SplitPaths) -> list[FileRecord]:
    """Copy each converted line to its split file (late rejections are skipped); returns what was written.

    Consecutive lines with the same destination form a run, located from the
    line lengths and copied with one read and one write, so no per-line work
    runs in Python; hashes the split files as it writes them. Deletes each
    temporary file once copied, which spares the disk from writing back data
    nobody will read again.
    """
    if sum(state.converted_rows) != len(destinations) or len(state.line_lengths) != len(destinations):
        raise CleanInvariantError("converted lines and converted rows differ in number")
    lengths = np.frombuffer(state.line_lengths, dtype=np.uint32)
    counts = [0, 0, 0]
    sizes = [0, 0, 0]
    digests = [hashlib.sha256(), hashlib.sha256(), hashlib.sha256()]
    position = 0
    with (
        open(outputs.train, "wb", buffering=_ROUTE_BUFFER_BYTES) as train_out,
        open(outputs.validation, "wb", buffering=_ROUTE_BUFFER_BYTES) as validation_out,
        open(outputs.holdout, "wb", buffering=_ROUTE_BUFFER_BYTES) as holdout_out,
    ):
        writers = (train_out.write, validation_out.write, holdout_out.write)
        for path, rows in zip(state.converted_paths, state.converted_rows):
            file_destinations = destinations[position:position + rows]
            file_lengths = lengths[position:position + rows]
            position += rows
            if int(file_lengths.sum(dtype=np.int64)) != path.stat().st_size:
                raise CleanInvariantError(f"the converted lines of {path.name} do not add up to its size")
            with open(path, "rb", buffering=_ROUTE_BUFFER_BYTES) as stream:
                for split, lines, size in _runs(file_destinations, file_lengths):
                    if split == _LATE:
                        stream.seek(size, os.SEEK_CUR)
                        continue
                    counts[split] += lines
                    sizes[split] += size
                    while size > 0:  # in bounded pieces: a run may be most of the file
                        data = stream.read(min(size, _ROUTE_CHUNK_BYTES))
                        if not data:
                            raise CleanInvariantError(f"{path.name} ended before its last converted line")
                        writers[split](data)
                        digests[split].update(data)
                        size -= len(data)
            path.unlink()
    return [FileRecord(rows=counts[i], bytes=sizes[i], sha256=digests[i].hexdigest()) for i in range(3)]


def _runs(destinations: np.ndarray, lengths: np.ndarray) -> Iterator[tuple[int, int, int]]:
    """``(destination, lines, bytes)`` of each run of consecutive lines with the same destination, in order."""
    if len(destinations) == 0:
        return
    starts = np.flatnonzero(destinations[1:] != destinations[:-1]) + 1
    starts = np.concatenate(([0], starts))
    stops = np.append(starts[1:], len(destinations))
    ends = np.cumsum(lengths, dtype=np.int64)
    run_bytes = np.diff(ends[stops - 1], prepend=0)
    yield from zip(destinations[starts].tolist(), (stops - starts).tolist(), run_bytes.tolist())


def _write_rejected(
    source: Path, info: SourceInfo, state: _FirstPass, decisions: _Decisions, config: CleanConfig, path: Path
) -> int:
    """Write every rejected row to ``path`` in source order; returns the rows written.

    Early rejections are copied from the first pass; late ones (duplicates,
    conflicts, validation overflow) take their raw text from the source, read
    again only when there are any.
    """
    fate_bytes = state.fates
    fates = np.frombuffer(fate_bytes, dtype=np.uint8)
    rejected_rows = np.flatnonzero(fates >= _FATE_REJECT_BASE)
    late_fates = np.array(sorted(_LATE_FATES), dtype=np.uint8)
    late_rows = rejected_rows[np.isin(fates[rejected_rows], late_fates)]
    was_converted = (fates < _FATE_REJECT_BASE) | np.isin(fates, late_fates)
    converted_index_of_row = np.cumsum(was_converted) - 1
    line_of_row = np.frombuffer(state.lines, dtype=np.int64)
    written = 0
    early_rejects = _lines(state.early_rejects_paths)
    late_raws = _raw_rows(source, info, late_rows, line_of_row)
    with open(path, "wb") as rejected_out, contextlib.closing(early_rejects), contextlib.closing(late_raws):
        for row_index in rejected_rows.tolist():
            fate = fate_bytes[row_index]
            if fate not in _LATE_FATES:
                rejected_out.write(next(early_rejects))
            else:
                reason = _REASONS[fate - _FATE_REJECT_BASE]
                reference = int(decisions.reference_lines[converted_index_of_row[row_index]])
                detail = _late_detail(reason, reference, config)
                line = _rejected_line(int(line_of_row[row_index]), reason, detail, next(late_raws))
                rejected_out.write(line.encode("utf-8"))
            written += 1
    return written


def _raw_rows(source: Path, info: SourceInfo, rows: np.ndarray, line_of_row: np.ndarray) -> Iterator[bytes]:
    """The raw bytes of ``rows`` (row indices, increasing) of ``source``, read again; nothing is read for none."""
    if len(rows) == 0:
        return
    if info.container == CONTAINER_JSONL:  # a JSONL row is one line: skip to it without looking at the others
        yield from jsonl_lines_at(source, line_of_row[rows].tolist())
        return
    wanted = iter(rows.tolist())
    next_row = next(wanted)
    stream, source_rows = open_rows(source, info, RowCounter())
    try:
        for row_index, (_, raw, _) in enumerate(source_rows):
            if row_index == next_row:
                yield raw
                next_row = next(wanted, None)
                if next_row is None:
                    return
    finally:
        stream.close()


def _late_detail(reason: RejectReason, reference_line: int, config: CleanConfig) -> str:
    """Plain-language detail of a rejection decided from the whole file."""
    if reason is RejectReason.DUPLICATE:
        return f"exact duplicate (same system instruction, prompt and response) of line {reference_line}"
    if reason is RejectReason.CONFLICTING_RESPONSE:
        if config.conflict_policy == "drop_all":
            return (
                f"the same prompt has a different response on line {reference_line}; conflict_policy "
                "'drop_all' drops every row of a conflicting prompt (use 'keep_first' to keep the first)"
            )
        return f"the same prompt has a different response on line {reference_line}, which is kept (keep_first)"
    return (
        f"the validation split is capped at {config.max_validation_examples} examples and "
        "validation_overflow is 'drop'"
    )


def file_sha256(path: Path) -> str:
    """SHA-256 (lowercase hex) of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _file_record(path: Path, rows: int) -> FileRecord:
    return FileRecord(rows=rows, bytes=os.path.getsize(path), sha256=file_sha256(path))


def dataset_sha256(split_hashes: dict[str, str]) -> str:
    """SHA-256 over the split names and hashes, in train, validation, holdout order."""
    text = "".join(f"{name}:{split_hashes[name]}\n" for name in SPLIT_NAMES)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def _label_distribution(state: _FirstPass, destinations: np.ndarray) -> dict[str, dict[str, int]]:
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


def _build_report(
    source: Path,
    source_uri: str | None,
    info: SourceInfo,
    config: CleanConfig,
    state: _FirstPass,
    decisions: _Decisions,
    outputs: SplitPaths,
    splits: dict[str, FileRecord],
    rejected_written: int,
) -> CleanReport:
    """Check the accounting, hash the outputs and assemble the report. Raises CleanInvariantError."""
    split_counts = {name: record.rows for name, record in splits.items()}
    rows_read = state.counter.rows
    kept = sum(split_counts.values())
    fate_counts = np.bincount(np.frombuffer(state.fates, dtype=np.uint8), minlength=256)
    reason_counts = {reason.value: int(fate_counts[_FATE_OF_REASON[reason]]) for reason in _REASONS}
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
        rejected=_file_record(outputs.rejected, rejected),
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
