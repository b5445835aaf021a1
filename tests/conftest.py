"""Shared test scaffolding: the stand-in server, the compiled spec, artifact builders."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kfp import compiler

from gemini_sft.standin import VertexStandIn

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def compiled_spec_path() -> Path:
    """The checked-in compiled pipeline spec."""
    return REPO / "compiled" / "gemini_sft_pipeline.yaml"


@pytest.fixture(scope="session")
def compile_pipeline(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Any], Path]:
    """A function that compiles a ``@dsl.pipeline`` to a YAML spec in a new temporary folder and returns its path."""

    def compile_to_yaml(pipeline: Any) -> Path:
        path = tmp_path_factory.mktemp("spec") / "pipeline.yaml"
        compiler.Compiler().compile(pipeline, str(path))
        return path

    return compile_to_yaml


@pytest.fixture()
def start_standin() -> Iterator[Callable[..., VertexStandIn]]:
    """A factory of running stand-ins: ``start_standin(**VertexStandIn options)``; all are stopped after the test."""
    with contextlib.ExitStack() as stack:
        yield lambda **options: stack.enter_context(VertexStandIn(**options))


@pytest.fixture()
def standin(start_standin: Callable[..., VertexStandIn]) -> VertexStandIn:
    """A running stand-in whose jobs move one state per poll (PENDING, RUNNING, SUCCEEDED)."""
    return start_standin(polls_per_state=1)


@pytest.fixture(scope="module")
def module_standin() -> Iterator[VertexStandIn]:
    """One stand-in shared by a test module (its state carries over from test to test)."""
    with VertexStandIn() as server:
        yield server
