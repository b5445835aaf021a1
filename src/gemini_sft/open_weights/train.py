"""Train an open model's LoRA adapter and answer the holdout: the program the GPU training job runs.

Usage::

    python -m gemini_sft.open_weights.train --train train.jsonl --validation validation.jsonl \\
        --holdout holdout.jsonl --output DIR [--base-model google/gemma-3-1b-it] [--epochs 3] [--qlora] ...

Every setting of :class:`~gemini_sft.open_weights.settings.OpenWeightsSettings`
is an option (``--help`` lists them). The output folder gets the adapter, loss
curves, training figures and ``training_summary.json`` (see
:mod:`gemini_sft.open_weights.training`), and ``predictions.jsonl`` with the
base and tuned answers to the holdout (see :mod:`gemini_sft.open_weights.answers`).
Running it again on the same folder resumes an interrupted training.

Exit codes: 0 done, 1 a user error (one line on stderr says what and how to fix it), 2 a usage error.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gemini_sft.contracts import add_cli_options, record_from_cli
from gemini_sft.errors import GeminiSftError
from gemini_sft.open_weights.settings import OpenWeightsSettings
from gemini_sft.storage import local_path

log = logging.getLogger("gemini_sft.open_weights.train")

PREDICTIONS_FILE = "predictions.jsonl"


@dataclass(frozen=True)
class TrainingJob:
    """The files of one open-weights training job."""

    train: Path
    validation: Path | None
    holdout: Path | None
    output: Path


def run_training_job(settings: OpenWeightsSettings, job: TrainingJob) -> dict[str, Any]:
    """Train the adapter, answer the holdout with the base and the tuned model, and return the summary.

    Args:
        settings: the training settings.
        job: the input splits and the output folder.

    Raises:
        GeminiSftError: a setting, input or model problem (see :func:`~gemini_sft.open_weights.training.train_adapter`).
    """
    from gemini_sft.open_weights.answers import answer_holdout
    from gemini_sft.open_weights.models import stop_token_ids
    from gemini_sft.open_weights.tiny_model import TINY_MODEL_VERSION
    from gemini_sft.open_weights.training import SUMMARY_FILE, train_adapter

    outcome = train_adapter(settings, job.train, job.validation, job.output)
    summary = dict(outcome.summary)
    if job.holdout is not None:
        name = TINY_MODEL_VERSION if outcome.base.tiny_local else settings.base_model
        chosen = (summary.get("chosen_checkpoint") or {}).get("checkpoint", "last epoch")
        summary["answers"] = {
            "predictions": PREDICTIONS_FILE,
            **answer_holdout(
                outcome.model,
                outcome.base.tokenizer,
                outcome.renderer,
                job.holdout,
                job.output / PREDICTIONS_FILE,
                max_new_tokens=settings.max_answer_tokens,
                max_prompt_tokens=settings.max_seq_length,
                batch_size=settings.batch_size,
                stop_ids=stop_token_ids(outcome.model, outcome.base.tokenizer),
                versions={"base": name, "tuned": f"{name}+lora ({chosen})"},
            ),
        }
        (job.output / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n",
                                               encoding="utf-8")
    return summary


def build_parser() -> argparse.ArgumentParser:
    """The command line: the files, then one option per training setting."""
    parser = argparse.ArgumentParser(
        prog="python -m gemini_sft.open_weights.train",
        description="Fine-tune an open model with LoRA on Gemini-format JSONL splits and answer the holdout.",
    )
    # gs:// URIs are read and written through the Cloud Storage FUSE mount (/gcs/) of Vertex jobs
    parser.add_argument("--train", required=True, type=local_path, help="training split (Gemini-format JSONL)")
    parser.add_argument("--validation", type=local_path, help="validation split: eval loss per epoch, early stopping")
    parser.add_argument("--holdout", type=local_path, help="holdout split: the base and tuned models answer its prompts")
    parser.add_argument("--output", required=True, type=local_path,
                        help="output folder, a path or gs:// URI (resumed when it holds a training)")
    add_cli_options(parser, OpenWeightsSettings)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the job from the command line; returns the exit code."""
    args = build_parser().parse_args(argv)
    # the libraries' notices of their own deprecated internals say nothing to the user of this program
    warnings.filterwarnings("ignore", category=FutureWarning)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = record_from_cli(OpenWeightsSettings, args)
        summary = run_training_job(settings, TrainingJob(args.train, args.validation, args.holdout, args.output))
    except GeminiSftError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({
        "output": str(args.output),
        "adapter": str(args.output / summary["adapter"]),
        "epochs_trained": summary["epochs_trained"],
        "chosen_checkpoint": summary["chosen_checkpoint"],
        "tokens_per_second": round(summary["figures"]["tokens_per_second"], 1),
        "tiny_local_model": summary["tiny_local_model"],
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
