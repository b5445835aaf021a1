"""The training data of a stand-in tuning job: reading the JSONL files, and the stats Vertex reports on them.

:func:`read_examples` refuses a file Vertex would refuse (missing, not JSON,
no user turn followed by a model turn), naming the file and line.
:func:`supervised_tuning_data_stats` builds ``supervisedTuningDataStats`` as
Vertex sends it: counts, billable tokens (estimated, x epochs), steps, token
distributions and the truncated examples (over the token limit, or named by
the stand-in's ``truncated_examples`` knob) with a reason each.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from gemini_sft.errors import TrainingFileError
from gemini_sft.examples import Example, content_text
from gemini_sft.storage import GCS_PREFIX, local_path, read_json_lines
from gemini_sft.tokens import estimate_example_tokens

TRUNCATION_REASON = "The example is longer than the model's token limit and was truncated."
# The stand-in's own assumption for tuningStepCount and checkpoint steps.
STANDIN_BATCH_SIZE = 8
# Input + output tokens one training example may have (Gemini 2.5); longer ones are reported truncated.
EXAMPLE_TOKEN_LIMIT = 131_072


def _readable_path(uri: str, role: str) -> Path:
    """The local file behind a dataset URI; TrainingFileError when it does not exist."""
    path = local_path(uri)
    if path.is_file():
        return path
    if uri.startswith(GCS_PREFIX):
        raise TrainingFileError(
            f"Cannot read the {role} file {uri}: the offline stand-in reads gs:// URIs through the "
            f"Cloud Storage FUSE mount, and {path} does not exist. Use a local path or mount the bucket at /gcs/."
        )
    raise TrainingFileError(f"Cannot read the {role} file {uri}: {path} does not exist or is not a file.")


def _has_user_then_model_turn(contents: list[Any]) -> bool:
    seen_user = False
    for content in contents:
        role = content.get("role") if isinstance(content, dict) else None
        if role == "model" and seen_user:
            return True
        seen_user = seen_user or role == "user"
    return False


def read_examples(uri: str, role: str = "training") -> list[Example]:
    """The Gemini examples of a JSONL dataset (local path, file:// or gs:// through /gcs/).

    Blank lines are skipped. Raises TrainingFileError naming the file and line
    when the file is missing, unreadable, empty, or a line is not a JSON
    object with a ``contents`` list holding a user turn followed by a model
    turn. Messages never include example content.
    """
    path = _readable_path(uri, role)
    examples: list[Example] = []

    def invalid_json(line_number: int, reason: str) -> TrainingFileError:
        return TrainingFileError(f"Line {line_number} of the {role} file {uri} is not valid JSON ({reason}).")

    try:
        for line_number, example in read_json_lines(path, invalid_json):
            if not isinstance(example, dict) or not isinstance(example.get("contents"), list):
                raise TrainingFileError(
                    f"Line {line_number} of the {role} file {uri} is not a Gemini example "
                    "(a JSON object with a `contents` list)."
                )
            if not _has_user_then_model_turn(example["contents"]):
                raise TrainingFileError(
                    f"Line {line_number} of the {role} file {uri} has no user turn followed by a model turn."
                )
            examples.append(example)
    except (OSError, UnicodeDecodeError) as exc:
        raise TrainingFileError(f"Cannot read the {role} file {uri}: {exc}") from exc
    if not examples:
        raise TrainingFileError(f"The {role} file {uri} holds no examples.")
    return examples


def _character_count(example: Example) -> int:
    turns = list(example.get("contents") or [])
    if isinstance(example.get("systemInstruction"), dict):
        turns.append(example["systemInstruction"])
    return sum(len(content_text(t)) for t in turns if isinstance(t, dict))


def _distribution(values: list[int]) -> dict[str, Any]:
    """A ``SupervisedTuningDatasetDistribution`` of per-example counts (int64 fields as strings)."""
    ordered = sorted(values)

    def percentile(share: float) -> float:
        return float(ordered[min(len(ordered) - 1, int(share * (len(ordered) - 1) + 0.5))])

    return {
        "sum": str(sum(ordered)), "billableSum": str(sum(ordered)), "min": float(ordered[0]),
        "max": float(ordered[-1]), "mean": sum(ordered) / len(ordered), "median": percentile(0.5),
        "p5": percentile(0.05), "p95": percentile(0.95),
    }


def supervised_tuning_data_stats(
    examples: list[Example], epochs: int, truncated: tuple[int, ...] = ()
) -> dict[str, Any]:
    """``supervisedTuningDataStats`` for a training set (int64 fields as strings, as Vertex sends them).

    Args:
        examples: the training examples.
        epochs: the job's epochs.
        truncated: 1-based indices of examples to report truncated, besides those over the token limit.
    """
    example_tokens = [estimate_example_tokens(e) for e in examples]
    characters = sum(_character_count(e) for e in examples)
    steps = epochs * math.ceil(len(examples) / STANDIN_BATCH_SIZE)
    over_limit = {i for i, tokens in enumerate(example_tokens, start=1) if tokens > EXAMPLE_TOKEN_LIMIT}
    indices = sorted(over_limit | {i for i in truncated if 1 <= i <= len(examples)})
    outputs = [len(content_text(c)) // 4 for e in examples for c in (e.get("contents") or [])
               if isinstance(c, dict) and c.get("role") == "model"]
    stats: dict[str, Any] = {
        "tuningDatasetExampleCount": str(len(examples)),
        "totalTuningCharacterCount": str(characters),
        "totalBillableCharacterCount": str(characters * epochs),
        "totalBillableTokenCount": str(sum(example_tokens) * epochs),
        "tuningStepCount": str(steps),
        "userInputTokenDistribution": _distribution(example_tokens),
        "userMessagePerExampleDistribution": _distribution([len(e.get("contents") or []) for e in examples]),
    }
    if outputs:
        stats["userOutputTokenDistribution"] = _distribution(outputs)
    if indices:
        stats.update(
            totalTruncatedExampleCount=str(len(indices)),
            truncatedExampleIndices=[str(i) for i in indices],
            droppedExampleReasons=[TRUNCATION_REASON] * len(indices),
        )
    return stats
