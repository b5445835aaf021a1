"""Open-weights settings and the training program's command line: these need no torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gemini_sft.contracts import record_from_cli, settings_of
from gemini_sft.errors import ConfigError
from gemini_sft.open_weights import models
from gemini_sft.open_weights.job import JobFiles, command_line, worker_pool_specs
from gemini_sft.open_weights.settings import (
    ACCELERATOR_TYPES,
    DEFAULT_OPEN_BASE_MODEL,
    TINY_LOCAL_MODEL,
    OpenWeightsSettings,
)
from gemini_sft.open_weights.train import build_parser, main


def test_defaults_tune_a_small_instruction_tuned_gemma_on_one_l4() -> None:
    settings = OpenWeightsSettings()
    assert settings.base_model == DEFAULT_OPEN_BASE_MODEL == "google/gemma-3-1b-it"
    assert (settings.machine_type, settings.accelerator_type, settings.accelerator_count) == (
        "g2-standard-8", "NVIDIA_L4", 1)
    assert not settings.qlora and not settings.tiny_local
    assert settings.target_modules == "all-linear"


def test_every_setting_is_described_and_the_conflicting_names_are_prefixed_in_the_pipeline() -> None:
    fields = {item.name: item for item in settings_of(OpenWeightsSettings)}
    expected = {
        "base_model", "lora_rank", "lora_alpha", "lora_dropout", "lora_target_modules", "qlora", "epochs",
        "learning_rate", "batch_size", "gradient_accumulation_steps", "max_seq_length", "early_stopping_patience",
        "machine_type", "accelerator_type", "accelerator_count",
    }
    assert expected <= set(fields)
    assert all(item.description for item in fields.values())
    # the Gemini tune stage has its own base_model: the open model's must not take its pipeline parameter
    assert fields["base_model"].pipeline_name == "open_weights_base_model"


def test_invalid_settings_are_all_named_in_one_error() -> None:
    with pytest.raises(ConfigError) as error:
        OpenWeightsSettings(lora_rank=0, lora_dropout=1.0, learning_rate=0.0, lora_target_modules="q_proj;v_proj",
                            max_seq_length=8)
    message = str(error.value)
    for name in ("lora_rank", "lora_dropout", "learning_rate", "lora_target_modules", "max_seq_length"):
        assert name in message
    assert "\n" not in message


@pytest.mark.parametrize(
    "machine, accelerator, count, fix",
    [
        ("g2-standard-8", "NVIDIA_TESLA_A100", 1, "accelerator_type=NVIDIA_L4"),
        ("a2-highgpu-2g", "NVIDIA_TESLA_A100", 1, "accelerator_count=2"),
        ("g2-standard-48", "NVIDIA_L4", 1, "accelerator_count=4"),
        ("n1-standard-8", "", 1, "accelerator_count must be 0"),
        ("a3-highgpu-1g", "NVIDIA_H100_80GB", 0, "at least 1"),
    ],
)
def test_machine_and_accelerator_must_agree(machine: str, accelerator: str, count: int, fix: str) -> None:
    with pytest.raises(ConfigError, match=fix):
        OpenWeightsSettings(machine_type=machine, accelerator_type=accelerator, accelerator_count=count)


def test_cpu_machine_and_gpu_machines_that_agree_are_accepted() -> None:
    OpenWeightsSettings(machine_type="n1-standard-8", accelerator_type="", accelerator_count=0)
    OpenWeightsSettings(machine_type="a2-ultragpu-1g", accelerator_type="NVIDIA_A100_80GB", accelerator_count=1)
    OpenWeightsSettings(machine_type="g2-standard-24", accelerator_type="NVIDIA_L4", accelerator_count=2)


def test_qlora_on_a_machine_without_gpu_is_refused() -> None:
    with pytest.raises(ConfigError, match="qlora=true needs a GPU"):
        OpenWeightsSettings(qlora=True, machine_type="n1-standard-8", accelerator_type="", accelerator_count=0)


def test_target_modules_are_all_linear_or_a_list() -> None:
    assert OpenWeightsSettings(lora_target_modules="q_proj, v_proj").target_modules == ["q_proj", "v_proj"]
    assert OpenWeightsSettings(lora_target_modules="all-linear").target_modules == "all-linear"


def test_command_line_gives_every_setting_as_an_option() -> None:
    args = build_parser().parse_args([
        "--train", "t.jsonl", "--output", "out", "--base-model", TINY_LOCAL_MODEL, "--lora-rank", "4",
        "--learning-rate", "0.01", "--qlora", "--lora-target-modules", "q_proj,v_proj",
    ])
    settings = record_from_cli(OpenWeightsSettings, args)
    assert (settings.base_model, settings.lora_rank, settings.learning_rate, settings.qlora) == (
        TINY_LOCAL_MODEL, 4, 0.01, True)
    assert settings.target_modules == ["q_proj", "v_proj"]
    assert args.validation is None and args.holdout is None


def test_cloud_storage_uris_are_read_through_the_vertex_mount() -> None:
    args = build_parser().parse_args(["--train", "gs://b/run/train.jsonl", "--output", "gs://b/run/model"])
    assert (str(args.train), str(args.output)) == ("/gcs/b/run/train.jsonl", "/gcs/b/run/model")


def test_a_bad_setting_on_the_command_line_is_one_line_and_exit_code_1(tmp_path, capsys) -> None:
    code = main(["--train", str(tmp_path / "t.jsonl"), "--output", str(tmp_path / "out"), "--lora-rank", "0"])
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: open-weights settings: lora_rank must be an integer >= 1")
    assert err.count("\n") == 1


def test_settings_and_the_program_import_without_torch() -> None:
    code = (
        "import sys; import gemini_sft.open_weights.train, gemini_sft.open_weights.settings; "
        "heavy = [m for m in ('torch', 'transformers', 'trl', 'peft') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_missing_library_names_the_extra_to_install(monkeypatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "trl" else real(name, *a))
    with pytest.raises(ConfigError, match=r"needs (.*, )?trl(, .*)?: pip install 'gemini-sft\[open-weights\]'"):
        models.require_training_libraries()


def test_the_guide_lists_every_option_of_the_training_program() -> None:
    guide = (Path(__file__).resolve().parents[1] / "docs" / "open-weights.md").read_text(encoding="utf-8")
    options = [item.name.replace("_", "-") for item in settings_of(OpenWeightsSettings)]
    missing = [f"--{name}" for name in options if f"`--{name}`" not in guide]
    assert missing == []


def test_the_custom_job_command_line_reproduces_the_settings() -> None:
    settings = OpenWeightsSettings(base_model="gs://b/weights/gemma", lora_rank=8, qlora=True, learning_rate=1e-4,
                                   lora_target_modules="q_proj,v_proj")
    files = JobFiles(train="gs://b/run/train.jsonl", output="gs://b/run/model", holdout="gs://b/run/holdout.jsonl")
    program = command_line(settings, files)
    assert program[:3] == ["python", "-m", "gemini_sft.open_weights.train"]
    args = build_parser().parse_args(program[3:])
    assert record_from_cli(OpenWeightsSettings, args) == settings
    assert (str(args.train), str(args.output), args.validation) == ("/gcs/b/run/train.jsonl", "/gcs/b/run/model", None)
    cpu = OpenWeightsSettings(machine_type="n1-standard-8", accelerator_type="", accelerator_count=0)
    cpu_program = command_line(cpu, files)
    assert "--no-qlora" in cpu_program
    assert record_from_cli(OpenWeightsSettings, build_parser().parse_args(cpu_program[3:])) == cpu


def test_the_worker_pool_is_a_valid_vertex_spec_on_the_settings_machine() -> None:
    from google.cloud.aiplatform_v1.types import WorkerPoolSpec
    from google.protobuf import json_format

    files = JobFiles(train="gs://b/train.jsonl", output="gs://b/model")
    gpu = worker_pool_specs(OpenWeightsSettings(), "us-docker.pkg.dev/p/r/gemini-sft-gpu:1", files)
    spec = json_format.ParseDict(gpu[0], WorkerPoolSpec()._pb, ignore_unknown_fields=False)
    assert (spec.machine_spec.machine_type, spec.machine_spec.accelerator_count) == ("g2-standard-8", 1)
    assert WorkerPoolSpec.deserialize(spec.SerializeToString()).machine_spec.accelerator_type.name == "NVIDIA_L4"
    assert spec.container_spec.image_uri.endswith("gemini-sft-gpu:1") and spec.replica_count == 1
    cpu = worker_pool_specs(OpenWeightsSettings(machine_type="n1-standard-8", accelerator_type="",
                                                accelerator_count=0), "image", files)
    assert "acceleratorType" not in cpu[0]["machineSpec"]


def test_every_accelerator_choice_is_a_vertex_accelerator_type() -> None:
    from google.cloud.aiplatform_v1.types import AcceleratorType

    assert {name for name in ACCELERATOR_TYPES if name} <= {item.name for item in AcceleratorType}
