"""The promotion gate: does the tuned model deserve to replace what is in production?

A pure function of the evaluation's flat metrics and a :class:`GatePolicy`: a list of
small named rules (:data:`CHECKS`), each giving one :class:`GateCheck` or a few.
It fails closed: a metric that is missing, NaN or infinite fails the check that
needs it, with a reason that says so. Every check is listed in the decision,
passing ones too, so a reader sees why a model passed as well as why it failed.

Checks, on the primary metric M (default ``rougeL``):

- ``examples``: at least one holdout example was evaluated (``n_examples``).
- ``min_score``: ``tuned_M >= min_score``.
- ``min_improvement``: ``delta_M >= min_improvement`` (absolute), or
  ``delta_M / base_M >= min_improvement`` (relative; undefined and failing when
  ``base_M`` is 0).
- ``significance`` (when ``require_significant``): ``delta_M_ci_low > 0``.
- ``champion_regression`` (only when ``champion_M`` is present):
  ``tuned_M - champion_M >= -max_champion_regression``.
- ``error_rate_<role>`` for base, tuned and (when present) champion:
  ``<role>_error_rate <= max_error_rate``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from gemini_sft.contracts import setting
from gemini_sft.errors import GateError
from gemini_sft.evaluation.metrics import ALL_SCORE_METRICS

IMPROVEMENT_MODES: tuple[str, ...] = ("absolute", "relative")


@dataclass(frozen=True)
class GatePolicy:
    """Thresholds the tuned model must meet (the gate stage's settings). Raises GateError when a value is invalid."""

    primary_metric: str = setting("rougeL", "The metric the gate decides on (e.g. rougeL, label_accuracy).",
                                  choices=ALL_SCORE_METRICS)
    min_score: float = setting(0.0, "The tuned model's primary metric must be at least this.")
    min_improvement: float = setting(
        0.0, "Tuned minus base primary metric must be at least this (a fraction of base when relative)."
    )
    improvement_mode: str = setting("absolute", "How min_improvement is measured: absolute or relative to base.",
                                    choices=IMPROVEMENT_MODES)
    require_significant: bool = setting(
        False, "Also require the lower end of the improvement's confidence interval to be above 0."
    )
    max_champion_regression: float = setting(
        0.0, "How far below the production model's primary metric the tuned model may be (>= 0)."
    )
    max_error_rate: float = setting(0.05, "Largest share of failed generation calls allowed for each model (0 to 1).")

    def __post_init__(self) -> None:
        if self.primary_metric not in ALL_SCORE_METRICS:
            raise GateError(
                f"primary_metric {self.primary_metric!r} is not a known metric; use one of {', '.join(ALL_SCORE_METRICS)}"
            )
        if self.improvement_mode not in IMPROVEMENT_MODES:
            raise GateError(
                f"improvement_mode {self.improvement_mode!r} is invalid; use 'absolute' or 'relative'"
            )
        for name in ("min_score", "min_improvement", "max_champion_regression", "max_error_rate"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise GateError(f"gate policy {name} must be a finite number, got {value!r}")
        if self.max_champion_regression < 0:
            raise GateError(
                f"max_champion_regression is a tolerance and must be >= 0, got {self.max_champion_regression}"
            )
        if not 0.0 <= self.max_error_rate <= 1.0:
            raise GateError(f"max_error_rate must be between 0 and 1, got {self.max_error_rate}")
        if not isinstance(self.require_significant, bool):
            raise GateError(f"require_significant must be true or false, got {self.require_significant!r}")


@dataclass(frozen=True)
class GateCheck:
    """One rule's outcome: what was observed, against which threshold, and why it passed or failed."""

    name: str
    passed: bool
    observed: float | None
    threshold: float | None
    message: str


@dataclass(frozen=True)
class GateDecision:
    """Pass or fail, with every check and a reason per check."""

    passed: bool
    reasons: list[str]
    checks: list[GateCheck] = field(default_factory=list)

    @property
    def summary(self) -> str:
        """One line: verdict and the failing reasons (or the passing ones)."""
        failing = [c.message for c in self.checks if not c.passed]
        if self.passed:
            return "PASSED: " + "; ".join(c.message for c in self.checks)
        return "FAILED: " + "; ".join(failing)

    def to_document(self, policy: GatePolicy, metrics: Mapping[str, Any]) -> dict[str, Any]:
        """The ``decision`` artifact JSON (non-finite numbers written as null)."""
        return {
            "passed": self.passed,
            "summary": self.summary,
            "reasons": list(self.reasons),
            "checks": [{k: _json_number(v) for k, v in asdict(c).items()} for c in self.checks],
            "policy": asdict(policy),
            "metrics": {k: _json_number(v) for k, v in metrics.items()},
        }


def _json_number(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _finite(metrics: Mapping[str, Any], key: str) -> tuple[float | None, str | None]:
    """(value, None) when ``metrics[key]`` is a finite number, else (None, why not)."""
    if key not in metrics or metrics[key] is None:
        return None, f"metric {key} is missing"
    value = metrics[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None, f"metric {key} is not a number ({value!r})"
    if math.isnan(value):
        return None, f"metric {key} is NaN"
    if math.isinf(value):
        return None, f"metric {key} is infinite"
    return float(value), None


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def _fail_closed(name: str, why: str, threshold: float | None) -> GateCheck:
    return GateCheck(name, False, None, threshold, f"{name}: {why}; failing closed")


def _compare(
    name: str,
    metrics: Mapping[str, Any],
    key: str,
    threshold: float,
    passes: Callable[[float], bool],
    message: Callable[[float, bool], str],
) -> GateCheck:
    """The check ``name`` of ``metrics[key]`` against ``threshold``; fails closed when the value is not finite."""
    value, why = _finite(metrics, key)
    if value is None:
        return _fail_closed(name, why or "", threshold)
    ok = passes(value)
    return GateCheck(name, ok, value, threshold, message(value, ok))


def _has_champion(metrics: Mapping[str, Any], policy: GatePolicy) -> bool:
    """Whether a champion was evaluated (its score or its error rate is in the metrics)."""
    return f"champion_{policy.primary_metric}" in metrics or "champion_error_rate" in metrics


# Each check below is one rule: a function of (metrics, policy) giving its GateCheck(s).


def check_examples(metrics: Mapping[str, Any], policy: GatePolicy) -> list[GateCheck]:
    """``examples``: at least one holdout example was evaluated (``n_examples >= 1``)."""
    return [_compare(
        "examples", metrics, "n_examples", 1.0, lambda n: n >= 1,
        lambda n, ok: f"examples: {int(n)} holdout examples evaluated" + ("" if ok else " (none)"),
    )]


def check_min_score(metrics: Mapping[str, Any], policy: GatePolicy) -> list[GateCheck]:
    """``min_score``: ``tuned_M >= min_score``."""
    m, minimum = policy.primary_metric, policy.min_score
    return [_compare(
        "min_score", metrics, f"tuned_{m}", minimum, lambda tuned: tuned >= minimum,
        lambda tuned, ok: f"min_score: tuned {m} {_fmt(tuned)} {'>=' if ok else '<'} minimum {_fmt(minimum)}",
    )]


def check_min_improvement(metrics: Mapping[str, Any], policy: GatePolicy) -> list[GateCheck]:
    """``min_improvement``: ``delta_M >= min_improvement`` (absolute) or ``delta_M / |base_M| >= it`` (relative).

    Relative improvement over a base score of 0 is undefined and fails.
    """
    m, required = policy.primary_metric, policy.min_improvement
    if policy.improvement_mode == "absolute":
        return [_compare(
            "min_improvement", metrics, f"delta_{m}", required, lambda delta: delta >= required,
            lambda delta, ok: f"min_improvement: tuned - base {m} = {_fmt(delta)} {'>=' if ok else '<'} "
                              f"required {_fmt(required)}",
        )]
    delta, why_delta = _finite(metrics, f"delta_{m}")
    base, why_base = _finite(metrics, f"base_{m}")
    if delta is None or base is None:
        return [_fail_closed("min_improvement", (why_delta or why_base) or "", required)]
    if base == 0:
        return [GateCheck(
            "min_improvement", False, None, required,
            f"min_improvement: relative improvement is undefined because base {m} is 0; "
            "failing closed (use improvement_mode='absolute')",
        )]
    relative = delta / abs(base)
    ok = relative >= required
    return [GateCheck(
        "min_improvement", ok, relative, required,
        f"min_improvement: relative gain in {m} {relative:+.2%} {'>=' if ok else '<'} required {required:+.2%}",
    )]


def check_significance(metrics: Mapping[str, Any], policy: GatePolicy) -> list[GateCheck]:
    """``significance`` (only when ``require_significant``): ``delta_M_ci_low > 0``."""
    if not policy.require_significant:
        return []
    m = policy.primary_metric
    return [_compare(
        "significance", metrics, f"delta_{m}_ci_low", 0.0, lambda low: low > 0,
        lambda low, ok: f"significance: lower end of the 95% interval of tuned - base {m} is {_fmt(low)}"
                        + (" > 0" if ok else " <= 0 (improvement not significant)"),
    )]


def check_champion_regression(metrics: Mapping[str, Any], policy: GatePolicy) -> list[GateCheck]:
    """``champion_regression`` (skipped, passing, when no champion): ``tuned_M - champion_M >= -max_champion_regression``."""
    if not _has_champion(metrics, policy):
        return [GateCheck("champion_regression", True, None, None,
                          "champion_regression: no champion in production; check skipped")]
    m, tolerance = policy.primary_metric, policy.max_champion_regression
    tuned, _ = _finite(metrics, f"tuned_{m}")
    champion, why = _finite(metrics, f"champion_{m}")
    if champion is None or tuned is None:
        return [_fail_closed("champion_regression", why or f"metric tuned_{m} is missing or not finite", -tolerance)]
    diff = tuned - champion
    ok = diff >= -tolerance
    return [GateCheck(
        "champion_regression", ok, diff, -tolerance,
        f"champion_regression: tuned - champion {m} = {_fmt(diff)}, {'within' if ok else 'beyond'} "
        f"tolerance {_fmt(tolerance)}",
    )]


def check_error_rates(metrics: Mapping[str, Any], policy: GatePolicy) -> list[GateCheck]:
    """``error_rate_<role>`` for base, tuned and (when present) champion: ``<role>_error_rate <= max_error_rate``."""
    maximum = policy.max_error_rate
    roles = ["base", "tuned"] + (["champion"] if _has_champion(metrics, policy) else [])
    return [
        _compare(
            f"error_rate_{role}", metrics, f"{role}_error_rate", maximum, lambda rate: rate <= maximum,
            lambda rate, ok, role=role: f"error_rate_{role}: {role} model failed {rate:.2%} of calls "
                                        f"{'<=' if ok else '>'} maximum {maximum:.2%}",
        )
        for role in roles
    ]


GateRule = Callable[[Mapping[str, Any], GatePolicy], list[GateCheck]]

# The gate's rules, in the order the decision lists them.
CHECKS: tuple[GateRule, ...] = (
    check_examples,
    check_min_score,
    check_min_improvement,
    check_significance,
    check_champion_regression,
    check_error_rates,
)


def decide_gate(metrics: Mapping[str, Any], policy: GatePolicy) -> GateDecision:
    """Apply every rule of ``policy`` to the evaluation's flat metrics; fails closed on missing or non-finite values.

    Args:
        metrics: the ``metrics`` object of the evaluation document.
        policy: the thresholds.

    Raises:
        GateError: when ``policy`` is not a GatePolicy.
    """
    if not isinstance(policy, GatePolicy):
        raise GateError(f"policy must be a GatePolicy, got {type(policy).__name__}")
    checks = [result for rule in CHECKS for result in rule(metrics, policy)]
    passed = all(c.passed for c in checks)
    reasons = [("pass " if c.passed else "FAIL ") + c.message for c in checks]
    return GateDecision(passed=passed, reasons=reasons, checks=checks)


def decision_markdown(decision: GateDecision, policy: GatePolicy) -> str:
    """A Markdown page for the gate decision: verdict, one row per check, the policy."""
    verdict = "PASSED" if decision.passed else "FAILED"
    lines = [f"# Promotion gate: {verdict}", "", f"Primary metric: `{policy.primary_metric}`.", ""]
    lines += ["| check | result | observed | threshold | detail |", "|---|---|---|---|---|"]
    for c in decision.checks:
        observed = "n/a" if c.observed is None else _fmt(c.observed)
        threshold = "n/a" if c.threshold is None else _fmt(c.threshold)
        detail = c.message.replace("|", "\\|")
        lines.append(f"| {c.name} | {'pass' if c.passed else '**FAIL**'} | {observed} | {threshold} | {detail} |")
    lines += ["", "## Policy", ""]
    lines += [f"- `{k}`: {v}" for k, v in asdict(policy).items()]
    lines.append("")
    return "\n".join(lines)


def read_evaluation_metrics(path: str | Path) -> dict[str, Any]:
    """The ``metrics`` object of an evaluation document.

    Args:
        path: the evaluation JSON written by the evaluate stage.

    Raises:
        GateError: when the file cannot be read, is not JSON or has no ``metrics`` object.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
    except (OSError, json.JSONDecodeError) as exc:
        raise GateError(f"cannot read the evaluation artifact {path}: {exc}") from exc
    metrics = document.get("metrics") if isinstance(document, dict) else None
    if not isinstance(metrics, dict):
        raise GateError(f"the evaluation artifact {path} has no 'metrics' object")
    return metrics


def write_decision(
    decision: GateDecision, policy: GatePolicy, metrics: Mapping[str, Any], document: str | Path, report: str | Path
) -> None:
    """Write the decision document (strict JSON) and its Markdown page.

    Args:
        decision: the gate's decision.
        policy: the policy it applied.
        metrics: the metrics it read.
        document: path of the decision JSON.
        report: path of the Markdown page.
    """
    for path in (document, report):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(document).write_text(json.dumps(decision.to_document(policy, metrics), indent=2, allow_nan=False),
                              encoding="utf-8")
    Path(report).write_text(decision_markdown(decision, policy), encoding="utf-8")
