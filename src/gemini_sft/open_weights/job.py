"""The training program as a Vertex AI custom job: its command line and its worker pool.

:func:`command_line` turns settings and files into the arguments of
``python -m gemini_sft.open_weights.train`` (every setting written out, so the
job's arguments alone say how it trained); :func:`worker_pool_specs` gives the
``workerPoolSpecs`` of a CustomJob (REST JSON) running it in the GPU image on
the settings' machine and accelerator. Neither imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from gemini_sft.open_weights.settings import OpenWeightsSettings

PROGRAM = ("python", "-m", "gemini_sft.open_weights.train")


@dataclass(frozen=True)
class JobFiles:
    """Where the job reads its splits and writes its output: ``gs://`` URIs (or paths); "" for no split."""

    train: str
    output: str
    validation: str = ""
    holdout: str = ""


def _option(name: str, value: Any) -> str:
    flag = "--" + name.replace("_", "-")
    if isinstance(value, bool):
        return flag if value else "--no-" + flag[2:]
    return f"{flag}={value}"


def command_line(settings: OpenWeightsSettings, job: JobFiles) -> list[str]:
    """The program and its arguments: the files, then every setting as ``--name=value``.

    Args:
        settings: the training settings.
        job: the splits and the output folder (paths or ``gs://`` URIs; the program reads those through ``/gcs``).
    """
    arguments = [*PROGRAM, f"--train={job.train}", f"--output={job.output}"]
    if job.validation:
        arguments.append(f"--validation={job.validation}")
    if job.holdout:
        arguments.append(f"--holdout={job.holdout}")
    arguments.extend(_option(item.name, getattr(settings, item.name)) for item in fields(settings))
    return arguments


def worker_pool_specs(settings: OpenWeightsSettings, image_uri: str, job: JobFiles) -> list[dict[str, Any]]:
    """A CustomJob's ``workerPoolSpecs``: one replica of the training program on the settings' machine.

    Args:
        settings: the training settings (machine type, accelerator type and count).
        image_uri: the GPU image built from Dockerfile.gpu.
        job: the splits and the output folder.
    """
    machine: dict[str, Any] = {"machineType": settings.machine_type}
    if settings.accelerator_type:
        machine["acceleratorType"] = settings.accelerator_type
        machine["acceleratorCount"] = settings.accelerator_count
    program = command_line(settings, job)
    return [
        {
            "machineSpec": machine,
            "replicaCount": "1",
            "containerSpec": {"imageUri": image_uri, "command": program[:3], "args": program[3:]},
        }
    ]
