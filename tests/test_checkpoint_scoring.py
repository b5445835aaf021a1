"""Choosing the checkpoint on validation: scores per endpoint, the rules, the sample, a job without checkpoints."""

from __future__ import annotations

import pytest

from gemini_sft.checkpoint_scoring import CheckpointSelectionSettings, choose_on_validation, validation_sample
from gemini_sft.errors import ConfigError, GenerationCallError
from gemini_sft.evaluation.generation import GenerationResult
from gemini_sft.evaluation.holdout import HoldoutCase
from gemini_sft.examples import EvaluationCase

REFERENCES = ["the cat sat on the mat", "dogs bark at night", "rain falls in spring", "birds sing at dawn"]


def _cases(n: int = 4) -> list[HoldoutCase]:
    cases = []
    for i in range(n):
        reference = REFERENCES[i % len(REFERENCES)]
        contents = [{"role": "user", "parts": [{"text": f"q{i}"}]}]
        case = EvaluationCase(contents=contents, reference=reference, system_instruction=None)
        cases.append(HoldoutCase(example_id=f"ex{i}", case=case))
    return cases


def _model(losses=(1.0, 0.8, 0.9)) -> dict:
    return {
        "endpoint": "endpoints/3",
        "checkpoints": [
            {"checkpoint_id": str(e), "epoch": e, "step": 10 * e, "endpoint": f"endpoints/{e}", "eval_loss": loss}
            for e, loss in zip((1, 2, 3), losses)
        ],
    }


class _Endpoint:
    """Answers with the reference's first ``words`` words; counts its calls."""

    def __init__(self, words: int, fail: bool = False) -> None:
        self.words, self.fail, self.calls = words, fail, 0

    def __call__(self, case: EvaluationCase) -> GenerationResult:
        self.calls += 1
        if self.fail:
            raise GenerationCallError("not found", status_code=404, retryable=False)
        return GenerationResult(" ".join(case.reference.split()[: self.words]))


def _endpoints(words=(2, 4, 3), failing=()) -> dict[str, _Endpoint]:
    return {f"endpoints/{e}": _Endpoint(w, fail=e in failing) for e, w in zip((1, 2, 3), words)}


def _settings(**changes) -> CheckpointSelectionSettings:
    return CheckpointSelectionSettings(requests_per_minute=60000, **changes)


def test_every_checkpoint_answers_validation_and_the_best_one_not_the_last_is_chosen() -> None:
    endpoints = _endpoints()
    selection = choose_on_validation(_model(), _cases(), endpoints.__getitem__, _settings())
    assert selection.endpoint == "endpoints/2"
    assert all(e.calls == 4 for e in endpoints.values())
    scores = {c.checkpoint_id: c.validation_score for c in selection.candidates}
    assert scores["2"] > scores["3"] > scores["1"]
    document = selection.document(_model(), {"train": [[10, 2.0]], "eval": [[10, 1.0]]})
    assert document["chosen"]["checkpoint_id"] == "2" and document["calls"] == document["planned_calls"] == 12
    assert document["tuning"]["chosen_checkpoint"]["endpoint"] == "endpoints/2"
    assert [c["eval_loss"] for c in document["checkpoints"]] == [1.0, 0.8, 0.9]


def test_ties_go_to_the_earlier_epoch() -> None:
    selection = choose_on_validation(_model(), _cases(), _endpoints(words=(2, 9, 9)).__getitem__, _settings())
    assert selection.choice.checkpoint.epoch == 2


def test_a_checkpoint_whose_calls_all_fail_is_not_a_candidate() -> None:
    endpoints = _endpoints(words=(2, 9, 3), failing=(2,))
    selection = choose_on_validation(_model(), _cases(), endpoints.__getitem__, _settings())
    assert selection.endpoint == "endpoints/3"
    assert selection.errors["2"] == 4


@pytest.mark.parametrize("rule, endpoint", [("lowest_eval_loss", "endpoints/2"), ("last", "endpoints/3")])
def test_rules_without_scoring_make_no_call(rule, endpoint) -> None:
    endpoints = _endpoints(words=(9, 1, 1))
    selection = choose_on_validation(_model(), _cases(), endpoints.__getitem__, _settings(selection_rule=rule))
    assert selection.endpoint == endpoint and selection.choice.rule == rule
    assert sum(e.calls for e in endpoints.values()) == 0


def test_a_job_without_intermediate_checkpoints_passes_its_endpoint_through_and_says_so() -> None:
    model = {"endpoint": "endpoints/9", "checkpoints": [{"checkpoint_id": "3", "epoch": 3, "endpoint": "endpoints/9"}]}
    endpoints = _endpoints()
    selection = choose_on_validation(model, _cases(), endpoints.__getitem__, _settings())
    assert selection.endpoint == "endpoints/9"
    assert "intermediate checkpoints were off" in selection.reason
    assert sum(e.calls for e in endpoints.values()) == 0


def test_an_empty_validation_split_falls_back_to_the_eval_loss_and_says_so() -> None:
    selection = choose_on_validation(_model(), [], _endpoints().__getitem__, _settings())
    assert selection.endpoint == "endpoints/2"
    assert "validation split is empty" in selection.reason


def test_the_sample_is_seeded_bounded_and_in_file_order() -> None:
    cases = _cases(20)
    sample = validation_sample(cases, 5, seed=1)
    assert len(sample) == 5 and sample == validation_sample(cases, 5, seed=1)
    assert [cases.index(c) for c in sample] == sorted(cases.index(c) for c in sample)
    assert validation_sample(cases, 0, seed=1) == cases


@pytest.mark.parametrize("changes", [{"selection_rule": "best"}, {"primary_metric": "bleu_score"},
                                     {"primary_metric": "label_accuracy"}, {"validation_sample_size": -1}])
def test_bad_settings_are_refused_before_any_call(changes) -> None:
    endpoints = _endpoints()
    with pytest.raises(ConfigError):
        choose_on_validation(_model(), _cases(), endpoints.__getitem__, _settings(**changes))
    assert sum(e.calls for e in endpoints.values()) == 0


def test_every_entry_point_refuses_an_unknown_rule_naming_the_choices() -> None:
    from gemini_sft.settings_check import pipeline_stage_records, setting_problems

    problems = setting_problems({"checkpoint_selection_rule": "best"}, pipeline_stage_records())
    assert any("best_validation_metric" in p and "lowest_eval_loss" in p for p in problems)
    assert setting_problems({"checkpoint_selection_rule": "last"}, pipeline_stage_records()) == []


def test_an_open_weights_model_is_passed_through_without_a_call() -> None:
    def no_endpoint(endpoint: str):
        raise AssertionError(f"an open model has no endpoint to call, asked for {endpoint!r}")

    open_model = {"tuning_backend": "open-weights", "endpoint": "", "base_model": "google/gemma-3-1b-it"}
    selection = choose_on_validation(open_model, _cases(), no_endpoint, CheckpointSelectionSettings())
    assert selection.endpoint == ""
    assert selection.choice is None
    assert "open-weights" in selection.reason
    assert selection.document(open_model, {})["calls"] == 0


def test_the_sample_is_cut_so_selection_stays_within_the_cost_ratio_of_one_holdout_evaluation() -> None:
    settings = _settings()  # defaults: 50 examples requested, ratio 1.5
    # the shipped sample: 36 validation examples, 3 checkpoints, 33 holdout examples (66 evaluation calls)
    size = settings.sample_size(36, 3, 33)
    assert size == 33 and 3 * size <= 1.5 * 66
    assert settings.sample_size(36, 3, None) == 36  # holdout unknown: only the request and the split bound it
    assert settings.sample_size(5000, 3, 1000) == 50  # a large holdout: the requested size is the bound
    assert _settings(validation_sample_size=0).sample_size(5000, 3, 1000) == 1000  # 0 = all, then the cap
    assert _settings(selection_cost_ratio=0).sample_size(36, 3, 33) == 36  # 0 turns the cap off


def test_the_floor_keeps_enough_examples_for_a_meaningful_choice() -> None:
    from gemini_sft.checkpoint_scoring import MIN_SELECTION_EXAMPLES

    settings = _settings()
    assert settings.sample_size(500, 10, 5) == MIN_SELECTION_EXAMPLES  # the ratio alone would allow 1 example
    assert settings.sample_size(12, 10, 5) == 12  # never more than the split holds
    with pytest.raises(ConfigError, match="checkpoint_selection_cost_ratio"):
        _settings(selection_cost_ratio=-1.0)


def test_the_holdout_size_bounds_the_calls_and_the_document_says_how_many_examples_scored() -> None:
    endpoints = _endpoints()
    selection = choose_on_validation(_model(), _cases(40), endpoints.__getitem__, _settings(), holdout_examples=33)
    assert selection.validation_examples == 33 and all(e.calls == 33 for e in endpoints.values())
    document = selection.document({**_model(), "base_model": "gemini-2.5-flash"}, {})
    assert document["calls"] == 99 and document["holdout_examples"] == 33
    assert document["input_tokens"] == 0 and document["base_model"] == "gemini-2.5-flash"  # fakes report no usage
    assert "same 33 validation examples" in document["sample_note"] and "1.50x the 66 calls" in document["sample_note"]


def test_the_answers_token_counts_are_recorded() -> None:
    class Counted(_Endpoint):
        def __call__(self, case: EvaluationCase) -> GenerationResult:
            result = super().__call__(case)
            return GenerationResult(result.text, input_tokens=7, output_tokens=3, thinking_tokens=1)

    endpoints = {f"endpoints/{e}": Counted(e) for e in (1, 2, 3)}
    selection = choose_on_validation(_model(), _cases(4), endpoints.__getitem__, _settings())
    assert (selection.input_tokens, selection.output_tokens, selection.thinking_tokens) == (84, 36, 12)
