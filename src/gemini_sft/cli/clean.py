"""``gemini-sft clean PATH --out DIR``: clean and split a raw dataset without KFP.

Convert a raw dataset (JSONL in Gemini, input/output, input_text/output_text, prompt/completion
or chat-messages format, or CSV/TSV; optionally gzip) to Gemini tuning examples, reject unusable
rows with a reason, and split the rest. Writes train.jsonl, validation.jsonl, holdout.jsonl,
rejected.jsonl, source_lines.json, dataset_version.json and report.md to --out.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from gemini_sft.cli.common import add_command
from gemini_sft.contracts import add_cli_options
from gemini_sft.dataset.settings import CleanConfig

if TYPE_CHECKING:
    from gemini_sft.dataset.report import CleanReport

RECORD_FILES = ("dataset_version.json", "report.md")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``clean`` sub-command."""
    parser = add_command(subparsers, "clean", _clean,
                         "clean a raw dataset into Gemini train/validation/holdout splits", __doc__)
    parser.add_argument("path", type=Path, help="raw data file (local path; gs://... through the /gcs mount)")
    parser.add_argument("--out", type=Path, required=True, help="output directory (created if missing)")
    add_cli_options(parser, CleanConfig)
    parser.add_argument("--json", action="store_true", help="print the dataset version record as JSON")


def _clean(args: argparse.Namespace) -> int:
    from gemini_sft.contracts import record_from_cli
    from gemini_sft.dataset.clean import clean_dataset, prepare_outputs, require_usable_splits
    from gemini_sft.dataset.settings import SplitPaths
    from gemini_sft.storage import local_path

    config = record_from_cli(CleanConfig, args)
    source_uri = str(args.path)
    source = local_path(source_uri)
    out_dir: Path = args.out
    outputs = SplitPaths.in_directory(out_dir)
    # Every file this command writes is checked against the input before anything is read.
    prepare_outputs(source, [*outputs.files(), *(out_dir / name for name in RECORD_FILES)])
    report = clean_dataset(source, outputs, config, source_uri=source_uri)
    (out_dir / "dataset_version.json").write_text(report.version.to_json() + "\n", encoding="utf-8")
    (out_dir / "report.md").write_text(report.to_markdown(), encoding="utf-8")
    if args.json:
        print(json.dumps(report.version.to_dict(), indent=2))
    else:
        _print_summary(report, out_dir)
    require_usable_splits(report, config)
    return 0 if report.train_rows else 1


def _print_summary(report: CleanReport, out_dir: Path) -> None:
    print(f"Read {report.rows_read} rows ({report.blank_lines} blank lines skipped)")
    print(
        f"Kept {report.kept_rows}: train {report.train_rows}, validation {report.validation_rows}, "
        f"holdout {report.holdout_rows}"
    )
    print(f"Rejected {report.rejected_rows}" + (":" if report.rejected_rows else ""))
    for reason, count in report.rejected_by_reason.items():
        if count:
            print(f"  {reason:<22} {count}")
    for warning in report.warnings:
        print(f"Warning: {warning}")
    print(f"Dataset hash {report.dataset_hash}")
    print(f"Wrote {out_dir}/{{train,validation,holdout,rejected}}.jsonl, source_lines.json, dataset_version.json, "
          "report.md")
