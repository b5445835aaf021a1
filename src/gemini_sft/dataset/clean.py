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

import logging
import tempfile
from pathlib import Path

from gemini_sft.dataset.decisions import decide
from gemini_sft.dataset.first_pass import first_pass
from gemini_sft.dataset.report import CleanReport, build_report
from gemini_sft.dataset.routing import route_converted, write_rejected
from gemini_sft.dataset.settings import CleanConfig, SplitPaths
from gemini_sft.dataset.sources import detect_source
from gemini_sft.dataset.splits import SPLIT_NAMES

logger = logging.getLogger(__name__)


def clean_dataset(
    source: Path, outputs: SplitPaths, config: CleanConfig, source_uri: str | None = None
) -> CleanReport:
    """Clean ``source`` and write the splits and rejected rows to ``outputs``; returns the report.

    Raises :class:`InputFormatError` when the file cannot be read at all
    (missing, corrupt gzip), :class:`ConfigError` when the stratification
    field has too many distinct values, and :class:`CleanInvariantError` if
    the row accounting does not balance (a bug). Bad rows never raise: they
    are rejected with a reason code.

    Args:
        source: the raw data file (JSONL, CSV or TSV, optionally gzip).
        outputs: where the three splits and the rejected rows are written.
        config: the settings of the stage.
        source_uri: recorded in the version record as the source (defaults to the path).
    """
    source = Path(source)
    info = detect_source(source)
    logger.info("cleaning %s input (%s)", info.container, "gzip" if info.compressed else "uncompressed")
    for path in (outputs.train, outputs.validation, outputs.holdout, outputs.rejected):
        path.parent.mkdir(parents=True, exist_ok=True)
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
    return build_report(source, source_uri, info, config, first, decisions, outputs, split_files, rejected_written)
