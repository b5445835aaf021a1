"""The clean stage's core: raw rows in, Gemini train / validation / holdout splits out, nothing lost.

:func:`clean_dataset` reads a source file (JSONL in any supported record
format, CSV/TSV, optionally gzip-compressed), normalises every row to a Gemini
example, rejects what cannot be used with a stable reason code, and splits the
rest. Every row read ends in exactly one split file or in the rejected file
(``{"line", "reason", "detail", "raw"}`` per row); the count is checked. Each
kept row's line in the raw file is recorded per split
(:mod:`~gemini_sft.dataset.source_lines`), so what a later stage says of a
split's row can name the raw line.

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

import logging
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from gemini_sft.dataset.decisions import decide
from gemini_sft.dataset.first_pass import first_pass
from gemini_sft.dataset.report import CleanReport, build_report
from gemini_sft.dataset.routing import route_converted, write_rejected
from gemini_sft.dataset.settings import CleanConfig, SplitPaths
from gemini_sft.dataset.source_lines import split_source_lines, write_source_lines
from gemini_sft.dataset.sources import detect_source
from gemini_sft.dataset.splits import SPLIT_NAMES
from gemini_sft.errors import ConfigError, DatasetInvalidError

logger = logging.getLogger(__name__)


def clean_dataset(
    source: Path,
    outputs: SplitPaths,
    config: CleanConfig,
    source_uri: str | None = None,
    source_uri_pattern: str = "",
) -> CleanReport:
    """Clean ``source`` and write the splits and rejected rows to ``outputs``; returns the report.

    Raises :class:`InputFormatError` when the file cannot be read at all
    (missing, corrupt gzip), :class:`ConfigError` when the stratification
    field has too many distinct values, and :class:`CleanInvariantError` if
    the row accounting does not balance (a bug). Bad rows never raise: they
    are rejected with a reason code.

    Args:
        source: the raw data file (JSONL, CSV or TSV, optionally gzip).
        outputs: where the three splits, the rejected rows and (when set) the source lines are written.
        config: the settings of the stage.
        source_uri: recorded in the version record as the source (defaults to the path).
        source_uri_pattern: the raw data URI as configured (with placeholders), recorded for lineage.
    """
    source = Path(source)
    prepare_outputs(source, outputs.files())
    info = detect_source(source)
    logger.info("cleaning %s input (%s)", info.container, "gzip" if info.compressed else "uncompressed")
    # Local scratch space: on Vertex the outputs live on the Cloud Storage mount, which is slow for scratch.
    work_dir = Path(tempfile.mkdtemp(prefix="gemini-sft-clean-"))
    try:
        first = first_pass(source, info, config, work_dir)
        decisions = decide(first, config)
        split_files = dict(zip(SPLIT_NAMES, route_converted(first, decisions.destinations, outputs)))
        rejected_written = write_rejected(source, info, first, decisions, config, outputs.rejected)
    finally:
        for leftover in work_dir.iterdir():
            leftover.unlink()
        work_dir.rmdir()
    if outputs.source_lines is not None:
        lines = split_source_lines(first.fates, first.lines, {name: f.rows for name, f in split_files.items()})
        write_source_lines(outputs.source_lines, source_uri or str(source), info.container, lines, split_files)
    return build_report(
        source, source_uri, info, config, first, decisions, outputs, split_files, rejected_written, source_uri_pattern
    )


def prepare_outputs(source: Path, outputs: Iterable[Path]) -> None:
    """Refuse outputs that would overwrite the input or cannot be written, then make their folders.

    Checked before anything is read or written: an output that is the input
    (the same file by its real path, or a hard link to it) raises
    :class:`ConfigError`, as does an output folder that is a file or cannot
    be created, and an output that is a folder.

    Args:
        source: the input file.
        outputs: every file the caller will write.
    """
    outputs = [Path(path) for path in outputs]
    source_real = os.path.realpath(source)
    for path in outputs:
        if os.path.realpath(path) == source_real or (
            path.exists() and source.exists() and os.path.samefile(path, source)
        ):
            raise ConfigError(
                f"the output {path} is the input file {source}: cleaning would overwrite its own input; "
                "write the outputs to another folder"
            )
    for path in outputs:
        folder = path.parent
        if folder.exists() and not folder.is_dir():
            raise ConfigError(f"the output folder {folder} is a file, not a folder; give a folder path for the outputs")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"the output folder {folder} cannot be created ({exc.strerror or exc}); give a folder you can write to"
            ) from None
        if path.is_dir():
            raise ConfigError(f"the output {path} is a folder; remove it or write the outputs to another folder")


_SPLIT_USES = {
    "train": "tuning needs training examples",
    "validation": "tuning reports validation loss on it",
    "holdout": "the evaluation scores the models on it",
}


def split_size_problems(report: CleanReport, config: CleanConfig) -> list[str]:
    """One sentence per split too small to use: train always, validation and holdout when their fraction is above 0.

    Args:
        report: what :func:`clean_dataset` made.
        config: its settings; ``min_split_examples`` is the threshold (0 turns the check off).
    """
    problems = []
    for name in SPLIT_NAMES:
        fraction = getattr(config, f"{name}_fraction")
        rows = report.split_rows[name]
        if (name == "train" or fraction > 0) and rows < config.min_split_examples:
            problems.append(
                f"the {name} split has {rows} example{'' if rows == 1 else 's'} ({report.kept_rows} kept, "
                f"{name}_fraction={fraction:g}) but needs at least min_split_examples={config.min_split_examples}: "
                f"{_SPLIT_USES[name]}; add examples or change the fractions"
            )
    return problems


def require_usable_splits(report: CleanReport, config: CleanConfig) -> None:
    """Raise :class:`DatasetInvalidError` naming every split too small to use (see :func:`split_size_problems`).

    Args:
        report: what :func:`clean_dataset` made.
        config: its settings.
    """
    problems = split_size_problems(report, config)
    if problems:
        raise DatasetInvalidError("; ".join(problems))
