"""KFP shell of the run summary: one JSON document with the gate's decision, metrics, costs and tuning.

The document is built by :func:`gemini_sft.run_summary.build_run_summary`; this shell reads the artifacts.
"""

from gemini_sft.components.base import build_component
from gemini_sft.contracts import describe_component
from kfp.dsl import Artifact, Input, Model, Output


@describe_component(
    """Write run_summary.json: the gate decision and reasons, the metrics, the costs (estimate and actual) and
    the tuning section (checkpoints with validation scores and losses, the chosen one, the loss curves). The
    checkpoint selection and holdout evaluation are priced from their tokens as the validate step's estimate was.""",
    inputs={
        "decision": "The gate's decision.",
        "evaluation": "The evaluation document.",
        "tuned_model": "The tune step's tuned model.",
        "checkpoint_choice": "The checkpoint choice.",
        "validation_result": "The validate step's result: the cost estimate made before the run (optional).",
    },
    outputs={"run_summary": "The run summary, JSON."},
)
def summarize_run(
    decision: Input[Artifact],
    evaluation: Input[Artifact],
    tuned_model: Input[Model],
    checkpoint_choice: Input[Artifact],
    run_summary: Output[Artifact],
    validation_result: Input[Artifact] = None,
):
    import json
    from pathlib import Path

    from gemini_sft.run_summary import build_run_summary

    def read(artifact) -> dict:
        path = Path(artifact.path)
        return json.loads(path.read_text()) if path.is_file() else dict(artifact.metadata)

    estimate = read(validation_result) if validation_result is not None else None
    document = build_run_summary(read(decision), read(evaluation), read(tuned_model), read(checkpoint_choice),
                                 estimate)
    Path(run_summary.path).write_text(json.dumps(document, indent=2))
    run_summary.metadata["gate_passed"] = document["gate"]["passed"]


summarize_run_op = build_component(summarize_run)
