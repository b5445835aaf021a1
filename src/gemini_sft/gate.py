"""The promotion gate: does the tuned model deserve to replace what is in production?

A pure function of the evaluation's flat metrics and a :class:`GatePolicy`.
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

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

from gemini_sft.errors import GateError
from gemini_sft.metrics import ALL_SCORE_METRICS

IMPROVEMENT_MODES: tuple[str, ...] = ("absolute", "relative")


@dataclass(frozen=True)
class GatePolicy:
    """Thresholds the tuned model must meet. Raises GateError when a value is invalid."""

    primary_metric: str = "rougeL"
    min_score: float = 0.0
    min_improvement: float = 0.0
    improvement_mode: str = "absolute"
    require_significant: bool = False
    max_champion_regression: float = 0.0
    max_error_rate: float = 0.05

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


def decide_gate(metrics: Mapping[str, Any], policy: GatePolicy) -> GateDecision:
    """Apply ``policy`` to the evaluation's flat metrics; fails closed on missing or non-finite values."""
    if not isinstance(policy, GatePolicy):
        raise GateError(f"policy must be a GatePolicy, got {type(policy).__name__}")
    m = policy.primary_metric
    checks: list[GateCheck] = []

    def fail_missing(name: str, why: str, threshold: float | None) -> None:
        checks.append(GateCheck(name, False, None, threshold, f"{name}: {why}; failing closed"))

    # examples
    n, why = _finite(metrics, "n_examples")
    if n is None:
        fail_missing("examples", why or "", 1.0)
    else:
        ok = n >= 1
        checks.append(
            GateCheck("examples", ok, n, 1.0, f"examples: {int(n)} holdout examples evaluated" + ("" if ok else " (none)"))
        )

    # min_score
    tuned, why = _finite(metrics, f"tuned_{m}")
    if tuned is None:
        fail_missing("min_score", why or "", policy.min_score)
    else:
        ok = tuned >= policy.min_score
        op = ">=" if ok else "<"
        checks.append(
            GateCheck("min_score", ok, tuned, policy.min_score,
                      f"min_score: tuned {m} {_fmt(tuned)} {op} minimum {_fmt(policy.min_score)}")
        )

    # min_improvement
    delta, why_delta = _finite(metrics, f"delta_{m}")
    if policy.improvement_mode == "absolute":
        if delta is None:
            fail_missing("min_improvement", why_delta or "", policy.min_improvement)
        else:
            ok = delta >= policy.min_improvement
            op = ">=" if ok else "<"
            checks.append(
                GateCheck("min_improvement", ok, delta, policy.min_improvement,
                          f"min_improvement: tuned - base {m} = {_fmt(delta)} {op} required {_fmt(policy.min_improvement)}")
            )
    else:
        base, why_base = _finite(metrics, f"base_{m}")
        if delta is None or base is None:
            fail_missing("min_improvement", (why_delta or why_base) or "", policy.min_improvement)
        elif base == 0:
            checks.append(
                GateCheck("min_improvement", False, None, policy.min_improvement,
                          f"min_improvement: relative improvement is undefined because base {m} is 0; "
                          "failing closed (use improvement_mode='absolute')")
            )
        else:
            relative = delta / abs(base)
            ok = relative >= policy.min_improvement
            op = ">=" if ok else "<"
            checks.append(
                GateCheck("min_improvement", ok, relative, policy.min_improvement,
                          f"min_improvement: relative gain in {m} {relative:+.2%} {op} required {policy.min_improvement:+.2%}")
            )

    # significance
    if policy.require_significant:
        low, why = _finite(metrics, f"delta_{m}_ci_low")
        if low is None:
            fail_missing("significance", why or "", 0.0)
        else:
            ok = low > 0
            checks.append(
                GateCheck("significance", ok, low, 0.0,
                          f"significance: lower end of the 95% interval of tuned - base {m} is {_fmt(low)}"
                          + (" > 0" if ok else " <= 0 (improvement not significant)"))
            )

    # champion regression: only when a champion was evaluated
    champion_present = f"champion_{m}" in metrics or "champion_error_rate" in metrics
    if champion_present:
        champion, why = _finite(metrics, f"champion_{m}")
        if champion is None or tuned is None:
            fail_missing("champion_regression", (why or f"metric tuned_{m} is missing or not finite"),
                         -policy.max_champion_regression)
        else:
            diff = tuned - champion
            ok = diff >= -policy.max_champion_regression
            checks.append(
                GateCheck("champion_regression", ok, diff, -policy.max_champion_regression,
                          f"champion_regression: tuned - champion {m} = {_fmt(diff)}, "
                          + ("within" if ok else "beyond")
                          + f" tolerance {_fmt(policy.max_champion_regression)}")
            )
    else:
        checks.append(
            GateCheck("champion_regression", True, None, None,
                      "champion_regression: no champion in production; check skipped")
        )

    # error rates
    roles = ["base", "tuned"] + (["champion"] if champion_present else [])
    for role in roles:
        name = f"error_rate_{role}"
        rate, why = _finite(metrics, f"{role}_error_rate")
        if rate is None:
            fail_missing(name, why or "", policy.max_error_rate)
        else:
            ok = rate <= policy.max_error_rate
            op = "<=" if ok else ">"
            checks.append(
                GateCheck(name, ok, rate, policy.max_error_rate,
                          f"{name}: {role} model failed {rate:.2%} of calls {op} maximum {policy.max_error_rate:.2%}")
            )

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
