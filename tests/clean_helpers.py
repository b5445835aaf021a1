"""Shared helpers of the clean-stage tests: write raw files, run the core, read the outputs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gemini_sft.dataset.clean import clean_dataset
from gemini_sft.dataset.report import CleanReport
from gemini_sft.dataset.settings import CleanConfig, SplitPaths
from gemini_sft.examples import evaluation_case

SPLITS = ("train", "validation", "holdout")


def jsonl(*records: Any) -> str:
    """JSONL text of ``records``; strings are written as they are (raw lines)."""
    return "".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in records)


def run_clean(tmp_path: Path, text: str | bytes, name: str = "raw.jsonl", **settings: Any) -> tuple[CleanReport, Path]:
    """Write ``text`` to ``tmp_path/name``, clean it into ``tmp_path/out``; returns (report, out dir)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    source = tmp_path / name
    source.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    out = tmp_path / "out"
    report = clean_dataset(source, SplitPaths.in_directory(out), CleanConfig(**settings))
    return report, out


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Parsed lines of a JSONL file."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def kept_examples(out: Path) -> dict[str, list[dict[str, Any]]]:
    """Examples per split."""
    return {split: read_jsonl(out / f"{split}.jsonl") for split in SPLITS}


def all_kept(out: Path) -> list[dict[str, Any]]:
    """Every kept example, splits concatenated."""
    return [example for examples in kept_examples(out).values() for example in examples]


def rejected(out: Path) -> list[dict[str, Any]]:
    """The rejected rows."""
    return read_jsonl(out / "rejected.jsonl")


def prompt_and_response(example: dict[str, Any]) -> tuple[str, str]:
    """The user text and the reference answer of a single-turn Gemini example."""
    case = evaluation_case(example)
    return case.prompt_text, case.reference


def pair(prompt: str, response: str) -> dict[str, str]:
    """An input/output record."""
    return {"input": prompt, "output": response}
