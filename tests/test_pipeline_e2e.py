"""The whole pipeline, run locally with kfp.local against the offline stand-in on the shipped sample."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from gemini_sft.gate import GatePolicy, decide_gate
from gemini_sft.local_run import LocalRunResult, run_local
from gemini_sft.standin import VertexStandIn

pytestmark = pytest.mark.e2e

HYPERPARAMETERS = {"epochs": 2, "adapter_size": 8, "learning_rate_multiplier": 0.5}


def _count_lines(path: Path) -> int:
    with open(path, encoding="utf-8") as handle:
        return sum(1 for line in handle if line.strip())


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def standin(module_standin: VertexStandIn) -> VertexStandIn:
    return module_standin


@pytest.fixture(scope="module")
def passing_run(tmp_path_factory: pytest.TempPathFactory, standin: VertexStandIn) -> LocalRunResult:
    return run_local(
        output_dir=tmp_path_factory.mktemp("passing"),
        parameters=HYPERPARAMETERS,
        standin=standin,
    )


@pytest.fixture(scope="module")
def failing_run(tmp_path_factory: pytest.TempPathFactory) -> LocalRunResult:
    # An improvement nobody can reach: the gate must reject and nothing be promoted.
    return run_local(output_dir=tmp_path_factory.mktemp("failing"), parameters={"min_improvement": 2.0})


def test_split_counts_add_up_to_the_kept_rows(passing_run: LocalRunResult) -> None:
    clean_dir = passing_run.run_dir / "clean-data"
    version = _read_json(clean_dir / "dataset_version")
    counts = version["counts"]
    split_rows = sum(_count_lines(clean_dir / f"{name}.jsonl") for name in ("train", "validation", "holdout"))
    assert split_rows == counts["kept"] > 0
    assert counts["kept"] + counts["rejected"] == counts["rows_read"]
    assert _count_lines(clean_dir / "rejected.jsonl") == counts["rejected"] > 0


def test_tuning_request_carries_the_given_hyperparameters(
    passing_run: LocalRunResult, standin: VertexStandIn
) -> None:
    creates = [r for r in standin.requests if r.method == "POST" and r.path.endswith("/tuningJobs")]
    assert len(creates) == 1
    body = creates[0].body
    hyper = body["supervisedTuningSpec"]["hyperParameters"]
    assert int(hyper["epochCount"]) == HYPERPARAMETERS["epochs"]
    assert hyper["adapterSize"] == "ADAPTER_SIZE_EIGHT"
    assert float(hyper["learningRateMultiplier"]) == HYPERPARAMETERS["learning_rate_multiplier"]
    assert body["baseModel"] == "gemini-2.5-flash"
    train_uri = body["supervisedTuningSpec"]["trainingDatasetUri"]
    assert train_uri.endswith("clean-data/train.jsonl")


def test_metrics_exist_for_base_and_tuned(passing_run: LocalRunResult) -> None:
    for name in ("base_rougeL", "tuned_rougeL", "delta_rougeL"):
        assert math.isfinite(passing_run.metrics[name])
    assert passing_run.metrics["delta_rougeL"] == pytest.approx(
        passing_run.metrics["tuned_rougeL"] - passing_run.metrics["base_rougeL"], abs=1e-9
    )


@pytest.mark.parametrize("run_name", ["passing_run", "failing_run"])
def test_gate_decision_agrees_with_metrics_and_thresholds(run_name: str, request: pytest.FixtureRequest) -> None:
    run: LocalRunResult = request.getfixturevalue(run_name)
    decision = _read_json(run.run_dir / "gate-model" / "decision")
    evaluation = _read_json(run.run_dir / "evaluate-models" / "evaluation")
    policy = GatePolicy(**decision["policy"])
    assert decide_gate(evaluation["metrics"], policy).passed is decision["passed"] is run.gate_passed
    assert run.gate_reasons


def test_promotion_happens_exactly_when_the_gate_passes(
    passing_run: LocalRunResult, failing_run: LocalRunResult
) -> None:
    assert passing_run.gate_passed and not failing_run.gate_passed
    assert (passing_run.run_dir / "promote-model" / "promotion_record").is_file()
    assert not (passing_run.run_dir / "record-rejection").exists()
    assert (failing_run.run_dir / "record-rejection" / "rejection_record").is_file()
    assert not (failing_run.run_dir / "promote-model").exists()


def test_run_folder_has_readable_reports_labelled_as_offline(passing_run: LocalRunResult) -> None:
    summary = (passing_run.output_dir / "SUMMARY.md").read_text(encoding="utf-8")
    assert "OFFLINE STAND-IN" in summary
    html = (passing_run.output_dir / "evaluation_report.html").read_text(encoding="utf-8")
    assert "offline stand-in" in html.lower()
    assert (passing_run.output_dir / "evaluation_report.md").is_file()


def _vertex_v1_http_rules() -> list[tuple[str, str, str, Any, Any]]:
    """(method, URI template, body field, request class, response class) of every v1 RPC, read from
    google-cloud-aiplatform's REST transports (``_get_http_options`` and the ``__call__`` signature)."""
    import importlib
    import inspect
    import pkgutil

    import google.cloud.aiplatform_v1.services as services

    def pb_class(annotation: Any) -> Any:
        if annotation in (None, inspect.Signature.empty):
            return None
        return annotation.pb() if hasattr(annotation, "pb") else annotation

    rules = []
    for info in pkgutil.iter_modules(services.__path__):
        rest = importlib.import_module(f"{services.__name__}.{info.name}.transports.rest")
        for name, transport in vars(rest).items():
            if not (inspect.isclass(transport) and name.endswith("RestTransport") and not name.startswith("_")):
                continue
            for rpc in vars(transport).values():
                if inspect.isclass(rpc) and hasattr(rpc, "_get_http_options") and "__call__" in vars(rpc):
                    signature = inspect.signature(rpc.__call__)
                    request_class = pb_class(signature.parameters["request"].annotation)
                    response_class = pb_class(signature.return_annotation)
                    for option in rpc._get_http_options():
                        rules.append((option["method"].upper(), option["uri"], option.get("body", ""),
                                      request_class, response_class))
    return rules


def test_every_request_of_the_run_is_kept_and_parses_against_the_vertex_v1_protos(
    passing_run: LocalRunResult, standin: VertexStandIn
) -> None:
    from urllib.parse import parse_qsl, urlsplit

    from google.api_core import path_template
    from google.protobuf import json_format
    from google.protobuf.message_factory import GetMessageClass

    from gemini_sft.standin import REQUEST_LOG_NAME
    from gemini_sft.standin.rest_rules import without_newer_output_fields

    log_path = passing_run.output_dir / REQUEST_LOG_NAME
    lines = [json.loads(line) for line in log_path.read_text(encoding="utf-8").splitlines()]
    assert lines and all(set(line) == {"method", "path", "body", "status"} for line in lines)
    records = standin.requests[: len(lines)]
    assert [r.as_log_line() for r in records] == lines

    rules = _vertex_v1_http_rules()
    system_parameters = {"alt", "$alt", "key", "prettyPrint", "fields", "$fields"}
    seen_rpcs: set[str] = set()
    for line, record in zip(lines, records):
        split = urlsplit(line["path"])
        matching = [rule for rule in rules if rule[0] == line["method"] and path_template.validate(rule[1], split.path)]
        assert matching, f"{line['method']} {split.path} is not a Vertex AI v1 route"
        # The longest template is the most specific one (``models/*:listVersions`` over ``models/*``).
        _, template, body_field, request_class, response_class = max(matching, key=lambda rule: len(rule[1]))
        request_fields = {f.name for f in request_class.DESCRIPTOR.fields} | {
            f.json_name for f in request_class.DESCRIPTOR.fields
        }
        for parameter, _ in parse_qsl(split.query):
            assert parameter in request_fields | system_parameters, (line["path"], parameter)
        if body_field == "*":
            json_format.ParseDict(line["body"] or {}, request_class(), ignore_unknown_fields=False)
        elif body_field:
            body_class = GetMessageClass(request_class.DESCRIPTOR.fields_by_name[body_field].message_type)
            json_format.ParseDict(line["body"], body_class(), ignore_unknown_fields=False)
        else:
            assert line["body"] is None
        assert line["status"] == 200, line
        if response_class is not None:
            # Output fields newer than the installed protos (TuningJob.tuningJobState) are named in one table.
            response = without_newer_output_fields(record.response, response_class.DESCRIPTOR)
            json_format.ParseDict(response, response_class(), ignore_unknown_fields=False)
        else:
            assert record.response in (None, {})
        seen_rpcs.add(request_class.DESCRIPTOR.name)
    assert {"CreateTuningJobRequest", "GetTuningJobRequest", "GenerateContentRequest"} <= seen_rpcs


def test_a_run_whose_gate_fails_keeps_its_requests_too(failing_run: LocalRunResult) -> None:
    from gemini_sft.standin import REQUEST_LOG_NAME, read_request_log

    lines = read_request_log(failing_run.output_dir / REQUEST_LOG_NAME)
    creates = [line for line in lines if line["method"] == "POST" and str(line["path"]).endswith("/tuningJobs")]
    assert len(creates) == 1 and creates[0]["status"] == 200
    assert str(creates[0]["body"]["supervisedTuningSpec"]["trainingDatasetUri"]).endswith(".jsonl")
