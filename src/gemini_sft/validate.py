"""Validate a Gemini tuning file the way Vertex will judge it, before anything costs money.

:func:`validate_dataset` streams a JSONL file (memory flat in the file size)
and checks every rule Vertex applies to supervised-tuning data: one JSON
object per line, a ``contents`` list of ``user``/``model`` turns that alternate,
start with ``user`` and end with ``model``, non-empty ``parts`` holding
non-blank ``text`` or a ``gs://`` ``fileData``, the ``systemInstruction``
shape, the per-example token limit and the file-level limits (file size,
example count, validation-set size).

Every problem becomes a :class:`ValidationIssue` with a stable ``code``, the
1-based line number (``None`` for file-level problems) and a message that says
how to fix it. Warnings never make a file invalid. Messages never quote the
content of an example.

Large files are split into chunks of whole lines checked by worker processes;
results are merged in file order, so reports do not depend on the number of
workers.
"""

from __future__ import annotations

import io
import json
import logging
from collections import Counter, deque
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, Mapping, Protocol, Sequence, runtime_checkable

from gemini_sft.cost import (
    EMPTY_TOKEN_STATS,
    PADDING_TOKENS_PER_EXAMPLE,
    CostEstimate,
    TokenStats,
    estimate_tuning_cost,
    format_usd,
    token_stats_from_histogram,
)
from gemini_sft.errors import ConfigError, InputFormatError, VertexApiError
from gemini_sft.parallel import available_cpus
from gemini_sft.model_catalog import DEFAULT_BASE_MODEL, ModelLimits, limits_for
from gemini_sft.tokens import TOKENS_PER_TURN, estimate_example_tokens, extra_utf8_bytes

log = logging.getLogger(__name__)

TOKEN_SOURCE_API = "count_tokens_api"
TOKEN_SOURCE_ESTIMATE = "offline_estimate"

Split = Literal["training", "validation"]
ProgressCallback = Callable[[int, int], None]
"""Called as ``progress(bytes_done, bytes_total)`` while a file is read."""

# Stable error codes and what each one means (used to title groups in reports).
ERROR_CODES: dict[str, str] = {
    "invalid_utf8": "line is not valid UTF-8",
    "byte_order_mark": "file starts with a byte order mark",
    "compressed_file": "file is compressed, not plain JSONL",
    "blank_line": "blank line",
    "line_too_long": "line too long to be an example",
    "invalid_json": "line is not valid JSON",
    "non_finite_number": "NaN or Infinity in JSON",
    "not_an_object": "line is not a JSON object",
    "missing_contents": "no `contents`",
    "invalid_contents": "`contents` is not a list",
    "empty_contents": "`contents` is empty",
    "invalid_turn": "a turn is not an object",
    "invalid_role": "unknown or missing role",
    "system_role_in_contents": "`system` role inside `contents`",
    "first_turn_not_user": "first turn is not `user`",
    "consecutive_roles": "two turns in a row with the same role",
    "last_turn_not_model": "last turn is not `model`",
    "missing_parts": "turn without a `parts` list",
    "empty_parts": "turn with an empty `parts` list",
    "invalid_part": "part is not a text or fileData object",
    "invalid_text": "`text` is not a string",
    "empty_text": "`text` is empty or blank",
    "invalid_file_data": "`fileData` without mimeType or gs:// fileUri",
    "invalid_system_instruction": "malformed `systemInstruction`",
    "too_many_tokens": "example above the token limit",
    "file_too_large": "file larger than Vertex accepts",
    "too_many_examples": "more examples than Vertex accepts",
    "too_many_validation_examples": "validation set above Vertex's cap",
    "no_examples": "file holds no examples",
}

WARNING_CODES: dict[str, str] = {
    "unknown_key": "key Vertex does not know",
    "missing_system_instruction": "examples without a system instruction",
    "inconsistent_system_instructions": "different system instructions",
    "few_examples": "fewer examples than recommended",
    "near_token_limit": "estimated tokens close to the limit",
    "token_count_api_unavailable": "countTokens API failed; offline estimate used",
    "token_count_api_skipped": "too many examples for countTokens; offline estimate used",
}

TOP_LEVEL_KEYS = frozenset({"contents", "systemInstruction", "tools"})
TURN_KEYS = frozenset({"role", "parts"})
PART_DATA_KEYS = frozenset({"text", "fileData", "functionCall", "functionResponse"})
FILE_DATA_KEYS = frozenset({"mimeType", "fileUri"})
SYSTEM_INSTRUCTION_KEYS = frozenset({"role", "parts"})
UTF8_BOM = b"\xef\xbb\xbf"
COMPRESSED_MAGIC = ((b"\x1f\x8b", "gzip"), (b"PK\x03", "zip"), (b"BZh", "bzip2"), (b"\xfd7z", "xz"))
GCS_PREFIX = "gs://"

# A line longer than this cannot be a valid example (the token limit is far lower);
# it is reported and skipped without being held in memory.
MAX_LINE_BYTES = 32 * 1024 * 1024
DEFAULT_CHUNK_BYTES = 4 * 1024 * 1024
# Files smaller than this are checked in-process: starting workers would cost more than it saves.
PARALLEL_MIN_BYTES = 64 * 1024 * 1024
MAX_AUTO_WORKERS = 4
# Distinct system instructions remembered to detect inconsistency (kept in memory only, never reported).
MAX_TRACKED_SYSTEM_INSTRUCTIONS = 16
NEAR_LIMIT_FRACTION = 0.9
# countTokens takes one request per example; beyond this many, counting would take too long
# (Vertex's default countTokens quota is a few thousand requests per minute).
DEFAULT_MAX_API_EXAMPLES = 20_000


@runtime_checkable
class TokenCounter(Protocol):
    """Counts the tokens of whole examples (input + output, system instruction included).

    ``count_example_tokens`` returns one count per example, in order, and raises
    VertexApiError when counting is not possible (the validator then falls back
    to the offline estimate and says so in its report).
    """

    def count_example_tokens(self, examples: Sequence[Mapping[str, Any]]) -> list[int]: ...


@dataclass(frozen=True)
class ValidationConfig:
    """How to validate a file.

    ``split`` selects the rules of a training or a validation file (the latter is
    capped at the model's validation-set limit). ``price_per_million_tokens_usd``
    None or 0 uses the catalogue price. ``workers`` None chooses automatically
    (several processes only for large files); 1 checks in-process.
    ``chunk_bytes``: how much is read (and checked by one worker) at a time.
    ``max_api_examples``: a token counter is asked about at most this many
    examples (one request each); a larger file uses the offline estimate and
    says so (None: no cap).
    """

    model: str = DEFAULT_BASE_MODEL
    epochs: int = 3
    price_per_million_tokens_usd: float | None = None
    split: Split = "training"
    max_stored_errors: int = 1000
    max_stored_warnings: int = 1000
    min_recommended_examples: int = 100
    padding_tokens_per_example: int = PADDING_TOKENS_PER_EXAMPLE
    workers: int | None = None
    chunk_bytes: int = DEFAULT_CHUNK_BYTES
    max_api_examples: int | None = DEFAULT_MAX_API_EXAMPLES

    def __post_init__(self) -> None:
        if self.split not in ("training", "validation"):
            raise ConfigError(f"split must be 'training' or 'validation', got {self.split!r}.")
        if self.epochs < 1:
            raise ConfigError(f"epochs must be at least 1, got {self.epochs}.")
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"workers must be at least 1, got {self.workers}.")
        if self.chunk_bytes < 1024:
            raise ConfigError(f"chunk_bytes must be at least 1024, got {self.chunk_bytes}.")
        limits_for(self.model)  # raises ConfigError for a model that cannot be tuned


@dataclass(frozen=True)
class ValidationIssue:
    """One error or warning: stable code, 1-based line (None for the whole file), how to fix it."""

    line: int | None
    code: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"line": self.line, "code": self.code, "message": self.message}


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
            ("Size", _human_bytes(self.file_bytes)),
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

    def to_markdown(self, max_issues_per_code: int = 5) -> str:
        """A Markdown report: summary table, errors and warnings grouped by code with line numbers."""
        out = [f"# Validation of `{Path(self.path).name}` ({self.split})", ""]
        out.append("| | |")
        out.append("|---|---|")
        for label, value in self.summary_rows():
            out.append(f"| {label} | {value.replace('|', '&#124;')} |")
        out.append("")
        for title, issues, counts, meanings in (
            ("Errors", self.errors, self.error_counts, ERROR_CODES),
            ("Warnings", self.warnings, self.warning_counts, WARNING_CODES),
        ):
            if not counts:
                continue
            out.append(f"## {title}")
            out.append("")
            for code, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
                out.append(f"### `{code}`: {meanings.get(code, code)} ({count:,})")
                out.append("")
                shown = [issue for issue in issues if issue.code == code][:max_issues_per_code]
                for issue in shown:
                    where = f"line {issue.line}" if issue.line is not None else "file"
                    out.append(f"- {where}: {issue.message}")
                if count > len(shown):
                    out.append(f"- ... and {count - len(shown):,} more")
                out.append("")
        if self.token_source == TOKEN_SOURCE_ESTIMATE:
            out.append(
                "_Token figures are offline estimates (about 4 characters of ASCII text, or 4 bytes of "
                "other UTF-8 text, per token); Vertex's count may differ._"
            )
        return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------
# Checking lines (runs in worker processes for large files: module-level, picklable state only)


@dataclass(frozen=True)
class _ChunkParams:
    max_tokens_per_example: int
    max_stored_issues: int
    collect_for_api: bool


@dataclass
class _ChunkResult:
    """What checking a run of lines found; merged in file order by the driver."""

    lines: int = 0
    examples: int = 0
    errors: list[tuple[int | None, str, str]] = field(default_factory=list)
    error_counts: Counter[str] = field(default_factory=Counter)
    warnings: list[tuple[int | None, str, str]] = field(default_factory=list)
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


def _extra_bytes_of_texts(instruction_text: str | None, contents: list) -> int:
    """Extra UTF-8 bytes of the texts of an example in the common shape (see the fast path)."""
    extra = extra_utf8_bytes(instruction_text) if instruction_text else 0
    for turn in contents:
        for part in turn["parts"]:
            extra += extra_utf8_bytes(part["text"])
    return extra


class _ApiCapReached(Exception):
    """More examples than ``ValidationConfig.max_api_examples``: the offline estimate is used instead."""


class _NotCommonShape(Exception):
    """Raised inside the fast path when a line needs the complete checks."""


class _NonFiniteNumber(ValueError):
    """JSON holds NaN, Infinity or -Infinity, which Python accepts but JSON (and Vertex) does not."""


def _reject_constant(name: str) -> Any:
    raise _NonFiniteNumber(name)


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
_SCAN_ONCE = _DECODER.scan_once
_JSON_WHITESPACE = " \t\r\n"


def _short(value: Any, limit: int = 40) -> str:
    """A short, printable rendering of a schema value (a role or key name) for a message."""
    text = repr(value) if isinstance(value, str) else json.dumps(value, ensure_ascii=True, default=str)
    text = text.encode("ascii", "backslashreplace").decode("ascii")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number"}.get(type(value), type(value).__name__)


class _LineChecker:
    """Checks one chunk of lines; slow paths (problems) are methods, the common valid shape is inlined."""

    def __init__(self, params: _ChunkParams) -> None:
        self.params = params
        self.result = _ChunkResult()
        self.error_total = 0
        self.token_counts: list[int] = []

    # -- recording ---------------------------------------------------------------------------
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

    # -- decoding ----------------------------------------------------------------------------
    def decode_failure(self, line_no: int, exc: Exception) -> None:
        """Report why a line could not be turned into a JSON value."""
        if isinstance(exc, UnicodeDecodeError):
            self.error(
                line_no,
                "invalid_utf8",
                f"Byte {exc.start + 1} of the line is not valid UTF-8. Save the file as UTF-8 "
                "(for example re-export it, or convert it with `iconv -t UTF-8`).",
            )
        elif isinstance(exc, _NonFiniteNumber):
            self.error(
                line_no,
                "non_finite_number",
                f"The line contains {exc.args[0]}, which JSON does not allow. Replace it with a number, "
                "null or a string.",
            )
        elif isinstance(exc, RecursionError):
            self.error(line_no, "invalid_json", "The JSON is nested too deeply to read. Write one flat example per line.")
        else:
            detail = f"{exc.msg} at column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else str(exc)
            self.error(
                line_no,
                "invalid_json",
                f"The line is not valid JSON ({detail}). Each line must be one complete JSON object; "
                "check quoting and escaping, and that no object spans several lines.",
            )

    def parse(self, line_no: int, raw: bytes) -> Any:
        """The JSON value of a line, or the sentinel ``_FAILED`` after reporting why not."""
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            self.decode_failure(line_no, exc)
            return _FAILED
        try:
            # scan_once is the C scanner behind json.loads; calling it directly skips two regex
            # passes per line. Anything unusual falls back to the full decoder for its message.
            value, end = _SCAN_ONCE(text, 0)
            if end != len(text) and text[end:].strip(_JSON_WHITESPACE):
                _DECODER.decode(text)  # raises "Extra data" with its position
            return value
        except StopIteration:
            pass
        except (ValueError, RecursionError) as exc:
            self.decode_failure(line_no, exc)
            return _FAILED
        if not text.strip(_JSON_WHITESPACE):
            self.error(line_no, "blank_line", "The line is blank. Remove blank lines: every line must hold one example.")
            return _FAILED
        try:
            return _DECODER.decode(text)
        except (ValueError, RecursionError) as exc:
            self.decode_failure(line_no, exc)
            return _FAILED

    # -- examples ----------------------------------------------------------------------------
    def check_lines(self, data: bytes, first_line: int) -> _ChunkResult:
        """Check every line of ``data`` (each ending with b"\\n", the first numbered ``first_line``).

        The common valid shape (text-only turns alternating user/model, an optional
        one-part text system instruction) is recognised inline; anything else goes
        through :meth:`check_example`, which applies every rule.
        """
        result = self.result
        max_tokens = self.params.max_tokens_per_example
        near_limit = int(max_tokens * NEAR_LIMIT_FRACTION)
        collect = self.params.collect_for_api
        token_counts = self.token_counts
        system_instructions = result.system_instructions
        scan_once = _SCAN_ONCE
        whitespace = _JSON_WHITESPACE
        line_no = first_line - 1
        blank_lines = 0
        missing_instruction = 0
        last_instruction = None
        # BytesIO splits at b"\n" with memchr, much faster than bytes.split
        for line_no, raw in enumerate(io.BytesIO(data), first_line):
            # decode + scan as json.loads does, without its two regex passes per line
            try:
                text = raw.decode("utf-8")
                example, end = scan_once(text, 0)
                # every line ends with "\n"; anything else after the value must be whitespace
                if end != len(text) - 1 and text[end:].strip(whitespace):
                    raise ValueError
            except (ValueError, StopIteration, RecursionError):
                example = self.parse(line_no, raw)
                if example is _FAILED:
                    if not raw.strip(b" \t\r\n"):
                        blank_lines += 1  # reported as blank_line; not an example
                    continue
            # Fast path: accept the common valid shape, computing the token estimate on the way
            # (== tokens.estimate_example_tokens; the tests hold them equal). Subscripting and str
            # methods double as type checks (a list has no ["role"], only a str has .isspace(),
            # iterating a non-list fails or yields non-dicts); whatever does not fit raises and gets
            # the complete checks instead.
            try:
                contents = example["contents"]
                if not contents or type(contents) is not list:
                    raise _NotCommonShape
                chars = 0
                instruction_text = None
                if len(example) != 1:
                    instruction = example["systemInstruction"]
                    if len(example) != 2 or len(instruction) != 1:
                        raise _NotCommonShape
                    (si_part,) = instruction["parts"]
                    instruction_text = si_part["text"]
                    if len(si_part) != 1 or not instruction_text or instruction_text.isspace():
                        raise _NotCommonShape
                    chars = len(instruction_text)
                    turns = len(contents) + 1
                else:
                    turns = len(contents)
                if turns & 1 != (instruction_text is not None):
                    raise _NotCommonShape  # an odd number of turns cannot alternate from user to model
                user_turn = True
                for turn in contents:
                    parts = turn["parts"]
                    if len(turn) != 2 or turn["role"] != ("user" if user_turn else "model") or not parts:
                        raise _NotCommonShape
                    for part in parts:
                        part_text = part["text"]
                        if len(part) != 1 or not part_text or part_text.isspace():
                            raise _NotCommonShape
                        chars += len(part_text)
                    user_turn = not user_turn
                # The extra UTF-8 bytes of the texts: all non-ASCII of a line in this shape is in its
                # texts, so unless \u escapes hide some, they are the line's own extra bytes, known in
                # O(1). Backslashes are found with memchr; after a few, the texts are counted instead.
                extra = len(raw) - len(text)
                backslash = raw.find(b"\\")
                escapes = 0
                while backslash >= 0:
                    escapes += 1
                    if raw[backslash + 1] == 117 or escapes > 8:  # 117: "u"
                        extra = _extra_bytes_of_texts(instruction_text, contents)
                        break
                    backslash = raw.find(b"\\", backslash + 2)
                tokens = TOKENS_PER_TURN * turns + ((chars + extra + 3) >> 2)
            except (_NotCommonShape, KeyError, TypeError, AttributeError, ValueError, IndexError):
                self.check_example(line_no, example)
                continue
            token_counts.append(tokens)
            if instruction_text is None:
                missing_instruction += 1
                if result.first_missing_system_instruction_line is None:
                    result.first_missing_system_instruction_line = line_no
            elif instruction_text != last_instruction:  # usually the same as the line before: no hashing
                if instruction_text not in system_instructions:
                    self.track_system_instruction(instruction_text, line_no)
                last_instruction = instruction_text
            if collect:
                result.for_api.append((line_no, example, tokens))
            elif tokens > near_limit:
                self.check_token_limit(line_no, tokens)
        lines = line_no - first_line + 1 if data else 0
        result.lines += lines
        result.examples += lines - blank_lines
        result.missing_system_instruction += missing_instruction
        result.token_histogram.update(token_counts)
        token_counts.clear()
        return result

    def track_system_instruction(self, text: str, line_no: int) -> None:
        """Remember a system instruction not seen before (a bounded number of them)."""
        if len(self.result.system_instructions) < MAX_TRACKED_SYSTEM_INSTRUCTIONS:
            self.result.system_instructions[text] = line_no
        else:
            self.result.more_system_instructions = True

    def check_token_limit(self, line_no: int, tokens: int) -> None:
        """Error above the per-example limit; remember examples close to it (the estimate may be off)."""
        max_tokens = self.params.max_tokens_per_example
        if tokens > max_tokens:
            self.error(
                line_no,
                "too_many_tokens",
                f"The example has about {tokens:,} tokens (offline estimate), above the limit of "
                f"{max_tokens:,} per example. Shorten it or split the conversation into several examples.",
            )
        elif tokens > int(max_tokens * NEAR_LIMIT_FRACTION):
            self.result.near_limit_count += 1
            if self.result.first_near_limit_line is None:
                self.result.first_near_limit_line = line_no

    def check_example(self, line_no: int, example: Any) -> None:
        """Apply every rule to one parsed line and record what it finds (the slow, complete path)."""
        result = self.result
        if type(example) is not dict:
            self.error(
                line_no,
                "not_an_object",
                f"The line is {_type_name(example)}, not a JSON object. Write each example as "
                '{"contents": [...]} on its own line.',
            )
            return
        errors_before = self.error_total
        for key in example:
            if key not in TOP_LEVEL_KEYS:
                self.warning(
                    line_no,
                    "unknown_key",
                    f"Key {_short(key)} is not part of Vertex's tuning format (contents, systemInstruction, tools) "
                    "and will be ignored or rejected; remove or rename it.",
                )
        # ---- system instruction
        if "systemInstruction" not in example:
            result.missing_system_instruction += 1
            if result.first_missing_system_instruction_line is None:
                result.first_missing_system_instruction_line = line_no
        else:
            instruction_text = self.check_system_instruction(line_no, example["systemInstruction"])
            if instruction_text is not None and instruction_text not in result.system_instructions:
                self.track_system_instruction(instruction_text, line_no)
        # ---- contents
        contents = example.get("contents")
        if type(contents) is not list:
            if "contents" not in example:
                self.error(
                    line_no,
                    "missing_contents",
                    'The example has no "contents". Add "contents": a list of user/model turns, e.g. '
                    '[{"role": "user", "parts": [{"text": "..."}]}, {"role": "model", "parts": [{"text": "..."}]}].',
                )
            else:
                self.error(
                    line_no,
                    "invalid_contents",
                    f'"contents" is {_type_name(contents)}; it must be a list of turns '
                    '({"role": ..., "parts": [...]}).',
                )
        elif not contents:
            self.error(
                line_no, "empty_contents", '"contents" is empty. Add at least one user turn followed by a model turn.'
            )
        else:
            self.check_contents(line_no, contents)
        tokens = estimate_example_tokens(example)
        self.token_counts.append(tokens)
        if self.params.collect_for_api:
            if self.error_total == errors_before:
                result.for_api.append((line_no, example, tokens))
        else:
            self.check_token_limit(line_no, tokens)

    def check_contents(self, line_no: int, contents: list) -> None:
        """Rules on the turns of a non-empty ``contents`` list."""
        previous_role: Any = None
        has_file_data = False
        for index, turn in enumerate(contents):
            if type(turn) is not dict:
                self.error(
                    line_no,
                    "invalid_turn",
                    f"contents[{index}] is {_type_name(turn)}; each turn must be an object "
                    '{"role": "user" or "model", "parts": [...]}.',
                )
                previous_role = None
                continue
            role = turn.get("role")
            parts = turn.get("parts")
            self.check_turn_keys(line_no, index, turn)
            if role != "user" and role != "model":
                self.bad_role(line_no, index, role)
            elif index == 0 and role != "user":
                self.error(
                    line_no,
                    "first_turn_not_user",
                    "The first turn (contents[0]) has role 'model'. Start every example with a 'user' turn.",
                )
            elif role == previous_role:
                self.error(
                    line_no,
                    "consecutive_roles",
                    f"contents[{index - 1}] and contents[{index}] both have role {role!r}. "
                    "Turns must alternate user/model: merge the two turns or add the missing one between them.",
                )
            previous_role = role
            if type(parts) is not list:
                self.bad_parts(line_no, index, parts, turn)
                continue
            if not parts:
                self.error(
                    line_no,
                    "empty_parts",
                    f'contents[{index}].parts is empty. Give the turn at least one part {{"text": "..."}}.',
                )
                continue
            for part_index, part in enumerate(parts):
                has_file_data = self.check_part(line_no, index, part_index, part) or has_file_data
        last = contents[-1]
        if type(last) is dict and last.get("role") == "user":
            self.error(
                line_no,
                "last_turn_not_model",
                f"The last turn (contents[{len(contents) - 1}]) is a 'user' turn. End every example with "
                "the model's answer: Vertex trains on model turns.",
            )
        if has_file_data:
            self.result.multimodal_examples += 1

    # -- slow paths --------------------------------------------------------------------------
    def check_turn_keys(self, line_no: int, index: int, turn: dict) -> None:
        for key in turn:
            if key not in TURN_KEYS:
                self.warning(
                    line_no,
                    "unknown_key",
                    f"contents[{index}] has key {_short(key)}; a turn only has 'role' and 'parts'. Remove or rename it.",
                )

    def bad_role(self, line_no: int, index: int, role: Any) -> None:
        if role == "system":
            self.error(
                line_no,
                "system_role_in_contents",
                f"contents[{index}] has role 'system'. Move its text to the top-level "
                '"systemInstruction": {"parts": [{"text": "..."}]} and remove the turn.',
            )
        elif role is None:
            self.error(
                line_no, "invalid_role", f"contents[{index}] has no role. Set \"role\" to 'user' or 'model'."
            )
        else:
            hint = " (use 'model' for the assistant's answers)" if role in ("assistant", "bot", "ai") else ""
            self.error(
                line_no,
                "invalid_role",
                f"contents[{index}] has role {_short(role)}; roles must be 'user' or 'model'{hint}.",
            )

    def bad_parts(self, line_no: int, index: int, parts: Any, turn: dict) -> None:
        if parts is None:
            hint = ' (found "content"/"text": wrap it as "parts": [{"text": ...}])' if (
                "content" in turn or "text" in turn
            ) else ""
            self.error(
                line_no,
                "missing_parts",
                f'contents[{index}] has no "parts" list{hint}. Give each turn "parts": [{{"text": "..."}}].',
            )
        else:
            self.error(
                line_no,
                "missing_parts",
                f'contents[{index}].parts is {_type_name(parts)}; it must be a list such as [{{"text": "..."}}].',
            )

    def check_part(self, line_no: int, index: int, part_index: int, part: Any) -> bool:
        """Full checks of one part; returns whether it is a (multimodal) fileData part."""
        where = f"contents[{index}].parts[{part_index}]"
        if type(part) is not dict:
            self.error(
                line_no,
                "invalid_part",
                f'{where} is {_type_name(part)}; a part must be an object such as {{"text": "..."}}.',
            )
            return False
        if "inlineData" in part:
            self.error(
                line_no,
                "invalid_part",
                f"{where} uses inlineData, which tuning does not accept. Upload the file to Cloud Storage "
                'and reference it with "fileData": {"mimeType": ..., "fileUri": "gs://..."}.',
            )
            return False
        for key in part:
            if key not in PART_DATA_KEYS:
                self.warning(
                    line_no,
                    "unknown_key",
                    f"{where} has key {_short(key)}; a part holds 'text' or 'fileData'. Remove or rename it.",
                )
        data_keys = [key for key in part if key in PART_DATA_KEYS]
        if len(data_keys) != 1:
            what = "none" if not data_keys else " and ".join(data_keys)
            self.error(
                line_no,
                "invalid_part",
                f'{where} must hold exactly one of "text" or "fileData" (found {what}). '
                "Split it into separate parts or fill it in.",
            )
            return False
        if "text" in part:
            text = part["text"]
            if type(text) is not str:
                self.error(
                    line_no,
                    "invalid_text",
                    f"{where}.text is {_type_name(text)}; it must be a string. Quote the value.",
                )
            elif not text or text.isspace():
                self.error(
                    line_no,
                    "empty_text",
                    f"{where}.text is empty or blank. Fill it in, or remove the part (and the example if nothing "
                    "remains).",
                )
            return False
        if "fileData" in part:
            self.check_file_data(line_no, where, part["fileData"])
            return True
        return False  # functionCall / functionResponse: accepted as is (function-calling tuning)

    def check_file_data(self, line_no: int, where: str, file_data: Any) -> None:
        if type(file_data) is not dict:
            self.error(
                line_no,
                "invalid_file_data",
                f'{where}.fileData is {_type_name(file_data)}; write {{"mimeType": "image/png", "fileUri": "gs://bucket/file"}}.',
            )
            return
        problems = []
        mime_type = file_data.get("mimeType")
        if type(mime_type) is not str or "/" not in mime_type:
            problems.append("a mimeType such as 'image/jpeg'")
        uri = file_data.get("fileUri")
        if type(uri) is not str or not uri.startswith(GCS_PREFIX) or len(uri) <= len(GCS_PREFIX):
            problems.append("a fileUri in Cloud Storage starting with 'gs://'")
        if problems:
            self.error(
                line_no,
                "invalid_file_data",
                f"{where}.fileData needs {' and '.join(problems)}. Upload the file to Cloud Storage and reference it there.",
            )
        for key in file_data:
            if key not in FILE_DATA_KEYS:
                self.warning(
                    line_no,
                    "unknown_key",
                    f"{where}.fileData has key {_short(key)}; it only has 'mimeType' and 'fileUri'.",
                )

    def check_system_instruction(self, line_no: int, instruction: Any) -> str | None:
        """Full checks of a systemInstruction; returns its text when it is valid."""
        fix = 'Write "systemInstruction": {"parts": [{"text": "..."}]}.'
        if type(instruction) is not dict:
            if instruction is None:
                fix = 'Remove the key or write "systemInstruction": {"parts": [{"text": "..."}]}.'
            elif type(instruction) is str:
                fix = 'Wrap the string: "systemInstruction": {"parts": [{"text": "..."}]}.'
            self.error(
                line_no,
                "invalid_system_instruction",
                f"systemInstruction is {_type_name(instruction)}, not an object. {fix}",
            )
            return None
        for key in instruction:
            if key not in SYSTEM_INSTRUCTION_KEYS:
                self.warning(
                    line_no,
                    "unknown_key",
                    f"systemInstruction has key {_short(key)}; it only has 'parts' (and an ignored 'role').",
                )
        parts = instruction.get("parts")
        if type(parts) is not list or not parts:
            self.error(
                line_no,
                "invalid_system_instruction",
                f"systemInstruction.parts is {'empty' if parts == [] else _type_name(parts)}; "
                f"it must be a non-empty list of text parts. {fix}",
            )
            return None
        texts: list[str] = []
        for part_index, part in enumerate(parts):
            text = part.get("text") if type(part) is dict else None
            if type(text) is not str or not text or text.isspace() or len(part) != 1:
                self.error(
                    line_no,
                    "invalid_system_instruction",
                    f"systemInstruction.parts[{part_index}] must be {{\"text\": \"...\"}} with non-blank text "
                    "(a system instruction holds text only).",
                )
            else:
                texts.append(text)
        return "\n".join(texts) if len(texts) == len(parts) else None


_FAILED = object()


def _check_chunk(data: bytes, first_line: int, params: _ChunkParams) -> _ChunkResult:
    """Check one chunk of whole lines in this process."""
    return _LineChecker(params).check_lines(data, first_line)


# --------------------------------------------------------------------------------------------
# Reading the file


@dataclass(frozen=True)
class _Chunk:
    """A run of whole lines, each ending with a newline: bytes ``[offset, offset + length)`` of the file.

    ``data`` holds the bytes when the reader keeps them (a final line without a
    newline gets one). Line numbers are not known here: results are numbered
    from 1 and shifted when merged in file order.
    """

    data: bytes | None
    bytes_done: int
    offset: int
    length: int


@dataclass(frozen=True)
class _LongLine:
    """A line longer than MAX_LINE_BYTES, skipped unread; it is the line after everything merged before it."""

    bytes_done: int


def _read_chunks(handle: Any, chunk_bytes: int, max_line_bytes: int, skip: int = 0) -> Iterator[_Chunk | _LongLine]:
    """Split a binary stream into chunks of whole lines.

    Lines longer than ``max_line_bytes`` are yielded as :class:`_LongLine` and
    skipped without being kept in memory.
    """
    position = skip  # file offset of the next byte to read
    rest = b""
    rest_start = skip
    skipping = False
    while True:
        block = handle.read(chunk_bytes)
        if not block:
            break
        block_start = position
        position += len(block)
        if skipping:
            newline = block.find(b"\n")
            if newline < 0:
                continue
            block = block[newline + 1 :]
            block_start += newline + 1
            skipping = False
        if rest:
            buffer, buffer_start = rest + block, rest_start
        else:
            buffer, buffer_start = block, block_start
        cut = buffer.rfind(b"\n")
        if cut < 0:
            if len(buffer) > max_line_bytes:
                yield _LongLine(position)
                skipping = True
                rest = b""
            else:
                rest, rest_start = buffer, buffer_start
            continue
        yield _Chunk(buffer[: cut + 1], position, buffer_start, cut + 1)
        rest, rest_start = buffer[cut + 1 :], buffer_start + cut + 1
    if rest and not skipping:
        yield _Chunk(rest + b"\n", position, rest_start, len(rest))


def _chunk_offsets(handle: Any, chunk_bytes: int, max_line_bytes: int, skip: int = 0) -> Iterator[_Chunk | _LongLine]:
    """Like :func:`_read_chunks` without keeping or copying any bytes: offsets only."""
    position = skip  # file offset of the next byte to read
    chunk_start = skip  # file offset of the first line not yet yielded
    pending = 0  # bytes since the last newline
    skipping = False
    while True:
        block = handle.read(chunk_bytes)
        if not block:
            break
        block_start = position
        position += len(block)
        if skipping:
            newline = block.find(b"\n")
            if newline < 0:
                continue
            block = block[newline + 1 :]
            block_start += newline + 1
            chunk_start = block_start
            pending = 0
            skipping = False
        cut = block.rfind(b"\n")
        if cut < 0:
            pending += len(block)
            if pending > max_line_bytes:
                yield _LongLine(position)
                skipping = True
            continue
        end = block_start + cut + 1
        yield _Chunk(None, position, chunk_start, end - chunk_start)
        chunk_start = end
        pending = len(block) - cut - 1
    if chunk_start < position and not skipping:
        yield _Chunk(None, position, chunk_start, position - chunk_start)


def _check_file_range(path: str, offset: int, length: int, params: _ChunkParams) -> _ChunkResult:
    """Worker entry point: read bytes ``[offset, offset + length)`` of the file and check its lines (from line 1)."""
    with open(path, "rb") as handle:
        handle.seek(offset)
        data = handle.read(length)
    if not data.endswith(b"\n"):
        data += b"\n"
    return _LineChecker(params).check_lines(data, 1)


def _worker_count(config: ValidationConfig, file_bytes: int, sequential: bool) -> int:
    import multiprocessing

    if sequential or multiprocessing.current_process().daemon:  # daemon processes may not start workers
        return 1
    if config.workers is not None:
        return config.workers
    if file_bytes < PARALLEL_MIN_BYTES:
        return 1
    return max(1, min(available_cpus(), MAX_AUTO_WORKERS))


class _Merger:
    """Accumulates chunk results in file order into the figures of a report."""

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

    def add(
        self, chunk: _ChunkResult, extra_errors: Sequence[tuple[int | None, str, str]] = (), line_offset: int = 0
    ) -> None:
        """Merge the next chunk; its line numbers are shifted by ``line_offset`` (worker chunks count from 1)."""

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


def _count_with_api(
    chunk: _ChunkResult, counter: TokenCounter, merger: _Merger, max_tokens: int
) -> list[tuple[int | None, str, str]]:
    """Replace the chunk's estimates of valid examples by API counts; returns too_many_tokens errors."""
    if not chunk.for_api:
        return []
    counts = counter.count_example_tokens([example for _, example, _ in chunk.for_api])
    if len(counts) != len(chunk.for_api):
        raise VertexApiError(f"countTokens returned {len(counts)} counts for {len(chunk.for_api)} examples.")
    errors: list[tuple[int | None, str, str]] = []
    for (line, _, estimate), count in zip(chunk.for_api, counts):
        merger.api_histogram[count] += 1
        merger.api_estimate_histogram[estimate] += 1
        merger.api_counted += 1
        merger.api_total += count
        merger.api_estimated_total += estimate
        if count > max_tokens:
            errors.append(
                (
                    line,
                    "too_many_tokens",
                    f"The example has {count:,} tokens (countTokens API), above the limit of {max_tokens:,} per "
                    "example. Shorten it or split the conversation into several examples.",
                )
            )
    return errors


def validate_dataset(
    path: Path,
    config: ValidationConfig,
    token_counter: TokenCounter | None = None,
    progress: ProgressCallback | None = None,
) -> ValidationReport:
    """Check a Gemini tuning file against Vertex's rules; never raises on bad content.

    Inputs: the file, a config (model, split, epochs, price), an optional
    ``token_counter`` (the countTokens API; on failure the offline estimate is
    used and the report says so) and an optional ``progress(bytes_done,
    bytes_total)`` callback. Output: a :class:`ValidationReport`. Raises
    InputFormatError only when the file cannot be opened (missing, a directory,
    unreadable).
    """
    path = Path(path)
    limits = limits_for(config.model)
    try:
        file_bytes = path.stat().st_size
        handle = path.open("rb")
    except OSError as exc:
        raise InputFormatError(f"Cannot read {path}: {exc.strerror or exc}. Check the path and permissions.") from exc
    if path.is_dir():  # pragma: no cover - open() already fails on Linux
        handle.close()
        raise InputFormatError(f"{path} is a directory; give the path of a JSONL file.")

    use_api = token_counter is not None
    workers = _worker_count(config, file_bytes, sequential=use_api)
    merger = _Merger(config)
    params = _ChunkParams(
        max_tokens_per_example=limits.max_tokens_per_example,
        max_stored_issues=max(config.max_stored_errors, config.max_stored_warnings),
        collect_for_api=use_api,
    )
    log.info("Validating %s (%s, %d bytes, %d worker(s))", path.name, config.split, file_bytes, workers)
    with handle:
        head = handle.read(len(UTF8_BOM))
        skip = 0
        compression = next((name for magic, name in COMPRESSED_MAGIC if head.startswith(magic)), None)
        if compression is not None:
            merger.error(
                None,
                "compressed_file",
                f"The file is {compression}-compressed; Vertex reads plain JSONL. Decompress it, or run "
                "`gemini-sft clean`, which reads compressed input and writes plain JSONL.",
            )
            return _finish_report(path, config, limits, file_bytes, merger, use_api)
        if head == UTF8_BOM:
            skip = len(UTF8_BOM)
            merger.error(
                1,
                "byte_order_mark",
                "The file starts with a UTF-8 byte order mark (BOM). Save it as UTF-8 without BOM "
                "(the rest of line 1 was still checked).",
            )
        handle.seek(skip)
        if workers > 1:
            bom_errors = list(merger.errors)
            try:
                chunks = _chunk_offsets(handle, config.chunk_bytes, MAX_LINE_BYTES, skip)
                _validate_parallel(path, chunks, workers, merger, params, limits, file_bytes, progress)
                return _finish_report(path, config, limits, file_bytes, merger, use_api)
            except (BrokenProcessPool, OSError) as exc:  # a worker was killed, or no processes can start
                log.warning("worker processes failed (%s); validating in this process instead", type(exc).__name__)
                merger = _Merger(config)
                for issue in bom_errors:
                    merger.error(issue.line, issue.code, issue.message)
                handle.seek(skip)
        for item in _read_chunks(handle, config.chunk_bytes, MAX_LINE_BYTES, skip):
            _merge_item(item, None, merger, params, token_counter, limits)
            if progress is not None:
                progress(item.bytes_done, file_bytes)
    return _finish_report(path, config, limits, file_bytes, merger, use_api)


def _merge_item(
    item: _Chunk | _LongLine,
    result: _ChunkResult | None,
    merger: _Merger,
    params: _ChunkParams,
    token_counter: TokenCounter | None,
    limits: ModelLimits,
) -> None:
    if isinstance(item, _LongLine):
        merger.examples += 1
        merger.lines += 1
        merger.error(
            merger.lines,
            "line_too_long",
            f"The line is longer than {MAX_LINE_BYTES // (1024 * 1024)} MiB, far above the token limit of "
            f"{limits.max_tokens_per_example:,} per example. Split it or check that lines end with a newline.",
        )
        return
    line_offset = merger.lines  # a worker's result is numbered from 1
    if result is None:
        use_api = token_counter is not None and merger.api_ok
        chunk_params = replace(params, collect_for_api=use_api)
        data = item.data if item.data is not None else b""
        result = _check_chunk(data, merger.lines + 1, chunk_params)
        line_offset = 0
    extra: list[tuple[int | None, str, str]] = []
    if result.for_api and token_counter is not None:
        cap = merger.config.max_api_examples
        try:
            if cap is not None and merger.api_counted + len(result.for_api) > cap:
                raise _ApiCapReached(cap)
            extra = _count_with_api(result, token_counter, merger, limits.max_tokens_per_example)
        except _ApiCapReached:
            merger.api_ok = False
            calibration = ""
            if merger.api_counted and merger.api_estimated_total:
                ratio = merger.api_total / merger.api_estimated_total
                calibration = (
                    f" On the {merger.api_counted:,} examples counted before, the API counted "
                    f"{ratio:.2f}x the offline estimate."
                )
            log.info("more than %d examples: using the offline token estimate instead of countTokens", cap)
            merger.warning(
                None,
                "token_count_api_skipped",
                f"The file has more than {cap:,} examples, too many to count one by one with the countTokens API; "
                f"token figures and limits use the offline estimate.{calibration}",
            )
            extra = _estimate_limit_errors(result, limits.max_tokens_per_example)
        except VertexApiError as exc:
            log.warning("countTokens failed (%s); using the offline token estimate for the whole file.", exc)
            merger.api_ok = False
            merger.warning(
                None,
                "token_count_api_unavailable",
                f"The countTokens API failed ({exc}); token figures and limits use the offline estimate instead.",
            )
            extra = _estimate_limit_errors(result, limits.max_tokens_per_example)
    merger.add(result, extra, line_offset)


def _estimate_limit_errors(result: _ChunkResult, max_tokens: int) -> list[tuple[int | None, str, str]]:
    return [
        (
            line,
            "too_many_tokens",
            f"The example has about {tokens:,} tokens (offline estimate), above the limit of {max_tokens:,} per "
            "example. Shorten it or split the conversation into several examples.",
        )
        for line, _, tokens in result.for_api
        if tokens > max_tokens
    ]


def _validate_parallel(
    path: Path,
    chunks: Iterator[_Chunk | _LongLine],
    workers: int,
    merger: _Merger,
    params: _ChunkParams,
    limits: ModelLimits,
    file_bytes: int,
    progress: ProgressCallback | None,
) -> None:
    """Check chunks in worker processes, keeping at most two chunks per worker in flight (bounded memory).

    Only offsets travel to the workers, which read their bytes themselves: the
    parent just finds line boundaries and merges results.
    """
    import multiprocessing

    # fork: workers need no re-import of the caller's main module (a script without a __main__
    # guard, a KFP executor) and start in milliseconds; the workers only run this module's pure code.
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    pending: deque[tuple[_Chunk | _LongLine, Future | None]] = deque()

    def merge_oldest() -> None:
        item, future = pending.popleft()
        result = future.result() if future is not None else None
        _merge_item(item, result, merger, params, None, limits)
        if progress is not None:
            progress(item.bytes_done, file_bytes)

    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        for item in chunks:
            future = (
                pool.submit(_check_file_range, str(path), item.offset, item.length, params)
                if isinstance(item, _Chunk)
                else None
            )
            pending.append((item, future))
            if len(pending) >= 2 * workers:
                merge_oldest()
        while pending:
            merge_oldest()


def _finish_report(
    path: Path, config: ValidationConfig, limits: ModelLimits, file_bytes: int, merger: _Merger, used_api: bool
) -> ValidationReport:
    """File-level rules and aggregated warnings, then the report."""
    examples = merger.examples
    if examples == 0 and "compressed_file" not in merger.error_counts:
        merger.error(None, "no_examples", "The file holds no examples. Add one JSON example per line.")
    if file_bytes > limits.max_training_file_bytes:
        merger.error(
            None,
            "file_too_large",
            f"The file is {_human_bytes(file_bytes)}, above Vertex's limit of {_human_bytes(limits.max_training_file_bytes)}. "
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
    else:
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
    if merger.near_limit_count:
        merger.warning(
            merger.first_near_limit_line,
            "near_token_limit",
            f"{merger.near_limit_count:,} example(s) have an estimated token count above "
            f"{NEAR_LIMIT_FRACTION:.0%} of the {limits.max_tokens_per_example:,} limit (the first at this line); "
            "the estimate may be off, so shorten them or check them with the countTokens API.",
        )

    token_source = TOKEN_SOURCE_API if used_api and merger.api_ok else TOKEN_SOURCE_ESTIMATE
    if token_source == TOKEN_SOURCE_API:
        histogram = Counter(merger.estimate_histogram)
        histogram.subtract(merger.api_estimate_histogram)
        histogram.update(merger.api_histogram)
        stats = token_stats_from_histogram(histogram)
    else:
        stats = token_stats_from_histogram(merger.estimate_histogram)
    if stats.examples == 0:
        stats = EMPTY_TOKEN_STATS
    cost = estimate_tuning_cost(
        stats,
        config.epochs,
        config.model,
        config.price_per_million_tokens_usd,
        config.padding_tokens_per_example,
    )
    if config.split == "validation":
        cost = replace(cost, estimated_cost_usd=0.0)
    report = ValidationReport(
        path=str(path),
        split=config.split,
        model=config.model,
        file_bytes=file_bytes,
        lines=merger.lines,
        examples=examples,
        errors=merger.errors,
        warnings=merger.warnings,
        error_counts=dict(merger.error_counts),
        warning_counts=dict(merger.warning_counts),
        token_stats=stats,
        token_source=token_source,
        cost=cost,
        multimodal_examples=merger.multimodal_examples,
    )
    log.info(
        "Validated %s: %d examples, %d errors, %d warnings, %d tokens (%s)",
        path.name,
        examples,
        report.error_count,
        report.warning_count,
        stats.total,
        token_source,
    )
    return report


def _number(value: float) -> str:
    """A figure without a pointless fraction: 28 -> '28', 28.5 -> '28.5'."""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def _human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    return f"{size} B"  # pragma: no cover


def raise_if_invalid(report: ValidationReport, max_listed: int = 10) -> None:
    """Raise DatasetInvalidError naming the first errors when the report is not valid."""
    from gemini_sft.errors import DatasetInvalidError

    if report.valid:
        return
    listed = "; ".join(
        f"{'line ' + str(issue.line) if issue.line is not None else 'file'}: [{issue.code}] {issue.message}"
        for issue in report.errors[:max_listed]
    )
    counts = ", ".join(f"{code}={count}" for code, count in sorted(report.error_counts.items()))
    raise DatasetInvalidError(
        f"{Path(report.path).name} ({report.split}) has {report.error_count:,} error(s) ({counts}). First: {listed}"
    )
