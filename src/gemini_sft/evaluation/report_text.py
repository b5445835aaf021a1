"""What both evaluation reports say: labels, number formats, the headline, the examples worth showing."""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass

from gemini_sft.evaluation.metrics import (
    BASE,
    CHAMPION,
    GEMINI,
    LABEL_METRICS,
    OTHER_LABEL,
    TEXT_METRICS,
    TUNED,
    ConfusionMatrix,
)
from gemini_sft.evaluation.result import ERROR_POLICY, EvaluationResult, ExampleRecord

ROLE_LABELS = {BASE: "Base", TUNED: "Tuned", CHAMPION: "Champion", GEMINI: "Gemini (compared)"}
ROLE_COLOURS = {BASE: "#8a94a6", TUNED: "#1a73e8", CHAMPION: "#e37400", GEMINI: "#188038"}
METRIC_LABELS = {
    "rouge1": "ROUGE-1",
    "rouge2": "ROUGE-2",
    "rougeL": "ROUGE-L",
    "exact_match": "Exact match",
    "normalized_exact_match": "Normalised exact match",
    "bleu": "BLEU",
    "chrf": "chrF",
    "label_accuracy": "Label accuracy",
    "label_macro_f1": "Label macro-F1",
}
PRIMARY_METRIC = "rougeL"
WORST_REGRESSIONS = 10
SAMPLES_PER_KIND = 3
SAMPLE_KINDS = {
    "best": "largest gain of the tuned model over the base model",
    "worst": "largest loss (or smallest gain) of the tuned model",
    "random": "drawn at random from the other examples",
}
OFFLINE_NOTICE = (
    "These answers were made by the offline stand-in of the Vertex API, not by Gemini. "
    "The scores test the pipeline, not the quality of any Gemini model."
)
METHOD_NOTES = [
    "ROUGE-1, ROUGE-2 and ROUGE-L are F-measures from the rouge-score package with Porter stemming; "
    "its tokenizer keeps only ASCII letters and digits.",
    "Exact match compares answer and reference after trimming surrounding whitespace; normalised exact match "
    "also ignores case, punctuation and repeated whitespace.",
    ERROR_POLICY,
]


def metric_names(result: EvaluationResult) -> list[str]:
    return list(TEXT_METRICS) + (list(LABEL_METRICS) if result.settings.label_pattern else [])


def num(value: float | None, digits: int = 3, signed: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def pct(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{100 * value:.1f}%"


def ci(result: EvaluationResult, key: str) -> str:
    low, high = result.metrics.get(f"{key}_ci_low"), result.metrics.get(f"{key}_ci_high")
    if low is None or high is None:
        return "n/a"
    return f"[{num(low, signed=True)}, {num(high, signed=True)}]"


def significance(result: EvaluationResult, key: str) -> str:
    low, high = result.metrics.get(f"{key}_ci_low"), result.metrics.get(f"{key}_ci_high")
    if low is None or high is None or not math.isfinite(low) or not math.isfinite(high):
        return "unknown"
    if low > 0:
        return "better"
    if high < 0:
        return "worse"
    return "no clear difference"


def confidence_pct(result: EvaluationResult) -> str:
    return f"{100 * result.confidence:.0f}%"


def headline(result: EvaluationResult, metric: str = PRIMARY_METRIC) -> str:
    """One sentence: the primary metric difference, its interval and what it means."""
    m = result.metrics
    delta = m.get(f"delta_{metric}")
    verdict = significance(result, f"delta_{metric}")
    meaning = {
        "better": "the tuned model is better",
        "worse": "the tuned model is worse",
        "no clear difference": "the interval includes zero, so no clear difference",
        "unknown": "no confidence interval was computed",
    }[verdict]
    return (
        f"Tuned minus base {METRIC_LABELS[metric]}: {num(delta, signed=True)} "
        f"({confidence_pct(result)} CI {ci(result, f'delta_{metric}')}) over {len(result.records)} examples; {meaning}."
    )


def worst_regressions(result: EvaluationResult, limit: int = WORST_REGRESSIONS) -> list[tuple[float, ExampleRecord]]:
    scored = []
    for record in result.records:
        base, tuned = record.scores.get(BASE), record.scores.get(TUNED)
        if base is None or tuned is None:
            continue
        diff = tuned.rougeL - base.rougeL
        if diff < 0:
            scored.append((diff, record))
    scored.sort(key=lambda item: (item[0], item[1].example_id))
    return scored[:limit]


def error_kinds(result: EvaluationResult, role: str) -> Counter[str]:
    kinds: Counter[str] = Counter()
    for record in result.records:
        answer = record.answers[role]
        if not answer.ok and answer.error:
            kinds[answer.error.split(":", 1)[0]] += 1
    return kinds


def aligned_confusion(result: EvaluationResult) -> dict[str, ConfusionMatrix]:
    """Every role's confusion matrix over the same categories, so the matrices can be compared cell by cell.

    A model whose answers all carry a reference label has no ``(other)`` column of its own; it gets one
    (of zeros) when another model's matrix has it.
    """
    categories: list[str] = []
    for matrix in result.confusion.values():
        categories += [c for c in matrix.categories if c not in categories]
    if OTHER_LABEL in categories:
        categories = [c for c in categories if c != OTHER_LABEL] + [OTHER_LABEL]
    aligned = {}
    for role, matrix in result.confusion.items():
        position = {c: i for i, c in enumerate(categories)}
        cells = [[0] * len(categories) for _ in categories]
        for i, row in enumerate(matrix.matrix):
            for j, value in enumerate(row):
                cells[position[matrix.categories[i]]][position[matrix.categories[j]]] = value
        aligned[role] = ConfusionMatrix(categories=list(categories), matrix=cells)
    return aligned


@dataclass(frozen=True)
class Sample:
    """An example shown side by side: why it was picked, and the tuned − base ROUGE-L difference."""

    kind: str
    diff: float
    record: ExampleRecord


def sample_answers(result: EvaluationResult, per_kind: int = SAMPLES_PER_KIND) -> list[Sample]:
    """The examples worth reading beside each other: the best and the worst for the tuned model, and a few at random.

    Best and worst rank the examples both models answered by tuned − base ROUGE-L, whether or not anything
    regressed; the random ones (seeded by the evaluation's seed) are drawn from the rest. No example is shown twice.
    """
    scored = []
    for record in result.records:
        base, tuned = record.scores.get(BASE), record.scores.get(TUNED)
        if base is not None and tuned is not None:
            scored.append((tuned.rougeL - base.rougeL, record))
    ranked = sorted(scored, key=lambda item: (-item[0], item[1].example_id))
    best = ranked[:per_kind]
    worst = sorted(ranked[per_kind:], key=lambda item: (item[0], item[1].example_id))[:per_kind]
    shown = {id(record) for _, record in best + worst}
    rest = [item for item in scored if id(item[1]) not in shown]
    chosen = random.Random(result.settings.seed).sample(rest, min(per_kind, len(rest)))
    chosen.sort(key=lambda item: item[1].example_id)
    return ([Sample("best", d, r) for d, r in best] + [Sample("worst", d, r) for d, r in worst]
            + [Sample("random", d, r) for d, r in chosen])


FALLBACK_ROW_LABEL = "tuned with fallback"


def fallback_row(result: EvaluationResult, metric: str = PRIMARY_METRIC) -> tuple[str, str, str, str, str, str]:
    """The summary table's "tuned with fallback" row: label, base, fallback, fallback − base, CI, verdict."""
    m = result.metrics
    key = f"fallback_delta_{metric}"
    return (
        f"{METRIC_LABELS[metric]}, {FALLBACK_ROW_LABEL}", num(m.get(f"base_{metric}")),
        num(m.get(f"fallback_{metric}")), num(m.get(key), signed=True), ci(result, key), significance(result, key),
    )


def fallback_sentences(result: EvaluationResult, metric: str = PRIMARY_METRIC) -> list[str]:
    """What the serving fallback would buy on this holdout, in plain sentences (report section)."""
    m = result.metrics
    n = len(result.records)
    count = int(m.get("fallback_count", 0))
    reasons = Counter(r.fallback_reason for r in result.records if r.fallback_reason)
    listed = ", ".join(f"{reason} × {times}" for reason, times in reasons.most_common()) or "none"
    gain = None
    if math.isfinite(m.get(f"fallback_{metric}", math.nan)) and math.isfinite(m.get(f"tuned_{metric}", math.nan)):
        gain = m[f"fallback_{metric}"] - m[f"tuned_{metric}"]
    contract = (
        "the output contract learned from the training split was checked"
        if result.contract_checked else "no output contract was checked (no training split given)"
    )
    return [
        f"Tuned with fallback returns the tuned answer unless the serving fallback rules find it unfit, then the "
        f"base model's answer; {contract}. Log-probabilities are not asked for in the evaluation, so that rule is off.",
        f"It fell back on {count} of {n} examples ({pct(m.get('fallback_rate'))}); reasons: {listed}.",
        f"{METRIC_LABELS[metric]}: {num(m.get(f'fallback_{metric}'))} with fallback against "
        f"{num(m.get(f'tuned_{metric}'))} tuned alone ({num(gain, signed=True)}) and "
        f"{num(m.get(f'base_{metric}'))} base ({num(m.get(f'fallback_delta_{metric}'), signed=True)}, "
        f"{confidence_pct(result)} CI {ci(result, f'fallback_delta_{metric}')}).",
        "The gate decides on the tuned model alone; these numbers show what turning the fallback on would change.",
    ]


def thinking_sent(result: EvaluationResult, role: str) -> str:
    """The thinking config a role's model was sent, readable ("budget 0", "level MINIMAL", "model default")."""
    if role not in result.thinking:
        return "n/a"
    sent = result.thinking[role]
    if not sent:
        return "model default"
    return ", ".join(f"{key.removeprefix('thinking_')} {value}" for key, value in sent.items())


def usd(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"${value:.4f}"


def thinking_rows(result: EvaluationResult) -> list[tuple[str, ...]]:
    """Per role: label, thinking sent, thinking tokens, per answer, answer tokens, cost, of which thinking."""
    m = result.metrics
    return [
        (
            ROLE_LABELS[role], thinking_sent(result, role), num(m.get(f"{role}_thinking_tokens"), 0),
            num(m.get(f"{role}_thinking_tokens_mean"), 1), num(m.get(f"{role}_output_tokens"), 0),
            usd(m.get(f"{role}_cost_usd")), usd(m.get(f"{role}_thinking_cost_usd")),
        )
        for role in result.roles
    ]


THINKING_HEADER = ("role", "thinking sent", "thinking tokens", "per answer", "answer tokens", "cost (list price)",
                   "of which thinking")
THINKING_NOTE = (
    f"Setting thinking: {{setting}}. Thinking tokens count against max_output_tokens and are billed as output; "
    "costs use the catalogue's list prices (an endpoint is priced as its base model), n/a where unknown."
)
