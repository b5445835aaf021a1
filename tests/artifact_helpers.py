"""Output artifacts for calling a component's Python function directly in a test."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kfp import dsl
from kfp.dsl.types import type_annotations


def output_artifacts(component: Callable[..., Any], folder: Path) -> dict[str, dsl.Artifact]:
    """One artifact per ``Output[...]`` parameter of ``component``, of that parameter's type, at ``folder / name``.

    Args:
        component: the component's function, or a built component (its ``python_func`` is read).
        folder: where the artifacts' files go.
    """
    function = getattr(component, "python_func", component)
    artifacts = {}
    for name, parameter in inspect.signature(function).parameters.items():
        if type_annotations.is_artifact_wrapped_in_Output(parameter.annotation):
            artifact_class = type_annotations.get_io_artifact_class(parameter.annotation)
            artifacts[name] = artifact_class(uri=str(folder / name))
    return artifacts
