"""Truncated examples named by the raw file's line: the clean step's source lines, through the tune step
(google-genai over HTTP against the stand-in, which injects the truncations), to run_summary.json."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from artifact_helpers import output_artifacts
from clean_helpers import jsonl, pair, read_jsonl
from gemini_sft.components.clean import clean_data
from gemini_sft.contracts import find_task
from gemini_sft.dataset.formats import convert_record
from gemini_sft.examples import evaluation_case
from gemini_sft.local_run import run_local
from gemini_sft.run_summary import build_run_summary
from gemini_sft.sample_data import shipped_sample_path
from gemini_sft.standin import VertexStandIn
from kfp import dsl
from tune_step import run_step

TUNE_PARAMS = {"project": "p", "location": "us-central1", "pipeline_run": "run-lines", "poll_interval_seconds": 0.01,
               "max_wait_hours": 0.05}


def _ticket(number: int) -> str:
    return f"Ticket {number}: the printer on floor {number % 7} does not print"


def _raw_jsonl() -> str:
    """Rows the clean step drops before and between kept ones: blank lines, junk, duplicates, a conflict."""
    rows: list[Any] = ["", "not json at all"]
    for number in range(40):
        rows.append(pair(_ticket(number), f"Category: hardware. Answer {number}."))
        if number % 9 == 3:
            rows.append(pair(_ticket(number), f"Category: hardware. Answer {number}."))  # duplicate
        if number % 11 == 5:
            rows.append("")
    rows.insert(10, pair("Ticket conflict", "Category: a."))
    rows.insert(20, pair("Ticket conflict", "Category: b."))  # conflict_policy drop_all drops both
    rows.append(pair("", "Category: none."))  # empty prompt
    return jsonl(*rows)


def _raw_csv() -> str:
    """A CSV whose answers span two lines each (quoted), so records and lines differ."""
    lines = ["input,output"]
    for number in range(40):
        lines.append(f'"{_ticket(number)}","Category: hardware.\nAnswer {number}."')
        if number % 8 == 2:
            lines.append(f'"{_ticket(number)}","Category: hardware.\nAnswer {number}."')  # duplicate
    return "\n".join(lines) + "\n"


def _line_where(raw: Path, prompt: str) -> int:
    """The 1-based line of ``raw`` where the first row holding ``prompt`` starts (the prompts are unique)."""
    for number, line in enumerate(raw.read_text(encoding="utf-8").splitlines(), start=1):
        if _ticket_in(line) == prompt:
            return number
    raise AssertionError(f"{prompt!r} is not in {raw}")


def _ticket_in(line: str) -> str | None:
    if line.startswith("{"):
        return json.loads(line).get("input")
    return line.split('","')[0].strip('"') if line.startswith('"') else None


def _clean(raw: Path, workdir: Path) -> dict[str, dsl.Artifact]:
    outputs = output_artifacts(clean_data, workdir)
    clean_data(raw_data=dsl.Dataset(uri=str(raw)), **outputs)
    return outputs


@pytest.mark.parametrize("name, text", [("raw.jsonl", _raw_jsonl()), ("raw.csv", _raw_csv())])
def test_truncated_examples_name_the_raw_file_line_after_rows_were_dropped(
    standin: VertexStandIn, tmp_path: Path, name: str, text: str
) -> None:
    raw = tmp_path / name
    raw.write_text(text, encoding="utf-8")
    workdir = tmp_path / "step"
    outputs = _clean(raw, workdir)  # the train and validation splits land where the tune step reads them
    train = read_jsonl(Path(outputs["train"].path))
    truncated = [1, 5, len(train)]
    standin.truncated_examples = truncated

    _, model, summary, _ = run_step(workdir, api_endpoint=standin.base_url, source_lines=outputs["source_lines"],
                                    **TUNE_PARAMS)

    metadata = json.loads(Path(model.path).read_text())
    named = metadata["truncated_examples"]
    expected = [_line_where(raw, evaluation_case(train[index - 1]).prompt_text) for index in truncated]
    assert [(t["index"], t["source"], t["line"], t["in_raw_file"]) for t in named] == [
        (index, str(raw), line, True) for index, line in zip(truncated, expected)]
    assert any(t["line"] != t["index"] for t in named)  # rows dropped before: split index and raw line differ
    assert all("Shorten the example" in t["fix"] and "gemini-2.5-flash takes at most 131,072 tokens" in t["fix"]
               for t in named)
    markdown = Path(summary.path).read_text()
    assert f"| 5 | `{raw}` | {expected[1]} | " in markdown and "Lines are of the raw file" in markdown
    assert "How to fix:" in markdown

    document = build_run_summary({}, {}, metadata, {})
    assert [(t["split_index"], t["source"], t["line"]) for t in document["tuning"]["truncated_examples"]] == [
        (index, str(raw), line) for index, line in zip(truncated, expected)]
    assert all(t["reason"] and t["fix"] for t in document["tuning"]["truncated_examples"])


def test_without_the_clean_steps_source_lines_the_training_split_lines_are_named(
    standin: VertexStandIn, tmp_path: Path
) -> None:
    raw = tmp_path / "raw.jsonl"
    raw.write_text(_raw_jsonl(), encoding="utf-8")
    workdir = tmp_path / "step"
    _clean(raw, workdir)
    standin.truncated_examples = [4]

    _, model, summary, _ = run_step(workdir, api_endpoint=standin.base_url, **TUNE_PARAMS)

    (named,) = json.loads(Path(model.path).read_text())["truncated_examples"]
    assert (named["source"], named["line"], named["in_raw_file"]) == (str(workdir / "train.jsonl"), 4, False)
    assert "lines are of the training split file" in Path(summary.path).read_text()


def test_the_pipeline_hands_the_clean_steps_source_lines_to_the_tune_step(compiled_spec_path: Path) -> None:
    spec = yaml.safe_load(compiled_spec_path.read_text())
    tune_inputs = find_task(spec, "tune-model")["inputs"]["artifacts"]
    assert tune_inputs["source_lines"] == {"componentInputArtifact": "pipelinechannel--clean-data-source_lines"}


@pytest.mark.e2e
def test_a_local_run_names_the_raw_lines_of_truncated_examples_in_its_run_summary(
    standin: VertexStandIn, tmp_path: Path
) -> None:
    standin.truncated_examples = [1, 7, 50]
    result = run_local(output_dir=tmp_path / "run", standin=standin, console=io.StringIO())

    clean_dir = result.run_dir / "clean-data"
    train = read_jsonl(clean_dir / "train.jsonl")
    raw_lines = shipped_sample_path().read_text(encoding="utf-8").splitlines()
    rejected_lines = {row["line"] for row in read_jsonl(clean_dir / "rejected.jsonl")}
    named = json.loads((result.output_dir / "run_summary.json").read_text())["tuning"]["truncated_examples"]
    assert [(t["split_index"], t["source"], t["in_raw_file"]) for t in named] == [
        (index, str(shipped_sample_path().resolve()), True) for index in (1, 7, 50)]
    for item in named:
        # The raw line holds the row the clean step kept as that training example, so it is no rejected line.
        raw = json.loads(raw_lines[item["line"] - 1])
        assert convert_record(raw).response == evaluation_case(train[item["split_index"] - 1]).reference
        assert item["line"] not in rejected_lines and item["reason"] and "Shorten" in item["fix"]
    assert any(item["line"] != item["split_index"] for item in named)
    assert f"`{shipped_sample_path().resolve()}`" in (result.output_dir / "tuning_summary.md").read_text()
