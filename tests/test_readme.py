"""The README shows what the code does: its DAG picture and its two first-screen commands."""

from __future__ import annotations

import re
from pathlib import Path

from gemini_sft.dag import render

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")


def test_readme_dag_matches_the_compiled_spec() -> None:
    block = re.search(r"```mermaid\n(.*?)\n```", README, re.S)
    assert block, "README has no mermaid DAG"
    expected = render(REPO / "compiled" / "gemini_sft_pipeline.yaml", "mermaid").strip()
    assert block.group(1).strip() == expected, "README's DAG is stale: paste the output of `gemini-sft dag`."


def test_first_screen_gives_the_setup_commands() -> None:
    first_screen = "\n".join(README.splitlines()[:40])
    assert "make run-local" in first_screen and "make test" in first_screen
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert "make test" in ci
