"""``gemini-sft compile``: write the pipeline spec.

Compile the pipeline to the YAML spec submitted to Vertex AI Pipelines.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from gemini_sft.cli.common import add_command, add_repeatable


def register(subparsers: Any) -> None:
    """Add the ``compile`` sub-command."""
    from gemini_sft.components.base import DEFAULT_IMAGE
    from gemini_sft.pipelines.compiler import DEFAULT_SPEC_PATH

    parser = add_command(subparsers, "compile", _compile, "compile the pipeline to a Vertex AI Pipelines spec", __doc__)
    parser.add_argument("--image", default=DEFAULT_IMAGE, help=f"component image (default {DEFAULT_IMAGE})")
    parser.add_argument("--output", type=Path, default=DEFAULT_SPEC_PATH, help=f"spec path (default {DEFAULT_SPEC_PATH})")
    add_repeatable(parser, "--notify", "EMAIL", "email the run's final state to this address (repeatable; Vertex AI only)")
    from gemini_sft.pipelines.open_weights_step import DEFAULT_GPU_IMAGE, TrainingMachine

    machine = TrainingMachine()
    parser.add_argument("--gpu-image", default=DEFAULT_GPU_IMAGE,
                        help=f"image of the open-weights training job (default {DEFAULT_GPU_IMAGE})")
    parser.add_argument("--gpu-machine-type", default=machine.machine_type,
                        help=f"machine of the open-weights training job (default {machine.machine_type})")
    parser.add_argument("--gpu-accelerator-type", default=machine.accelerator_type,
                        help=f"its GPU type (default {machine.accelerator_type})")
    parser.add_argument("--gpu-accelerator-count", type=int, default=machine.accelerator_count,
                        help=f"its GPU count (default {machine.accelerator_count})")


def _compile(args: argparse.Namespace) -> int:
    from gemini_sft.pipelines.compiler import compile_pipeline

    from gemini_sft.pipelines.open_weights_step import TrainingMachine

    machine = TrainingMachine(args.gpu_machine_type, args.gpu_accelerator_type, args.gpu_accelerator_count)
    path = compile_pipeline(output=args.output, image=args.image, notification_emails=args.notify,
                            gpu_image=args.gpu_image, training_machine=machine)
    print(f"Wrote {path}")
    return 0
