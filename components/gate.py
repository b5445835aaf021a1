"""KFP shell of the gate stage: pass or fail the tuned model against the policy.

The rules are :data:`gemini_sft.gate.CHECKS`; this shell reads the evaluation and writes the decision.
"""

from typing import NamedTuple

from gemini_sft.components.base import build_component
from gemini_sft.contracts import describe_component
from gemini_sft.gate import GatePolicy
from kfp.dsl import Artifact, Input, Markdown, Output


@describe_component(
    """Decide whether the tuned model may be promoted, from the evaluation's metrics.

    Fails closed: missing, NaN or infinite metrics fail. Raises GateError for an invalid policy
    or an unreadable evaluation artifact.""",
    records=[GatePolicy],
    inputs={"evaluation": "The evaluation document written by the evaluate step."},
    outputs={
        "decision": "The decision: passed, reasons, every check, the policy and the metrics read.",
        "report": "The decision as a Markdown page: one row per check.",
        "passed": "Whether the tuned model may be promoted.",
        "summary": "One line: the verdict and the failing (or passing) checks.",
    },
)
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
    import logging
    from collections import namedtuple

    from gemini_sft.contracts import record_from_values
    from gemini_sft.gate import GatePolicy, decide_gate, read_evaluation_metrics, write_decision

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    policy = record_from_values(GatePolicy, locals())
    metrics = read_evaluation_metrics(evaluation.path)
    result = decide_gate(metrics, policy)
    write_decision(result, policy, metrics, decision.path, report.path)
    decision.metadata["passed"] = result.passed
    failed = sum(1 for c in result.checks if not c.passed)
    logging.getLogger("gemini_sft.components.gate").info(
        "gate %s: %d checks, %d failed", "passed" if result.passed else "failed", len(result.checks), failed
    )
    outputs = namedtuple("GateOutputs", ["passed", "summary"])
    return outputs(result.passed, result.summary)


gate_model_op = build_component(gate_model)
