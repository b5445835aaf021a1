"""The stand-in's checkpoints, curves, sub-states and data stats, through the real google-genai and aiplatform SDKs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest
from google.genai import errors as genai_errors
from google.genai import types
from rouge_score import rouge_scorer

from gemini_sft.dataset.clean import clean_dataset
from gemini_sft.dataset.settings import CleanConfig, SplitPaths
from gemini_sft.sample_data import shipped_sample_path
from gemini_sft.standin import VertexStandIn
from gemini_sft.standin.epochs import best_epoch
from gemini_sft.tune.curves import LossCurves, overfitting_verdict
from gemini_sft.vertex_client import AiplatformCurveReader, VertexSettings, genai_client


@pytest.fixture()
def standin(start_standin: Callable[..., VertexStandIn]) -> VertexStandIn:
    """A stand-in of its own for each test, whose tuning jobs end at their first poll."""
    return start_standin(polls_per_state=0)


@pytest.fixture(scope="module")
def splits(tmp_path_factory: pytest.TempPathFactory) -> SplitPaths:
    paths = SplitPaths.in_directory(tmp_path_factory.mktemp("sample"))
    clean_dataset(shipped_sample_path(), paths, CleanConfig())
    return paths


def _settings(standin: VertexStandIn) -> VertexSettings:
    return VertexSettings.create("p", "us-central1", standin.base_url)


def _tune(standin: VertexStandIn, splits: SplitPaths, **config: Any) -> Any:
    client = genai_client(_settings(standin))
    job = client.tunings.tune(
        base_model=config.pop("base_model", "gemini-2.5-flash"),
        training_dataset=types.TuningDataset(gcs_uri=str(splits.train)),
        config=types.CreateTuningJobConfig(
            validation_dataset=types.TuningValidationDataset(gcs_uri=str(splits.validation)), **config),
    )
    for _ in range(20):
        job = client.tunings.get(name=job.name)
        if job.has_ended:
            return job
    raise AssertionError("the job did not end")


def _validation_rouge_l(standin: VertexStandIn, endpoint: str, validation: Path) -> float:
    client = genai_client(_settings(standin))
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    scores = []
    for line in validation.read_text().splitlines():
        example = json.loads(line)
        prompt = example["contents"][0]["parts"][0]["text"]
        reference = example["contents"][1]["parts"][0]["text"]
        config = types.GenerateContentConfig(
            temperature=0, system_instruction=(example.get("systemInstruction") or {}).get("parts", [{}])[0].get("text"))
        answer = client.models.generate_content(model=endpoint, contents=prompt, config=config).text
        scores.append(scorer.score(reference, answer)["rougeL"].fmeasure)
    return sum(scores) / len(scores)


def test_each_checkpoint_has_its_own_endpoint_and_the_best_on_validation_is_not_the_last(
    standin: VertexStandIn, splits: SplitPaths
) -> None:
    job = _tune(standin, splits, epoch_count=3)
    checkpoints = job.tuned_model.checkpoints
    assert [c.epoch for c in checkpoints] == [1, 2, 3]
    assert len({c.endpoint for c in checkpoints}) == 3 and checkpoints[-1].endpoint == job.tuned_model.endpoint
    scores = {c.epoch: _validation_rouge_l(standin, c.endpoint, splits.validation) for c in checkpoints}
    assert max(scores, key=scores.get) == best_epoch(3) == 2
    assert scores[1] < scores[2] and scores[3] < scores[2]
    again = _validation_rouge_l(standin, checkpoints[2].endpoint, splits.validation)
    assert again == scores[3]  # deterministic


def test_curves_read_through_aiplatform_tell_the_same_story(standin: VertexStandIn, splits: SplitPaths) -> None:
    job = _tune(standin, splits, epoch_count=3)
    curves = AiplatformCurveReader(_settings(standin)).read_curves(job.experiment)
    steps = {c.epoch: c.step for c in job.tuned_model.checkpoints}
    lowest_step = min(curves.eval, key=lambda point: point[1])[0]
    assert lowest_step == steps[2]
    assert all(later < earlier for (_, earlier), (_, later) in zip(curves.train, curves.train[1:]))
    assert curves.train_accuracy and curves.eval_accuracy
    assert overfitting_verdict(curves, epochs=3).overfitting
    routes = standin.route_counts
    assert routes["contexts.get"] >= 1 and routes["tensorboards.batchRead"] >= 1


def test_a_job_without_curves_reads_as_missing_with_a_note(standin: VertexStandIn, splits: SplitPaths) -> None:
    standin.jobs_without_curves = True
    job = _tune(standin, splits, epoch_count=2)
    curves = AiplatformCurveReader(_settings(standin)).read_curves(job.experiment)
    assert isinstance(curves, LossCurves) and curves.empty and "no TensorBoard" in curves.note


def test_sub_states_are_played_while_running_and_truncations_reported(
    standin: VertexStandIn, splits: SplitPaths
) -> None:
    standin.sub_state_plan = [("WAITING_FOR_QUOTA", 2), ("PROCESSING_DATASET", 1), ("TUNING", 1)]
    standin.truncated_examples = [2, 5]
    client = genai_client(_settings(standin))
    job = client.tunings.tune(base_model="gemini-2.5-flash", training_dataset=types.TuningDataset(
        gcs_uri=str(splits.train)), config=types.CreateTuningJobConfig(epoch_count=1))
    seen = []
    while not job.has_ended:
        job = client.tunings.get(name=job.name)
        seen.append(job.tuning_job_state.value if job.tuning_job_state else None)
    assert seen == ["TUNING_JOB_STATE_WAITING_FOR_QUOTA"] * 2 + [
        "TUNING_JOB_STATE_PROCESSING_DATASET", "TUNING_JOB_STATE_TUNING", None]
    stats = job.tuning_data_stats.supervised_tuning_data_stats
    assert stats.truncated_example_indices == [2, 5] and stats.total_truncated_example_count == 2
    assert len(stats.dropped_example_reasons) == 2 and stats.user_input_token_distribution.max > 0
    with pytest.raises(ValueError, match="WAITING_FOR_QUOTA"):
        standin.sub_state_plan = [("WAITING", 1)]


def test_continuous_tuning_from_a_checkpoint(standin: VertexStandIn, splits: SplitPaths) -> None:
    first = _tune(standin, splits, epoch_count=3)
    source = first.tuned_model.model
    job = _tune(standin, splits, base_model=source, epoch_count=1, pre_tuned_model_checkpoint_id="2")
    assert job.has_succeeded and job.pre_tuned_model.checkpoint_id == "2"
    sent = standin.requests_to("/tuningJobs", "POST")[-1].body
    assert sent["preTunedModel"]["checkpoint_id"] == "2"
    with pytest.raises(genai_errors.APIError, match="not a checkpoint"):
        _tune(standin, splits, base_model=source, epoch_count=1, pre_tuned_model_checkpoint_id="9")


def test_tuning_job_state_is_output_only_a_create_body_carrying_it_is_refused(
    standin: VertexStandIn, splits: SplitPaths
) -> None:
    import httpx

    body = {"baseModel": "gemini-2.5-flash", "tuningJobState": "TUNING_JOB_STATE_TUNING",
            "supervisedTuningSpec": {"trainingDatasetUri": str(splits.train)}}
    answer = httpx.post(f"{standin.base_url}/v1/projects/p/locations/us-central1/tuningJobs", json=body)
    assert answer.status_code == 400 and "tuningJobState" in answer.json()["error"]["message"]
    assert standin.tuning_jobs.job_names() == []
