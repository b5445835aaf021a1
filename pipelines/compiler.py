"""Compiling the pipeline to the spec users submit to Vertex AI Pipelines."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

from kfp import compiler

from gemini_sft.components.base import DEFAULT_IMAGE
from gemini_sft.pipelines.gemini_sft_pipeline import build_pipeline

log = logging.getLogger(__name__)

# Relative to the repository root; `gemini-sft compile` writes here by default.
DEFAULT_SPEC_PATH = Path("compiled/gemini_sft_pipeline.yaml")


def compile_pipeline(
    output: Path = DEFAULT_SPEC_PATH,
    image: str = DEFAULT_IMAGE,
    notification_emails: Sequence[str] = (),
) -> Path:
    """Write the pipeline spec (YAML) for components running in ``image``; returns its path."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(
        pipeline_func=build_pipeline(image=image, notification_emails=notification_emails),
        package_path=str(output),
    )
    log.info("Wrote pipeline spec %s (image %s)", output, image)
    return output
