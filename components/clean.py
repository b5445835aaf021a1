"""KFP shell of the clean stage: read the raw data artifact, clean and split it, write the artifacts.

The work is done by :func:`gemini_sft.dataset.clean.clean_dataset`; this shell maps
artifacts to paths, writes the version record and report, and logs counts.
"""

from typing import NamedTuple

from gemini_sft.dataset.settings import CleanConfig
from gemini_sft.contracts import describe_component
from kfp.dsl import Artifact, Dataset, Input, Markdown, Metrics, Output


@describe_component(
    """Clean the raw data into Gemini train / validation / holdout JSONL splits; nothing is lost.

    Every row ends in one split or in ``rejected`` with its line and reason. Fails with ConfigError
    on invalid settings or an output that would overwrite the input, InputFormatError when the file
    cannot be read, DatasetInvalidError when no training example survives or a split is smaller than
    min_split_examples (before anything is tuned).""",
    records=[CleanConfig],
    inputs={
        "raw_data": "The raw examples: JSONL in any supported format, CSV or TSV, optionally gzip; "
        "metadata source_uri keeps the configured URI (pattern).",
    },
    outputs={
        "train": "Training split, Gemini JSONL.",
        "validation": "Validation split, Gemini JSONL.",
        "holdout": "Holdout split for evaluation, Gemini JSONL.",
        "rejected": "One JSON object per rejected row: line, reason, detail, raw.",
        "source_lines": "Per split, the raw file's line of each row in order (JSON), so the tune step names the "
        "raw lines of the examples Vertex truncates or drops.",
        "dataset_version": "The dataset version record: SHA-256 per split, counts, settings, source.",
        "report": "What was kept and rejected, and why.",
        "metrics": "Row counts per split and per reject reason.",
        "dataset_hash": "Hash of the three splits, usable as a Google Cloud label value.",
        "kept_rows": "Rows kept in the three splits.",
        "train_rows": "Rows in the training split.",
    },
)
def clean_data(
    raw_data: Input[Dataset],
    train: Output[Dataset],
    validation: Output[Dataset],
    holdout: Output[Dataset],
    rejected: Output[Dataset],
    source_lines: Output[Artifact],
    dataset_version: Output[Artifact],
    report: Output[Markdown],
    metrics: Output[Metrics],
    train_fraction: float = 0.8,
    validation_fraction: float = 0.1,
    holdout_fraction: float = 0.1,
    seed: int = 42,
    system_instruction: str = "",
    min_response_chars: int = 0,
    conflict_policy: str = "drop_all",
    mask_pii: bool = False,
    stratify_by: str = "",
    max_validation_examples: int = 5000,
    validation_overflow: str = "train",
    min_split_examples: int = 2,
) -> NamedTuple("CleanOutputs", [("dataset_hash", str), ("kept_rows", int), ("train_rows", int)]):
    import logging
    from collections import namedtuple
    from pathlib import Path

    from gemini_sft.dataset.clean import clean_dataset, require_usable_splits
    from gemini_sft.dataset.settings import CleanConfig, SplitPaths
    from gemini_sft.contracts import record_from_values
    from gemini_sft.errors import DatasetInvalidError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logger = logging.getLogger("gemini_sft.components.clean")

    config = record_from_values(CleanConfig, locals())
    # Vertex tuning accepts only a JSONL object: give each file artifact a .jsonl URI before writing it.
    for artifact in (train, validation, holdout, rejected):
        if not artifact.uri.endswith(".jsonl"):
            artifact.uri += ".jsonl"
    outputs = SplitPaths(
        train=Path(train.path), validation=Path(validation.path), holdout=Path(holdout.path),
        rejected=Path(rejected.path), source_lines=Path(source_lines.path),
    )
    result = clean_dataset(
        Path(raw_data.path), outputs, config, source_uri=raw_data.uri,
        source_uri_pattern=str(raw_data.metadata.get("source_uri", "")),
    )

    version = result.version
    Path(dataset_version.path).parent.mkdir(parents=True, exist_ok=True)
    Path(dataset_version.path).write_text(version.to_json() + "\n", encoding="utf-8")
    Path(report.path).parent.mkdir(parents=True, exist_ok=True)
    Path(report.path).write_text(result.to_markdown(), encoding="utf-8")

    for name, artifact in (("train", train), ("validation", validation), ("holdout", holdout)):
        record = version.splits[name]
        artifact.metadata.update(
            {"rows": record.rows, "sha256": record.sha256, "dataset_hash": version.dataset_hash, "format": "gemini"}
        )
    rejected.metadata.update({"rows": version.rejected.rows, "rejected_by_reason": version.rejected_by_reason})
    source_lines.metadata.update({"source_uri": version.source_uri, "dataset_hash": version.dataset_hash})
    dataset_version.metadata.update({"dataset_hash": version.dataset_hash, "code_version": version.code_version})
    for name, value in result.metrics().items():
        metrics.log_metric(name, value)
    logger.info(
        "clean: %d read, %d kept (train %d, validation %d, holdout %d), %d rejected; dataset %s",
        result.rows_read, result.kept_rows, result.train_rows, result.validation_rows, result.holdout_rows,
        result.rejected_rows, version.dataset_hash,
    )
    if result.train_rows == 0:
        raise DatasetInvalidError(
            f"no training example survived cleaning ({result.rows_read} rows read, {result.rejected_rows} rejected); "
            "see the rejected artifact for each row's reason"
        )
    require_usable_splits(result, config)
    outputs_type = namedtuple("CleanOutputs", ["dataset_hash", "kept_rows", "train_rows"])
    return outputs_type(version.dataset_hash, result.kept_rows, result.train_rows)

