"""Compiling the pipeline to the spec users submit to Vertex AI Pipelines."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

from kfp import compiler

from gemini_sft.components.base import DEFAULT_IMAGE
from gemini_sft.pipelines.gemini_sft_pipeline import build_pipeline
from gemini_sft.pipelines.open_weights_step import DEFAULT_GPU_IMAGE, TrainingMachine

log = logging.getLogger(__name__)

# Relative to the repository root; `gemini-sft compile` writes here by default.
DEFAULT_SPEC_PATH = Path("compiled/gemini_sft_pipeline.yaml")


def compile_pipeline(
    output: Path = DEFAULT_SPEC_PATH,
    image: str = DEFAULT_IMAGE,
    notification_emails: Sequence[str] = (),
    gpu_image: str = DEFAULT_GPU_IMAGE,
    training_machine: TrainingMachine | None = None,
) -> Path:
    """Write the pipeline spec (YAML) for components running in ``image``; returns its path.

    Args:
        output: the spec file to write.
        image: the component image.
        notification_emails: recipients of the end-of-run email (none: no email step).
        gpu_image: the image of the open-weights training custom job.
        training_machine: that job's machine and GPUs (default: one NVIDIA L4 on g2-standard-8).
    """
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(
        pipeline_func=build_pipeline(image=image, notification_emails=notification_emails, gpu_image=gpu_image,
                                     training_machine=training_machine),
        package_path=str(output),
    )
    log.info("Wrote pipeline spec %s (image %s)", output, image)
    return output
