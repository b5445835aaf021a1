"""``gemini-sft clean PATH --out DIR``: clean and split a raw dataset without KFP."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``clean`` sub-command."""
    parser = subparsers.add_parser(
        "clean",
        help="clean a raw dataset into Gemini train/validation/holdout splits",
        description=(
            "Convert a raw dataset (JSONL in Gemini, input/output, input_text/output_text, prompt/completion "
            "or chat-messages format, or CSV/TSV; optionally gzip) to Gemini tuning examples, reject unusable "
            "rows with a reason, and split the rest. Writes train.jsonl, validation.jsonl, holdout.jsonl, "
            "rejected.jsonl, dataset_version.json and report.md to --out."
        ),
    )
    parser.add_argument("path", type=Path, help="raw data file (local path; gs://... through the /gcs mount)")
    parser.add_argument("--out", type=Path, required=True, help="output directory (created if missing)")
    parser.add_argument("--train-fraction", type=float, default=0.8, help="share of examples for training (0.8)")
    parser.add_argument("--validation-fraction", type=float, default=0.1, help="share for validation (0.1)")
    parser.add_argument("--holdout-fraction", type=float, default=0.1, help="share for the holdout set (0.1)")
    parser.add_argument("--seed", type=int, default=42, help="seed of the split (42)")
    parser.add_argument("--system-instruction", default="", help="system instruction given to every example")
    parser.add_argument("--min-response-chars", type=int, default=0, help="reject shorter responses (0 = no minimum)")
    parser.add_argument(
        "--conflict-policy", choices=("drop_all", "keep_first"), default="drop_all",
        help="same prompt with different responses: drop every such row, or keep the first (drop_all)",
    )
    parser.add_argument("--mask-pii", action="store_true", help="mask e-mails, phone numbers and card numbers")
    parser.add_argument(
        "--stratify-by", default="",
        help="stratify splits by 'field:NAME' (raw field) or 'regex:PATTERN' (group 1 in the response)",
    )
    parser.add_argument("--max-validation-examples", type=int, default=5000, help="validation cap (Vertex: 5000)")
    parser.add_argument(
        "--validation-overflow", choices=("train", "holdout", "drop"), default="train",
        help="where validation examples over the cap go (train)",
    )
    parser.add_argument("--json", action="store_true", help="print the dataset version record as JSON")
    parser.set_defaults(handler=_clean)


def _clean(args: argparse.Namespace) -> int:
    from gemini_sft.dataset.clean import clean_dataset
    from gemini_sft.dataset.settings import CleanConfig, SplitPaths
    from gemini_sft.storage import local_path

    config = CleanConfig(
        train_fraction=args.train_fraction,
        validation_fraction=args.validation_fraction,
        holdout_fraction=args.holdout_fraction,
        seed=args.seed,
        system_instruction=args.system_instruction,
        min_response_chars=args.min_response_chars,
        conflict_policy=args.conflict_policy,
        mask_pii=args.mask_pii,
        stratify_by=args.stratify_by,
        max_validation_examples=args.max_validation_examples,
        validation_overflow=args.validation_overflow,
    )
    source_uri = str(args.path)
    out_dir: Path = args.out
    out_dir.mkdir(parents=True, exist_ok=True)
    report = clean_dataset(local_path(source_uri), SplitPaths.in_directory(out_dir), config, source_uri=source_uri)
    (out_dir / "dataset_version.json").write_text(report.version.to_json() + "\n", encoding="utf-8")
    (out_dir / "report.md").write_text(report.to_markdown(), encoding="utf-8")
    if args.json:
        print(json.dumps(report.version.to_dict(), indent=2))
        return 0 if report.train_rows else 1
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
    print(f"Wrote {out_dir}/{{train,validation,holdout,rejected}}.jsonl, dataset_version.json, report.md")
    return 0 if report.train_rows else 1
