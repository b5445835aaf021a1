"""Run the tune component's function (``tune_model_op.python_func``) the way KFP does, on artifacts in a work folder.

Used in-process by the tests and as a script (``python tune_step.py WORKDIR
PARAMS_JSON``) for the restart and SIGTERM tests, which need the step in a
process of its own.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from kfp import dsl

EXAMPLE = {
    "contents": [
        {"role": "user", "parts": [{"text": "Printer on floor 3 is jammed again"}]},
        {"role": "model", "parts": [{"text": "category: hardware; priority: medium; action: dispatch"}]},
    ]
}


def write_splits(workdir: Path, train_rows: int = 3, validation_rows: int = 1) -> tuple[Path, Path]:
    """Write small Gemini JSONL train and validation files; returns their paths."""
    workdir.mkdir(parents=True, exist_ok=True)
    train = workdir / "train.jsonl"
    validation = workdir / "validation.jsonl"
    train.write_text("".join(json.dumps(EXAMPLE) + "\n" for _ in range(train_rows)))
    validation.write_text("".join(json.dumps(EXAMPLE) + "\n" for _ in range(validation_rows)))
    return train, validation


def run_step(workdir: Path, **params: Any) -> tuple[Any, dsl.Model, dsl.Markdown, Path]:
    """Call ``tune_model_op.python_func`` on artifacts under ``workdir``.

    Returns (outputs, tuned model artifact, summary artifact, gcp_resources path).
    """
    from gemini_sft.components.tune import tune_model_op

    train_path, validation_path = workdir / "train.jsonl", workdir / "validation.jsonl"
    if not train_path.exists():
        write_splits(workdir)
    train = dsl.Dataset(name="train", uri=str(train_path))
    validation = dsl.Dataset(name="validation", uri=str(validation_path))
    model = dsl.Model(name="tuned_model", uri=str(workdir / "out" / "tuned_model"))
    summary = dsl.Markdown(name="summary", uri=str(workdir / "out" / "summary.md"))
    loss_curves = dsl.Artifact(name="loss_curves", uri=str(workdir / "out" / "loss_curves.json"))
    gcp_resources = workdir / "out" / "gcp_resources"
    outputs = tune_model_op.python_func(
        train=train,
        validation=validation,
        tuned_model=model,
        summary=summary,
        loss_curves=loss_curves,
        gcp_resources=str(gcp_resources),
        **params,
    )
    return outputs, model, summary, gcp_resources


if __name__ == "__main__":
    run_step(Path(sys.argv[1]), **json.loads(sys.argv[2]))
