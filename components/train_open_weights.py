"""KFP shell of the open-weights tune stage: LoRA fine-tune of an open model, then its holdout answers.

The work is done by :mod:`gemini_sft.open_weights` (``run_training_job``); this
shell maps the artifacts to folders and writes the outputs. On Vertex the
pipeline wraps it in a custom job on a GPU machine (GCPC's
``create_custom_training_job_from_component``); locally it runs in-process on CPU.
"""

from typing import NamedTuple

from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output

from gemini_sft.contracts import describe_component
from gemini_sft.open_weights.settings import OpenWeightsSettings


@describe_component(
    """Train a LoRA adapter of the open base model on the train split and answer the holdout with base and tuned.

    Eval loss per epoch on the validation split, a checkpoint per epoch, early stopping, the best epoch kept;
    a retried step resumes from the last checkpoint. Raises ConfigError for a bad setting, DatasetInvalidError
    or InputFormatError for unusable splits.""",
    records=[OpenWeightsSettings],
    inputs={
        "train": "Training split from the clean step, Gemini JSONL.",
        "validation": "Validation split from the clean step: eval loss per epoch and early stopping.",
        "holdout": "Holdout split from the clean step: the base and tuned models answer its prompts.",
    },
    outputs={
        "tuned_model": "Training folder: adapter/ (adapter_model.safetensors + config), predictions.jsonl, summary.",
        "loss_curves": "Train and eval loss by step, JSON {train: [[step, loss]], eval: [[step, loss]]}.",
        "figures": "Training figures: tokens/s, wall seconds, GPU hours, epochs, final losses.",
        "predictions": "Base and tuned answers to the holdout, in the evaluation's predictions shape.",
        "endpoint": "Always empty: an open model has no endpoint before the deploy step.",
    },
)
def train_open_weights(
    train: Input[Dataset],
    validation: Input[Dataset],
    holdout: Input[Dataset],
    tuned_model: Output[Model],
    loss_curves: Output[Artifact],
    figures: Output[Metrics],
    predictions: Output[Dataset],
    base_model: str = "google/gemma-3-1b-it",
    lora_rank: int = 16,
    lora_alpha: int = 32,
    lora_dropout: float = 0.05,
    lora_target_modules: str = "all-linear",
    qlora: bool = False,
    epochs: int = 3,
    learning_rate: float = 2e-4,
    batch_size: int = 4,
    gradient_accumulation_steps: int = 4,
    max_seq_length: int = 1024,
    early_stopping_patience: int = 2,
    max_answer_tokens: int = 256,
    seed: int = 42,
    machine_type: str = "g2-standard-8",
    accelerator_type: str = "NVIDIA_L4",
    accelerator_count: int = 1,
) -> NamedTuple("TrainOpenWeightsOutputs", [("endpoint", str)]):
    import logging
    import warnings
    from collections import namedtuple
    from pathlib import Path

    from gemini_sft.contracts import record_from_values
    from gemini_sft.open_weights.pipeline_step import write_step_outputs
    from gemini_sft.open_weights.settings import OpenWeightsSettings
    from gemini_sft.open_weights.train import TrainingJob, run_training_job

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    warnings.filterwarnings("ignore", category=FutureWarning)  # the libraries' notices of their own internals
    settings = record_from_values(OpenWeightsSettings, locals())
    folder = Path(tuned_model.path)
    summary = run_training_job(settings, TrainingJob(Path(train.path), Path(validation.path), Path(holdout.path),
                                                     folder))
    step = write_step_outputs(summary, folder, Path(loss_curves.path), Path(predictions.path))
    tuned_model.metadata.update(step.model_metadata)
    predictions.metadata["examples"] = step.examples
    for name, value in step.figures.items():
        figures.log_metric(name, value)
    return namedtuple("TrainOpenWeightsOutputs", ["endpoint"])("")
