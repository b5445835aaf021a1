"""KFP shell of the checkpoint choice: every checkpoint answers a validation sample, the rule picks one.

The work is done by :mod:`gemini_sft.checkpoint_scoring`; this shell reads the artifacts and writes the choice.
"""

from typing import NamedTuple

from gemini_sft.checkpoint_scoring import CheckpointSelectionSettings
from gemini_sft.components.base import build_component
from gemini_sft.contracts import describe_component
from gemini_sft.vertex_client import VertexTarget
from kfp.dsl import Artifact, Dataset, Input, Model, Output


@describe_component(
    """Choose the tuned checkpoint on the validation split (never the holdout): with best_validation_metric every
    checkpoint's endpoint answers the same validation sample and is scored with the primary metric; ties go to
    the earlier epoch. A job without intermediate checkpoints passes its default endpoint through and says so.

    Raises ConfigError on a bad setting or a tuned model without an endpoint.""",
    records=[VertexTarget, CheckpointSelectionSettings],
    inputs={
        "tuned_model": "The tune step's tuned model: its endpoint and checkpoints with their losses.",
        "loss_curves": "The tune step's loss curves (JSON).",
        "validation": "The validation split, Gemini JSONL.",
        "holdout": "The holdout split: only its example count is read, to bound the validation sample "
        "(checkpoint_selection_cost_ratio); none of it is scored here.",
    },
    outputs={
        "checkpoint_choice": "Every checkpoint with validation_score, train_loss, eval_loss; the chosen one, "
        "rule, reason, calls made and the run summary's tuning section (JSON).",
        "endpoint": "Endpoint of the chosen checkpoint.",
        "checkpoint_id": "Id of the chosen checkpoint (empty when the job reported none).",
    },
)
def choose_checkpoint(
    tuned_model: Input[Model],
    loss_curves: Input[Artifact],
    validation: Input[Dataset],
    checkpoint_choice: Output[Artifact],
    project: str,
    location: str = "us-central1",
    api_endpoint: str = "",
    selection_rule: str = "best_validation_metric",
    validation_sample_size: int = 50,
    primary_metric: str = "rougeL",
    label_pattern: str = "",
    max_output_tokens: int = 1024,
    max_concurrency: int = 8,
    requests_per_minute: int = 300,
    seed: int = 42,
    selection_cost_ratio: float = 1.5,
    holdout: Input[Dataset] = None,
) -> NamedTuple("ChoiceOutputs", [("endpoint", str), ("checkpoint_id", str)]):
    step_inputs = {k: v for k, v in locals().items() if k != "checkpoint_choice"}
    step_inputs.update(tuned_model=tuned_model.uri, validation=validation.uri,
                       holdout=holdout.uri if holdout is not None else "")
    import json
    import logging
    from collections import namedtuple
    from pathlib import Path

    from gemini_sft.checkpoint_scoring import CheckpointSelectionSettings, choose_on_validation, load_validation
    from gemini_sft.contracts import record_from_values
    from gemini_sft.evaluation.settings import GENERATION_TIMEOUT_MS
    from gemini_sft.permanent_failure import fail_fast_when_retried
    from gemini_sft.vertex_client import GenAIGenerator, VertexTarget, genai_client, quiet_http_logs

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet_http_logs()
    settings = record_from_values(CheckpointSelectionSettings, locals())
    vertex = record_from_values(VertexTarget, locals()).settings()
    model_file, curves_file = Path(tuned_model.path), Path(loss_curves.path)
    model = json.loads(model_file.read_text()) if model_file.is_file() else dict(tuned_model.metadata)
    curves = json.loads(curves_file.read_text()) if curves_file.is_file() else {}
    # Retried for a lost pod or a flaky endpoint, but a tuned model without an endpoint or a bad setting
    # would fail the same way again: the attempts share this folder, where that failure is recorded.
    with fail_fast_when_retried(Path(checkpoint_choice.path).parent, step_inputs):
        client = genai_client(vertex, timeout_ms=GENERATION_TIMEOUT_MS)
        selection = choose_on_validation(
            model, load_validation(validation.path),
            lambda endpoint: GenAIGenerator(vertex, endpoint, max_output_tokens=max_output_tokens, client=client),
            settings, holdout_examples=len(load_validation(holdout.path)) if holdout is not None else None,
        )
    document = selection.document(model, curves)
    Path(checkpoint_choice.path).write_text(json.dumps(document, indent=2))
    checkpoint_choice.metadata.update({k: document[k] for k in ("endpoint", "rule", "reason", "calls")})
    chosen_id = selection.choice.checkpoint.checkpoint_id if selection.choice else ""
    return namedtuple("ChoiceOutputs", ["endpoint", "checkpoint_id"])(selection.endpoint, chosen_id)


choose_checkpoint_op = build_component(choose_checkpoint)
