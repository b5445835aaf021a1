"""What the tune step tells about training: sub-states and wait warnings, data stats, curves, overfitting, checkpoints."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import pytest

from gemini_sft import tune
from gemini_sft.errors import TransientApiError, TuningSettingsError, VertexRequestError
from gemini_sft.tune.curves import OVERFITTING_MARGIN, LossCurves, overfitting_verdict, value_at_step
from gemini_sft.dataset.source_lines import SourceLines, SplitSourceLines
from gemini_sft.tune.data_stats import TuningDataStats, locate_truncated_examples
from gemini_sft.tune.stage import read_loss_curves
from gemini_sft.tune.sub_states import WAITING_FOR_CAPACITY, WAITING_FOR_QUOTA, SubStateRecorder
from tune_fakes import LOCATION, PROJECT, FakeClock, FakeTuningService

TUNING = "TUNING_JOB_STATE_TUNING"


def _curves(eval_values: list[float], train_values: list[float] | None = None) -> LossCurves:
    """Eval points at steps 10, 20, ...; train points every 5 steps, falling unless given."""
    steps = 10 * len(eval_values)
    train = train_values or [2.0 - 0.01 * k for k in range(steps // 5)]
    return LossCurves(train=tuple((5 * (k + 1), v) for k, v in enumerate(train)),
                      eval=tuple((10 * (k + 1), v) for k, v in enumerate(eval_values)))


# -- overfitting -------------------------------------------------------------------------------------------


def test_overfitting_flagged_when_eval_is_lowest_before_the_last_epoch_and_ends_above_the_margin() -> None:
    # 3 epochs over 60 steps: the last epoch starts at step 40; lowest eval at 20.
    verdict = overfitting_verdict(_curves([1.0, 0.5, 0.6, 0.6, 0.62, 0.7]), epochs=3)
    assert verdict.overfitting and verdict.known and verdict.best_eval_step == 20
    assert "Overfitting" in verdict.message and "earlier checkpoint" in verdict.message


@pytest.mark.parametrize("rise, flagged", [(OVERFITTING_MARGIN * 0.5, False), (OVERFITTING_MARGIN * 1.5, True)])
def test_the_margin_decides_on_both_sides(rise: float, flagged: bool) -> None:
    best = 0.5
    verdict = overfitting_verdict(_curves([1.0, best, 0.51, 0.51, 0.51, best * (1 + rise)]), epochs=3)
    assert verdict.overfitting is flagged


def test_no_overfitting_when_the_lowest_eval_is_in_the_last_epoch() -> None:
    verdict = overfitting_verdict(_curves([1.0, 0.9, 0.8, 0.7, 0.5, 0.6]), epochs=3)
    assert not verdict.overfitting and verdict.known and "No overfitting" in verdict.message


def test_no_overfitting_when_the_train_loss_stopped_falling() -> None:
    flat_train = [0.4] * 12
    verdict = overfitting_verdict(_curves([1.0, 0.5, 0.6, 0.6, 0.62, 0.7], flat_train), epochs=3)
    assert not verdict.overfitting


def test_overfitting_cannot_be_judged_without_eval_curve() -> None:
    verdict = overfitting_verdict(LossCurves(train=((1, 1.0), (2, 0.5))), epochs=3)
    assert not verdict.known and "cannot be judged" in verdict.message


def test_value_at_step_takes_the_last_point_at_or_before_it() -> None:
    points = ((10, 1.0), (20, 0.5))
    assert [value_at_step(points, s) for s in (5, 10, 15, 25, None)] == [None, 1.0, 1.0, 0.5, None]


def test_curves_artifact_round_trips_and_drops_non_finite_values() -> None:
    curves = LossCurves.from_series({"/train_total_loss": [(2, 0.5), (1, 1.0), (3, float("nan"))],
                                     "/eval_total_loss": [(2, 0.7)], "/other": [(1, 9.0)]})
    document = json.loads(json.dumps(curves.as_json()))
    assert document["train"] == [[1, 1.0], [2, 0.5]] and document["eval"] == [[2, 0.7]]
    assert LossCurves.from_json(document) == curves


# -- sub-states and waits ----------------------------------------------------------------------------------


def test_a_long_wait_for_quota_warns_once_naming_the_quota_and_region() -> None:
    recorder = SubStateRecorder("projects/p/locations/europe-west4/tuningJobs/7", "europe-west4",
                                warn_after_minutes=10, wall_clock=lambda: "2026-12-01T00:00:00Z")
    recorder.observe(WAITING_FOR_QUOTA, 0.0)
    recorder.observe(WAITING_FOR_QUOTA, 9 * 60.0)
    assert recorder.warnings == []
    recorder.observe(WAITING_FOR_QUOTA, 11 * 60.0)
    recorder.observe(WAITING_FOR_QUOTA, 20 * 60.0)
    recorder.observe(TUNING, 21 * 60.0)
    recorder.finish(30 * 60.0)
    assert len(recorder.warnings) == 1
    assert "quota" in recorder.warnings[0] and "europe-west4" in recorder.warnings[0]
    assert [(s.sub_state, s.seconds) for s in recorder.spans] == [(WAITING_FOR_QUOTA, 1260.0), (TUNING, 540.0)]


def test_a_wait_for_capacity_says_capacity_and_zero_minutes_never_warns() -> None:
    warned = SubStateRecorder("j", "us-central1", warn_after_minutes=1)
    silent = SubStateRecorder("j", "us-central1", warn_after_minutes=0)
    for recorder in (warned, silent):
        recorder.observe(WAITING_FOR_CAPACITY, 0.0)
        recorder.finish(3600.0)
    assert "hardware capacity" in warned.warnings[0] and silent.warnings == []


def test_quota_wait_warning_minutes_must_not_be_negative() -> None:
    with pytest.raises(TuningSettingsError, match="quota_wait_warning_minutes"):
        tune.TuningSettings(quota_wait_warning_minutes=-1)


class _SubStateService(FakeTuningService):
    """Jobs report WAITING_FOR_QUOTA for their first reads, then TUNING; they end after ``reads`` gets."""

    def __init__(self, quota_reads: int, reads: int, stats: TuningDataStats | None = None) -> None:
        running = (tune.STATE_RUNNING,) * (reads - 1)
        super().__init__(states=(tune.STATE_PENDING, *running, tune.STATE_SUCCEEDED))
        self.quota_reads, self.stats = quota_reads, stats

    def get(self, name: str) -> tune.JobSnapshot:
        snapshot = super().get(name)
        reads = self.count("get")
        sub_state = WAITING_FOR_QUOTA if reads <= self.quota_reads else TUNING
        job = replace(snapshot, tuning_job_state="" if snapshot.has_ended else sub_state,
                      experiment="projects/p/locations/us-central1/metadataStores/default/contexts/e1",
                      data_stats=self.stats)
        self.jobs[name].snapshot = job
        return job


class _Curves:
    def __init__(self, curves: LossCurves | Exception) -> None:
        self.curves, self.calls = curves, 0

    def read_curves(self, experiment: str) -> LossCurves:
        self.calls += 1
        if isinstance(self.curves, Exception):
            raise self.curves
        return self.curves


def _run(service: FakeTuningService, reader: _Curves | None, tmp_path: Path, **settings: object) -> tune.TuningOutcome:
    clock = FakeClock()
    train = tmp_path / "train.jsonl"
    train.write_text('{"a": 1}\n\n{"a": 2}\n{"a": 3}\n')
    return tune.run_tuning(
        tune.TuningSettings(pipeline_run="run-1", **settings), tune.TuningData(str(train)), service,
        project=PROJECT, location=LOCATION, uses_local_server=True, handle_sigterm=False,
        watch=tune.WatchSettings(max_poll_seconds=60, initial_poll_seconds=60, jitter_fraction=0),
        clock=clock, sleep=clock.sleep, curve_reader=reader, training_file=train,
    )


def test_a_job_waiting_for_quota_too_long_warns_in_the_outcome_and_summary(tmp_path: Path) -> None:
    outcome = _run(_SubStateService(quota_reads=4, reads=6), _Curves(LossCurves()), tmp_path,
                   quota_wait_warning_minutes=2)
    assert len(outcome.wait_warnings) == 1 and LOCATION in outcome.wait_warnings[0]
    assert [s.sub_state for s in outcome.sub_states] == [WAITING_FOR_QUOTA, TUNING]
    summary = tune.render_summary(outcome, tune.TuningSettings())
    assert "**Warning:**" in summary and "WAITING_FOR_QUOTA" in summary
    assert outcome.artifact_metadata()["wait_warnings"] == list(outcome.wait_warnings)


def test_a_short_wait_does_not_warn(tmp_path: Path) -> None:
    outcome = _run(_SubStateService(quota_reads=1, reads=4), _Curves(LossCurves()), tmp_path,
                   quota_wait_warning_minutes=30)
    assert outcome.wait_warnings == ()


# -- data stats ----------------------------------------------------------------------------------------------


def test_without_source_lines_truncated_examples_get_their_training_split_lines_and_say_so(tmp_path: Path) -> None:
    stats = TuningDataStats(example_count=3, total_truncated_example_count=5, truncated_example_indices=(2, 3),
                            dropped_example_reasons=("The example is too long and was truncated.", "too many images"))
    outcome = _run(_SubStateService(quota_reads=0, reads=2, stats=stats), _Curves(LossCurves()), tmp_path)
    train = str(tmp_path / "train.jsonl")
    # The file has a blank second line: example 2 is on line 3, example 3 on line 4.
    assert [(t.index, t.source, t.line, t.in_raw_file, t.source_line) for t in outcome.truncated_examples] == [
        (2, train, 3, False, None), (3, train, 4, False, None)]
    assert "gemini-2.5-flash takes at most 131,072 tokens" in outcome.truncated_examples[0].fix and "Shorten" in outcome.truncated_examples[0].fix
    assert "remove it" in outcome.truncated_examples[1].fix
    summary = tune.render_summary(outcome, tune.TuningSettings())
    assert f"| 2 | `{train}` | 3 | The example is too long and was truncated. |" in summary and "of 5" in summary
    assert "lines are of the training split file" in summary
    assert outcome.artifact_metadata()["truncated_examples"][0]["training_line"] == 3


def _source_lines(train: Path, lines: list[int], sha256: str | None = None) -> SourceLines:
    digest = sha256 if sha256 is not None else hashlib.sha256(train.read_bytes()).hexdigest()
    return SourceLines("gs://b/raw.jsonl", "jsonl", {"train": SplitSourceLines(len(lines), digest, lines)})


def test_source_lines_name_the_raw_file_line_of_each_truncated_example(tmp_path: Path) -> None:
    stats = TuningDataStats(truncated_example_indices=(1, 3, 9), dropped_example_reasons=("a", "b", "c"))
    train = tmp_path / "t.jsonl"
    train.write_text("x\ny\nz\n")
    found = locate_truncated_examples(stats, train, "gs://b/train.jsonl", _source_lines(train, [10, 12, 17]))
    assert [(t.index, t.source, t.line, t.in_raw_file, t.training_line) for t in found] == [
        (1, "gs://b/raw.jsonl", 10, True, 1), (3, "gs://b/raw.jsonl", 17, True, 3),
        (9, "gs://b/train.jsonl", None, False, None)]


@pytest.mark.parametrize("lines, sha256", [([10, 12], None), ([10, 12, 17], "0" * 64)])
def test_source_lines_of_another_training_file_are_not_used(
    tmp_path: Path, lines: list[int], sha256: str | None
) -> None:
    stats = TuningDataStats(truncated_example_indices=(2,), dropped_example_reasons=("a",))
    train = tmp_path / "t.jsonl"
    train.write_text("x\ny\nz\n")
    (found,) = locate_truncated_examples(stats, train, "gs://b/train.jsonl", _source_lines(train, lines, sha256))
    assert (found.source, found.line, found.in_raw_file, found.source_line) == ("gs://b/train.jsonl", 2, False, None)


def test_unreadable_source_lines_or_training_file_fall_back_without_failing(tmp_path: Path) -> None:
    broken = tmp_path / "source_lines.json"
    broken.write_text('{"version": 1, "splits": {"train": {"rows": 2, "lines": [1]}}}')
    assert tune.load_source_lines(broken) is None and tune.load_source_lines(tmp_path / "missing.json") is None
    assert tune.load_source_lines(None) is None
    stats = TuningDataStats(truncated_example_indices=(1,), dropped_example_reasons=("",))
    (found,) = locate_truncated_examples(stats, tmp_path / "missing.jsonl", "gs://b/train.jsonl")
    assert (found.reason, found.source, found.line) == ("no reason given", "gs://b/train.jsonl", None)


# -- curves in the outcome ----------------------------------------------------------------------------------


def test_checkpoints_carry_the_losses_at_their_steps(tmp_path: Path) -> None:
    service = _SubStateService(quota_reads=0, reads=2)
    curves = LossCurves(train=((10, 1.0), (20, 0.5)), eval=((10, 1.1), (20, 0.9)))
    outcome = _run(service, _Curves(curves), tmp_path)
    outcome = replace(outcome, checkpoints=(tune.Checkpoint("1", 1, 10, "e1"), tune.Checkpoint("2", 2, 20, "e2")))
    listed = outcome.artifact_metadata()["checkpoints"]
    assert [(c["checkpoint_id"], c["train_loss"], c["eval_loss"]) for c in listed] == [("1", 1.0, 1.1), ("2", 0.5, 0.9)]
    assert "data:image/svg+xml;base64," in tune.render_summary(outcome, tune.TuningSettings())


def test_a_job_whose_experiment_has_no_curves_goes_on_and_says_so(tmp_path: Path) -> None:
    outcome = _run(_SubStateService(0, 2), _Curves(LossCurves.missing("Experiment e1 has no TensorBoard run.")),
                   tmp_path)
    assert outcome.loss_curves.empty and outcome.overfitting is None
    assert "No loss curves: Experiment e1 has no TensorBoard run." in tune.render_summary(outcome, tune.TuningSettings())


def test_a_refused_curve_read_goes_on_and_a_transient_one_is_retried(tmp_path: Path) -> None:
    refused = _run(_SubStateService(0, 2), _Curves(VertexRequestError("403 no permission", 403)), tmp_path)
    assert refused.loss_curves.empty and "403 no permission" in refused.loss_curves.note
    job = tune.JobSnapshot(name="j", state=tune.STATE_SUCCEEDED, experiment="e")
    flaky = _Curves(TransientApiError("503", 503))
    assert read_loss_curves(flaky, job, sleep=lambda s: None).empty and flaky.calls == tune.API_RETRY.max_attempts
    assert "names no Experiment" in read_loss_curves(flaky, replace(job, experiment="")).note


def test_write_step_outputs_writes_the_curves_artifact(tmp_path: Path) -> None:
    curves = LossCurves(train=((1, 1.0),), eval=((1, 1.2),))
    outcome = _run(_SubStateService(0, 2), _Curves(curves), tmp_path)
    out = tmp_path / "out"
    tune.write_step_outputs(outcome, tune.TuningSettings(), out / "model", out / "summary.md", out / "curves.json")
    assert json.loads((out / "curves.json").read_text())["eval"] == [[1, 1.2]]
