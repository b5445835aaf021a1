"""KFP shell of the gate stage: pass or fail the tuned model against the policy."""

from typing import NamedTuple

from kfp.dsl import Artifact, Input, Markdown, Output

from gemini_sft.components.base import build_component


def gate_model(
    evaluation: Input[Artifact],
    decision: Output[Artifact],
    report: Output[Markdown],
    primary_metric: str = "rougeL",
    min_score: float = 0.0,
    min_improvement: float = 0.0,
    improvement_mode: str = "absolute",
    require_significant: bool = False,
    max_champion_regression: float = 0.0,
    max_error_rate: float = 0.05,
) -> NamedTuple("GateOutputs", [("passed", bool), ("summary", str)]):
    """Decide whether the tuned model may be promoted, from the evaluation's metrics.

    Fails closed: missing, NaN or infinite metrics fail. Writes the ``decision`` JSON
    (passed, reasons, checks, policy, metrics) and a Markdown page; returns (passed, summary).
    Raises GateError for an invalid policy or an unreadable evaluation artifact.
    """
    import json
    import logging
    from collections import namedtuple

    from gemini_sft.errors import GateError
    from gemini_sft.gate import GatePolicy, decide_gate, decision_markdown

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("gemini_sft.components.gate")
    policy = GatePolicy(
        primary_metric=primary_metric,
        min_score=min_score,
        min_improvement=min_improvement,
        improvement_mode=improvement_mode,
        require_significant=require_significant,
        max_champion_regression=max_champion_regression,
        max_error_rate=max_error_rate,
    )
    try:
        with open(evaluation.path, encoding="utf-8") as handle:
            document = json.load(handle)
    except (OSError, json.JSONDecodeError) as exc:
        raise GateError(f"cannot read the evaluation artifact {evaluation.path}: {exc}") from exc
    metrics = document.get("metrics") if isinstance(document, dict) else None
    if not isinstance(metrics, dict):
        raise GateError(f"the evaluation artifact {evaluation.path} has no 'metrics' object")

    result = decide_gate(metrics, policy)
    with open(decision.path, "w", encoding="utf-8") as handle:
        json.dump(result.to_document(policy, metrics), handle, indent=2, allow_nan=False)
    decision.metadata["passed"] = result.passed
    with open(report.path, "w", encoding="utf-8") as handle:
        handle.write(decision_markdown(result, policy))
    failed = sum(1 for c in result.checks if not c.passed)
    log.info("gate %s: %d checks, %d failed", "passed" if result.passed else "failed", len(result.checks), failed)
    outputs = namedtuple("GateOutputs", ["passed", "summary"])
    return outputs(result.passed, result.summary)


gate_model_op = build_component(gate_model)
