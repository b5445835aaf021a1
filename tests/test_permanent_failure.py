"""A permanent error inside the tune step is not repeated by its retries; other failures still are retried.

Covered three ways: the marker on its own, the tune component's function over
real HTTP against the stand-in, and a kfp.local pipeline whose tune task is
retried by KFP itself (which shows that the attempts share the output folder).
"""

import json
import warnings
from pathlib import Path

import pytest
from kfp import dsl, local

from gemini_sft.errors import TransientApiError, TuningSettingsError, VertexRequestError
from gemini_sft.permanent_failure import MARKER_NAME, RETRY_NOTE, fail_fast_when_retried
from gemini_sft.standin import VertexStandIn
from tune_step import run_step, write_splits

INPUTS = {"epochs": 3, "adapter_size": 4, "train": "gs://b/train.jsonl"}


def test_a_permanent_error_is_recorded_and_the_next_attempt_fails_at_once(tmp_path: Path) -> None:
    with pytest.raises(TuningSettingsError, match="adapter_size 3"):
        with fail_fast_when_retried(tmp_path, INPUTS):
            raise TuningSettingsError("adapter_size 3 is not allowed")
    assert json.loads((tmp_path / MARKER_NAME).read_text())["error"] == "TuningSettingsError"

    ran = []
    with pytest.raises(TuningSettingsError) as raised:
        with fail_fast_when_retried(tmp_path, INPUTS):
            ran.append(True)
    assert ran == []
    assert "adapter_size 3 is not allowed" in str(raised.value) and RETRY_NOTE in str(raised.value)


def test_other_inputs_run_and_a_success_removes_the_marker(tmp_path: Path) -> None:
    with pytest.raises(TuningSettingsError):
        with fail_fast_when_retried(tmp_path, INPUTS):
            raise TuningSettingsError("adapter_size 3 is not allowed")
    ran = []
    with fail_fast_when_retried(tmp_path, {**INPUTS, "adapter_size": 8}):
        ran.append(True)
    assert ran == [True]
    assert not (tmp_path / MARKER_NAME).exists()


def test_a_transient_error_is_left_to_the_retry(tmp_path: Path) -> None:
    with pytest.raises(TransientApiError):
        with fail_fast_when_retried(tmp_path, INPUTS):
            raise TransientApiError("503 UNAVAILABLE", 503)
    assert not (tmp_path / MARKER_NAME).exists()
    ran = []
    with fail_fast_when_retried(tmp_path, INPUTS):
        ran.append(True)
    assert ran == [True]


def step_params(standin: VertexStandIn, **overrides: object) -> dict[str, object]:
    return {
        "project": "p", "location": "us-central1", "api_endpoint": standin.base_url,
        "pipeline_run": "gemini-sft-pipeline-20261201", "dataset_hash": "0f" * 20,
        "poll_interval_seconds": 0.01, "max_wait_hours": 0.01, **overrides,
    }


def test_a_request_vertex_refused_for_good_is_not_sent_again_by_the_retry(
    standin: VertexStandIn, tmp_path: Path
) -> None:
    params = step_params(standin)
    standin.fail_next(1, 403)
    with pytest.raises(VertexRequestError, match="403"):
        run_step(tmp_path, **params)
    sent = len(standin.requests)
    assert sent == 1

    with pytest.raises(VertexRequestError) as raised:
        run_step(tmp_path, **params)
    assert RETRY_NOTE in str(raised.value)
    assert len(standin.requests) == sent  # the retried attempt called nothing

    outputs, *_ = run_step(tmp_path, **{**params, "epochs": 2})  # changed settings are not blocked
    assert outputs.tuning_job
    assert not (tmp_path / "out" / MARKER_NAME).exists()


def test_kfp_retries_of_the_tune_task_repeat_a_permanent_failure_without_calling_vertex(
    standin: VertexStandIn, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from gemini_sft.components.tune import tune_model_op

    train, validation = write_splits(tmp_path / "data")
    params = step_params(standin)

    @dsl.pipeline(name="tune-retried")
    def tune_retried() -> None:
        train_data = dsl.importer(artifact_uri=str(train), artifact_class=dsl.Dataset, reimport=False)
        validation_data = dsl.importer(artifact_uri=str(validation), artifact_class=dsl.Dataset, reimport=False)
        task = tune_model_op(train=train_data.output, validation=validation_data.output, **params)
        task.set_retry(num_retries=2, backoff_duration="0s", backoff_factor=1.0)

    standin.fail_next(1, 403)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"),
               raise_on_error=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # kfp.local: the component's image is not used by the subprocess runner
        tune_retried()
    assert len(standin.requests) == 1  # three attempts, one request: the refused one
    # Attempts 2 and 3 failed on the marker, before building a client.
    assert capfd.readouterr().out.count("not repeating a permanent failure of an earlier attempt") == 2
    (marker,) = (tmp_path / "root").rglob(MARKER_NAME)
    assert json.loads(marker.read_text())["error"] == "VertexRequestError"
