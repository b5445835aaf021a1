"""The tune component over real HTTP (google-genai and google-cloud-aiplatform) against the stand-in:
sub-state warnings, truncated examples, loss curves artifact, checkpoints, continuing from a checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

from gemini_sft.standin import VertexStandIn
from gemini_sft.standin.tuning_request import proto_field
from tune_step import run_step, write_splits


def _params(standin: VertexStandIn, **overrides: object) -> dict[str, object]:
    params: dict[str, object] = {
        "project": "p", "location": "us-central1", "api_endpoint": standin.base_url,
        "pipeline_run": "run-insight", "poll_interval_seconds": 0.01, "max_wait_hours": 0.05,
    }
    params.update(overrides)
    return params


def _run(standin: VertexStandIn, workdir: Path, train_rows: int = 24, validation_rows: int = 4, **overrides: object):
    write_splits(workdir, train_rows=train_rows, validation_rows=validation_rows)
    outputs, model, summary, _ = run_step(workdir, **_params(standin, **overrides))
    return outputs, json.loads(Path(model.path).read_text()), Path(summary.path).read_text(), workdir / "out"


def test_curves_checkpoints_and_overfitting_reach_the_artifacts(standin: VertexStandIn, tmp_path: Path) -> None:
    _, metadata, summary, out = _run(standin, tmp_path)
    curves = json.loads((out / "loss_curves.json").read_text())
    assert curves["train"] and curves["eval"] and all(len(point) == 2 for point in curves["eval"])
    checkpoints = metadata["checkpoints"]
    assert [c["epoch"] for c in checkpoints] == [1, 2, 3]
    assert len({c["endpoint"] for c in checkpoints}) == 3
    assert min(checkpoints, key=lambda c: c["eval_loss"])["epoch"] == 2
    assert all(c["train_loss"] is not None for c in checkpoints)
    assert metadata["overfitting"]["overfitting"] and "Overfitting" in summary
    assert metadata["experiment"].endswith("/contexts/tuning-experiment-" + metadata["tuning_job"].rsplit("/", 1)[-1])
    assert "data:image/svg+xml;base64," in summary and standin.route_counts["tensorboards.batchRead"] >= 1


def test_a_job_without_curves_finishes_and_says_so(standin: VertexStandIn, tmp_path: Path) -> None:
    standin.jobs_without_curves = True
    outputs, metadata, summary, out = _run(standin, tmp_path)
    assert outputs.endpoint and metadata["overfitting"] is None
    assert "No loss curves" in summary and "no TensorBoard" in metadata["loss_curves_note"]
    assert json.loads((out / "loss_curves.json").read_text())["train"] == []


def test_a_long_quota_wait_is_warned_about_with_the_region(standin: VertexStandIn, tmp_path: Path) -> None:
    standin.sub_state_plan = [("WAITING_FOR_QUOTA", 5), ("TUNING", 1), ("POST_PROCESSING", 1)]
    _, metadata, summary, _ = _run(standin, tmp_path, quota_wait_warning_minutes=0.0001)
    (warning,) = metadata["wait_warnings"]
    assert "quota" in warning and "us-central1" in warning and f"> **Warning:** {warning}" in summary
    assert [s["sub_state"] for s in metadata["sub_states"]] == [
        "TUNING_JOB_STATE_WAITING_FOR_QUOTA", "TUNING_JOB_STATE_TUNING", "TUNING_JOB_STATE_POST_PROCESSING"]


def test_truncated_examples_are_reported_with_their_lines(standin: VertexStandIn, tmp_path: Path) -> None:
    standin.truncated_examples = [3, 10]
    _, metadata, summary, _ = _run(standin, tmp_path)
    assert [(t["index"], t["training_line"]) for t in metadata["truncated_examples"]] == [(3, 3), (10, 10)]
    assert metadata["data_stats"]["total_truncated_example_count"] == 2
    assert "Truncated or dropped examples: 2" in summary


def test_export_last_checkpoint_only_lists_one_checkpoint(standin: VertexStandIn, tmp_path: Path) -> None:
    _, metadata, summary, _ = _run(standin, tmp_path, export_last_checkpoint_only=True)
    assert [c["epoch"] for c in metadata["checkpoints"]] == [3]
    assert "One checkpoint only" in summary


def test_continuous_tuning_from_a_chosen_checkpoint(standin: VertexStandIn, tmp_path: Path) -> None:
    _, first, _, _ = _run(standin, tmp_path / "first")
    _run(standin, tmp_path / "second", pipeline_run="run-2", continuous_from_model=first["tuned_model"],
         start_checkpoint_id="2")
    body = [r.body for r in standin.requests if r.route == "tuningJobs.create"][-1]
    assert proto_field(body["preTunedModel"], "checkpointId") == "2"


def test_a_checkpoint_without_a_start_model_is_not_sent(standin: VertexStandIn, tmp_path: Path) -> None:
    _run(standin, tmp_path, start_checkpoint_id="2")
    body = [r.body for r in standin.requests if r.route == "tuningJobs.create"][-1]
    assert "preTunedModel" not in body
