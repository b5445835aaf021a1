"""One contract per stage: component signatures, pipeline wiring and CLI options agree with the stage records.

Each row of ``STAGES`` names a component, the records it takes, its other
parameters (artifacts and wiring) and its task in the compiled pipeline.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

import pytest
import yaml

from gemini_sft.checkpoint_scoring import CheckpointSelectionSettings
from gemini_sft.components.choose_checkpoint import choose_checkpoint
from gemini_sft.components.clean import clean_data
from gemini_sft.components.deploy import deploy_open_weights
from gemini_sft.components.evaluate import evaluate_models
from gemini_sft.components.gate import gate_model
from gemini_sft.components.promote import record_rejection
from gemini_sft.components.resolve_data import resolve_raw_data
from gemini_sft.components.summarize_run import summarize_run
from gemini_sft.components.train_open_weights import train_open_weights
from gemini_sft.components.tune import tune_model
from gemini_sft.components.validate import validate_data
from gemini_sft.contracts import (
    add_cli_options,
    find_task,
    pipeline_wiring_problems,
    record_from_cli,
    setting,
    settings_of,
    signature_problems,
    stage_arguments,
)
from gemini_sft.dataset.settings import CleanConfig
from gemini_sft.deployment import DeploymentSettings
from gemini_sft.evaluation.settings import EvaluationSettings
from gemini_sft.gate import GatePolicy
from gemini_sft.open_weights.settings import OpenWeightsSettings
from gemini_sft.tune import TuningSettings
from gemini_sft.validate import ValidationSettings
from gemini_sft.vertex_client import VertexTarget

CLEAN_ARTIFACTS = ("raw_data", "train", "validation", "holdout", "rejected", "source_lines", "dataset_version", "report",
                   "metrics")
TUNE_ARTIFACTS = ("train", "validation", "source_lines", "tuned_model", "summary", "loss_curves", "gcp_resources")
# Tune fields fed by other tasks' outputs or the run name, and fields left at the component's default
# (no pipeline parameter feeds them).
TUNE_WIRED = ("dataset_hash", "estimated_cost_usd", "champion_model", "pipeline_run")
TUNE_DEFAULTS = ("continuous_from_model", "retry_failed_job", "cancel_on_timeout", "cancel_on_stop",
                 "start_checkpoint_id")
VALIDATE_ARTIFACTS = ("train", "validation", "holdout", "report", "validation_result", "metrics")
EVALUATE_ARTIFACTS = ("holdout", "train", "metrics", "classification_metrics", "predictions", "report", "html_report",
                      "evaluation", "tuned_model", "checkpoint_choice")
DEPLOY_OTHERS = ("tuned_model", "decision", "evaluation", "deployment_record", "project", "location", "api_endpoint",
                 "registry_uri", "pipeline_run", "dataset_hash")
# The one rejection step of both backends: the candidate, the gate's decision and what its record keeps.
REJECTION_ARTIFACTS = ("tuned_model", "decision", "rejection_record", "registry_uri", "pipeline_run", "dataset_hash")
TRAIN_OPEN_ARTIFACTS = ("train", "validation", "holdout", "tuned_model", "loss_curves", "figures", "predictions")
# The training machine is fixed when the pipeline is compiled (the custom job's machine), not a run parameter.
TRAIN_OPEN_COMPILED = ("machine_type", "accelerator_type", "accelerator_count")
# The tuned and champion endpoints (and the champion's backend) come from the tune and find-champion tasks.
EVALUATE_WIRED = ("tuned_endpoint", "champion_endpoint", "champion_backend")
GATE_ARTIFACTS = ("evaluation", "decision", "report")
CHOOSE_ARTIFACTS = ("tuned_model", "loss_curves", "validation", "holdout", "checkpoint_choice")

# (component function, records, other parameters, task name, record fields the pipeline wires otherwise)
STAGES: list[tuple[Any, list[type], tuple[str, ...], str, tuple[str, ...]]] = [
    (clean_data, [CleanConfig], CLEAN_ARTIFACTS, "clean-data", ()),
    (resolve_raw_data, [], ("raw_data_uri", "raw_data"), "resolve-raw-data", ()),
    (tune_model, [VertexTarget, TuningSettings], TUNE_ARTIFACTS, "tune-model", TUNE_WIRED + TUNE_DEFAULTS),
    (validate_data, [ValidationSettings], VALIDATE_ARTIFACTS, "validate-data", TRAIN_OPEN_COMPILED),
    (evaluate_models, [VertexTarget, EvaluationSettings], EVALUATE_ARTIFACTS, "evaluate-models", EVALUATE_WIRED),
    (gate_model, [GatePolicy], GATE_ARTIFACTS, "gate-model", ()),
    (train_open_weights, [OpenWeightsSettings], TRAIN_OPEN_ARTIFACTS, "train-open-weights", TRAIN_OPEN_COMPILED),
    (deploy_open_weights, [DeploymentSettings], DEPLOY_OTHERS, "deploy-open-weights", ()),
    (record_rejection, [], REJECTION_ARTIFACTS, "record-rejection", ()),
    (choose_checkpoint, [VertexTarget, CheckpointSelectionSettings], CHOOSE_ARTIFACTS, "choose-checkpoint", ()),
    (summarize_run, [], ("decision", "evaluation", "tuned_model", "checkpoint_choice", "validation_result",
                        "run_summary"),
     "summarize-run", ()),
]


@pytest.fixture(scope="module")
def spec(compiled_spec_path) -> dict[str, Any]:
    return yaml.safe_load(compiled_spec_path.read_text())


@pytest.mark.parametrize("component, records, others, task, wired", STAGES, ids=[s[3] for s in STAGES])
def test_component_signature_equals_its_records(component, records, others, task, wired) -> None:
    assert signature_problems(component, records, others) == []


@pytest.mark.parametrize("component, records, others, task, wired", STAGES, ids=[s[3] for s in STAGES])
def test_pipeline_passes_every_record_field(spec, component, records, others, task, wired) -> None:
    assert pipeline_wiring_problems(spec, task, records, constants=wired) == []


@pytest.mark.parametrize("component, records, others, task, wired", STAGES, ids=[s[3] for s in STAGES])
def test_every_component_parameter_is_described_in_the_spec(spec, component, records, others, task, wired) -> None:
    component_spec = spec["components"][find_task(spec, task)["componentRef"]["name"]]
    undescribed = [
        name
        for kind in ("inputDefinitions", "outputDefinitions")
        for group in ("parameters", "artifacts")
        for name, definition in component_spec.get(kind, {}).get(group, {}).items()
        if not definition.get("description")
    ]
    assert undescribed == []


def test_a_field_added_to_a_record_but_not_to_the_component_is_caught() -> None:
    @dataclasses.dataclass(frozen=True)
    class Grown(CleanConfig):
        new_knob: int = setting(3, "A knob the component does not take yet.")

    problems = signature_problems(clean_data, [Grown], CLEAN_ARTIFACTS)
    assert problems == ["clean_data: record field 'new_knob' is not a parameter"]


def test_a_component_parameter_in_no_record_is_caught() -> None:
    def shell(raw_data: str, seed: int = 42, stray: int = 1) -> None: ...

    @dataclasses.dataclass(frozen=True)
    class OnlySeed:
        seed: int = setting(42, "Seed.")

    assert signature_problems(shell, [OnlySeed], ("raw_data",)) == ["shell: parameter 'stray' is in no record"]


def test_a_changed_default_is_caught() -> None:
    def shell(seed: int = 7) -> None: ...

    @dataclasses.dataclass(frozen=True)
    class OnlySeed:
        seed: int = setting(42, "Seed.")

    assert signature_problems(shell, [OnlySeed]) == ["shell: 'seed' defaults to 7, the record says 42"]


def test_pipeline_wiring_check_names_a_missing_field(spec) -> None:
    @dataclasses.dataclass(frozen=True)
    class Grown(CleanConfig):
        new_knob: int = setting(3, "A knob the pipeline does not pass yet.")

    problems = pipeline_wiring_problems(spec, "clean-data", [Grown])
    assert problems == ["clean-data: the pipeline does not pass 'new_knob'"]


def test_cli_options_come_from_the_record() -> None:
    parser = argparse.ArgumentParser()
    add_cli_options(parser, CleanConfig)
    args = parser.parse_args(["--seed", "7", "--mask-pii", "--conflict-policy", "keep_first"])
    config = record_from_cli(CleanConfig, args)
    assert (config.seed, config.mask_pii, config.conflict_policy) == (7, True, "keep_first")
    assert config.train_fraction == 0.8
    with pytest.raises(SystemExit):
        parser.parse_args(["--conflict-policy", "sometimes"])


def test_every_record_field_has_a_one_line_description() -> None:
    for record in [s for stage in STAGES for s in stage[1]]:
        for item in settings_of(record):
            assert item.description and "\n" not in item.description, item.name


def test_stage_arguments_pass_every_field_and_refuse_one_the_pipeline_lacks() -> None:
    parameters = {item.pipeline_name: f"<{item.pipeline_name}>" for item in settings_of(CleanConfig)}
    arguments = stage_arguments([CleanConfig], parameters, wired={"seed": "<task output>"})
    assert arguments["seed"] == "<task output>"
    assert arguments["train_fraction"] == "<train_fraction>"
    assert set(arguments) == {item.name for item in settings_of(CleanConfig)}

    @dataclasses.dataclass(frozen=True)
    class Grown(CleanConfig):
        new_knob: int = setting(3, "A knob the pipeline has no parameter for.")

    with pytest.raises(KeyError, match="new_knob: the pipeline has no parameter 'new_knob'"):
        stage_arguments([Grown], parameters)
    assert "new_knob" not in stage_arguments([Grown], parameters, keep_defaults=["new_knob"])


def test_the_pipeline_signature_comes_from_the_records_and_refuses_disagreeing_stages() -> None:
    from gemini_sft.contracts import pipeline_signature
    from gemini_sft.pipelines.gemini_sft_pipeline import parameter_signature

    signature = parameter_signature()
    assert list(signature.parameters)[:3] == ["project", "raw_data_uri", "registry_uri"]  # required first
    assert signature.parameters["seed"].default == 42 and signature.parameters["seed"].annotation is int
    assert "tuned_endpoint" not in signature.parameters  # wired from the tune step, not a parameter

    @dataclasses.dataclass(frozen=True)
    class Own:
        project: str = setting("p", "Project.")

    @dataclasses.dataclass(frozen=True)
    class SeedSeven:
        seed: int = setting(7, "Another stage's seed.")

    with pytest.raises(TypeError, match="pipeline parameter 'seed': SeedSeven.seed is"):
        pipeline_signature(Own, [CleanConfig, SeedSeven])
