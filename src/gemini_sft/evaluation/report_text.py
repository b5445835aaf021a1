"""What both evaluation reports say: labels, number formats, the headline, the examples worth showing."""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass

from gemini_sft.evaluation.metrics import (
    BASE,
    CHAMPION,
    LABEL_METRICS,
    OTHER_LABEL,
    TEXT_METRICS,
    TUNED,
    ConfusionMatrix,
)
from gemini_sft.evaluation.result import ERROR_POLICY, EvaluationResult, ExampleRecord

ROLE_LABELS = {BASE: "Base", TUNED: "Tuned", CHAMPION: "Champion"}
ROLE_COLOURS = {BASE: "#8a94a6", TUNED: "#1a73e8", CHAMPION: "#e37400"}
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
