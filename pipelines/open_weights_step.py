"""How the pipeline builds its open-weights training step, for Vertex and for kfp.local.

On Vertex the component runs as a Vertex AI custom job on a GPU machine, in the
GPU image (Google's ``create_custom_training_job_from_component``); the machine is
part of the compiled spec (``gemini-sft compile --gpu-machine-type ...``), so the
training settings the step receives name that same machine. Locally the same
component runs in-process on CPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from gemini_sft import __version__
from gemini_sft.components.base import build_component
from gemini_sft.open_weights.settings import OpenWeightsSettings

# The image built by `make image-gpu` (Cloud Build, cloudbuild.gpu.yaml).
DEFAULT_GPU_IMAGE = f"us-central1-docker.pkg.dev/gemini-sft/gemini-sft/gemini-sft-gpu:{__version__}"
TRAINING_BOOT_DISK_GB = 200  # room for the base weights, checkpoints and the CUDA image
TRAINING_TIMEOUT = "86400s"


@dataclass(frozen=True)
class TrainingMachine:
    """The machine of the open-weights training job: Vertex machine type, GPU type and count."""

    machine_type: str = OpenWeightsSettings.machine_type
    accelerator_type: str = OpenWeightsSettings.accelerator_type
    accelerator_count: int = OpenWeightsSettings.accelerator_count

    def __post_init__(self) -> None:
        # the settings record checks the combination (family, GPU count); ConfigError names the problem
        OpenWeightsSettings(machine_type=self.machine_type, accelerator_type=self.accelerator_type,
                            accelerator_count=self.accelerator_count)

    def fields(self) -> dict[str, Any]:
        """The training settings' machine fields, as the pipeline passes them to the step."""
        return {"machine_type": self.machine_type, "accelerator_type": self.accelerator_type,
                "accelerator_count": self.accelerator_count}


LOCAL_TRAINING_MACHINE = TrainingMachine(machine_type="local-cpu", accelerator_type="", accelerator_count=0)
"""kfp.local trains on this machine's CPU."""


def open_weights_op(component: Callable, *, image: str, gpu_image: str, machine: TrainingMachine,
                    custom_job: bool) -> Callable:
    """The open-weights training step: a custom job on ``machine`` in ``gpu_image``, or the plain component.

    Args:
        component: the component function (components/train_open_weights.py).
        image: the CPU image (used when the step is not a custom job).
        gpu_image: the GPU image the custom job runs.
        machine: the custom job's machine and accelerators.
        custom_job: True on Vertex; False for kfp.local, which cannot run GCPC's custom job component.
    """
    if not custom_job:
        return build_component(component, image)
    from google_cloud_pipeline_components.v1.custom_job import create_custom_training_job_from_component

    from google_cloud_pipeline_components.v1.custom_job import CustomTrainingJobOp

    step = build_component(component, gpu_image)
    job = create_custom_training_job_from_component(
        step,
        display_name="gemini-sft-open-weights",
        machine_type=machine.machine_type,
        accelerator_type=machine.accelerator_type,
        accelerator_count=machine.accelerator_count if machine.accelerator_type else 1,
        boot_disk_size_gb=TRAINING_BOOT_DISK_GB,
        timeout=TRAINING_TIMEOUT,
    )
    _keep_descriptions(job, step, CustomTrainingJobOp)
    return job


def _keep_descriptions(job: Any, *sources: Any) -> None:
    """Give the custom job's inputs and outputs back the descriptions the conversion drops (first source wins)."""
    for kind in ("inputs", "outputs"):
        described = {}
        for source in reversed(sources):
            described.update({name: spec.description for name, spec in (getattr(source.component_spec, kind) or {})
                              .items() if spec.description})
        for name, spec in (getattr(job.component_spec, kind) or {}).items():
            if not spec.description and name in described:
                spec.description = described[name]
