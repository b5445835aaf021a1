"""Scoring model answers against references, and comparing models with uncertainty.

Per example: ROUGE-1/2/L F-measure (``rouge_score`` with stemming), sentence BLEU
and chrF (``sacrebleu``, scaled to 0..1), exact match,
normalised exact match (case, whitespace and punctuation ignored) and, when a
label pattern is configured, the label found in the answer.

Per model: means over the examples the model answered. A failed call is not an
answer: it is left out of score means and counted in the model's error rate.

Between models: the candidate-minus-baseline difference of every aggregate,
with a paired bootstrap confidence interval. Each bootstrap replicate resamples
holdout examples (the same ones for both models) and recomputes both models'
aggregates on the replicate, so the interval reflects the holdout sample size.

Metric names are flat and stable (``base_rougeL``, ``tuned_rougeL``,
``delta_rougeL``, ``delta_rougeL_ci_low``, ...); see :func:`summarize`.
"""

from __future__ import annotations

import math
import re
import statistics
import unicodedata
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import numpy as np

from gemini_sft.errors import ConfigError, EvaluationError

TEXT_METRICS: tuple[str, ...] = ("rouge1", "rouge2", "rougeL", "exact_match", "normalized_exact_match", "bleu", "chrf")
LABEL_METRICS: tuple[str, ...] = ("label_accuracy", "label_macro_f1")
ALL_SCORE_METRICS: tuple[str, ...] = TEXT_METRICS + LABEL_METRICS

BASE, TUNED, CHAMPION = "base", "tuned", "champion"
# a Gemini model an open-weights run is compared with (information only: the gate never reads it)
GEMINI = "gemini"
MODEL_ROLES: tuple[str, ...] = (BASE, TUNED, CHAMPION, GEMINI)

# Predicted labels that are not a reference class (or no label at all) fall in this column.
OTHER_LABEL = "(other)"

_WHITESPACE = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """Casefold, turn punctuation and symbols into spaces, collapse whitespace."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    chars = [" " if unicodedata.category(ch)[0] in ("P", "S") else ch for ch in folded]
    return _WHITESPACE.sub(" ", "".join(chars)).strip()


def compile_label_pattern(pattern: str) -> re.Pattern[str] | None:
    """The compiled label regex, or None for an empty pattern.

    Raises ConfigError when the pattern is not a valid regular expression.
    """
    if not pattern:
        return None
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ConfigError(
            f"label pattern {pattern!r} is not a valid regular expression ({exc}); "
            r"use e.g. 'Category: (\w+)'"
        ) from exc


def extract_label(text: str, pattern: re.Pattern[str] | None) -> str | None:
    """The label in ``text``: first capture group of the first match (whole match without groups), stripped."""
    if pattern is None:
        return None
    match = pattern.search(text)
    if match is None:
        return None
    value = match.group(1) if pattern.groups else match.group(0)
    if value is None:
        return None
    value = value.strip()
    return value or None


def sentence_scorers() -> tuple[object, object]:
    """sacrebleu's sentence-level BLEU (effective order, so short answers are not zeroed) and chrF scorers."""
    from sacrebleu.metrics import BLEU, CHRF

    return BLEU(effective_order=True), CHRF()


def sentence_bleu(reference: str, response: str, scorer: object | None = None) -> float:
    """Sentence BLEU of ``response`` against ``reference``, 0 to 1 (sacrebleu's 0-100 divided by 100).

    Args:
        reference: the expected answer.
        response: the model's answer (empty scores 0).
        scorer: a BLEU scorer from :func:`sentence_scorers` (made here when None).
    """
    return _sacrebleu_sentence(scorer if scorer is not None else sentence_scorers()[0], reference, response)


def sentence_chrf(reference: str, response: str, scorer: object | None = None) -> float:
    """chrF (character n-gram F-score) of ``response`` against ``reference``, 0 to 1.

    Args:
        reference: the expected answer.
        response: the model's answer (empty scores 0).
        scorer: a chrF scorer from :func:`sentence_scorers` (made here when None).
    """
    return _sacrebleu_sentence(scorer if scorer is not None else sentence_scorers()[1], reference, response)


def _sacrebleu_sentence(scorer: object, reference: str, response: str) -> float:
    """A sacrebleu sentence score scaled to 0-1; an empty side scores 1 only when both are empty."""
    if not response.strip() or not reference.strip():
        return float(response.strip() == reference.strip())
    return float(scorer.sentence_score(response, [reference]).score) / 100.0  # type: ignore[attr-defined]


@dataclass(frozen=True)
class ExampleScores:
    """Scores of one model answer against its reference."""

    rouge1: float
    rouge2: float
    rougeL: float
    exact_match: float
    normalized_exact_match: float
    label: str | None
    response_chars: int
    response_words: int
    bleu: float = 0.0
    chrf: float = 0.0

    def as_dict(self) -> dict[str, float | int | str | None]:
        return {
            "rouge1": self.rouge1,
            "rouge2": self.rouge2,
            "rougeL": self.rougeL,
            "exact_match": self.exact_match,
            "normalized_exact_match": self.normalized_exact_match,
            "label": self.label,
            "response_chars": self.response_chars,
            "response_words": self.response_words,
            "bleu": self.bleu,
            "chrf": self.chrf,
        }


class ResponseScorer:
    """Scores answers against references (ROUGE with stemming, exact matches, labels)."""

    def __init__(self, label_pattern: str = "") -> None:
        from rouge_score import rouge_scorer

        self._rouge = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
        self._bleu, self._chrf = sentence_scorers()
        self.label_pattern = compile_label_pattern(label_pattern)

    def reference_label(self, reference: str) -> str | None:
        return extract_label(reference, self.label_pattern)

    def score(self, reference: str, response: str) -> ExampleScores:
        """Score one answer; an empty answer is scored (zero overlap), a failed call must not reach here."""
        rouge = self._rouge.score(reference, response)
        return ExampleScores(
            rouge1=float(rouge["rouge1"].fmeasure),
            rouge2=float(rouge["rouge2"].fmeasure),
            rougeL=float(rouge["rougeL"].fmeasure),
            exact_match=float(response.strip() == reference.strip()),
            normalized_exact_match=float(normalize_text(response) == normalize_text(reference)),
            label=extract_label(response, self.label_pattern),
            response_chars=len(response),
            response_words=len(response.split()),
            bleu=sentence_bleu(reference, response, self._bleu),
            chrf=sentence_chrf(reference, response, self._chrf),
        )


@dataclass(frozen=True)
class ConfusionMatrix:
    """Rows are reference labels, columns predicted labels, in ``categories`` order."""

    categories: list[str]
    matrix: list[list[int]]


# ---------------------------------------------------------------------------
# Aggregation, vectorised over bootstrap replicates.
#
# Every aggregate is a ratio of sums over examples, so a replicate is a vector of
# per-example draw counts and each aggregate is (counts @ numerator) / (counts @
# denominator). The full sample is the replicate with every count equal to one.
# ---------------------------------------------------------------------------


@dataclass
class _ModelArrays:
    """Per-example arrays of one model, aligned to the holdout order."""

    ok: np.ndarray  # 1.0 when the model answered, 0.0 for a failed call
    values: dict[str, np.ndarray]  # score per text metric, 0 where not ok
    predicted: list[str | None]


def _model_arrays(scores: Sequence[ExampleScores | None]) -> _ModelArrays:
    ok = np.array([s is not None for s in scores], dtype=float)
    values = {
        name: np.array([getattr(s, name) if s is not None else 0.0 for s in scores], dtype=float)
        for name in TEXT_METRICS
    }
    return _ModelArrays(ok=ok, values=values, predicted=[s.label if s is not None else None for s in scores])


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1.0), np.nan)


@dataclass
class _LabelArrays:
    classes: list[str]
    labelled: np.ndarray  # reference has a label
    reference: list[str | None]


def _aggregates(
    counts: np.ndarray, model: _ModelArrays, labels: _LabelArrays | None
) -> dict[str, np.ndarray]:
    """Aggregates of one model for each row of ``counts`` (replicates x examples)."""
    answered = counts @ model.ok
    result = {name: _ratio(counts @ (model.values[name] * model.ok), answered) for name in TEXT_METRICS}
    if labels is not None:
        eligible = model.ok * labels.labelled
        correct = np.array(
            [1.0 if p is not None and p == r else 0.0 for p, r in zip(model.predicted, labels.reference)]
        )
        result["label_accuracy"] = _ratio(counts @ (correct * eligible), counts @ eligible)
        f1_per_class = []
        for label in labels.classes:
            ref_is = np.array([1.0 if r == label else 0.0 for r in labels.reference]) * eligible
            pred_is = np.array([1.0 if p == label else 0.0 for p in model.predicted]) * eligible
            tp = counts @ (ref_is * pred_is)
            fp = counts @ (pred_is * (1.0 - ref_is))
            fn = counts @ (ref_is * (1.0 - pred_is))
            f1_per_class.append(_ratio(2 * tp, 2 * tp + fp + fn))
        if f1_per_class:
            stacked = np.vstack(f1_per_class)
            with np.errstate(invalid="ignore"):
                present = ~np.isnan(stacked)
                total = np.where(present, stacked, 0.0).sum(axis=0)
                n_present = present.sum(axis=0)
            result["label_macro_f1"] = _ratio(total, n_present.astype(float))
        else:
            result["label_macro_f1"] = np.full(counts.shape[0], np.nan)
    return result


def _bootstrap_counts(n: int, samples: int, rng: np.random.Generator, batch: int = 250) -> Iterable[np.ndarray]:
    """Draw-count matrices (batch x n) of ``samples`` bootstrap replicates, in batches to bound memory."""
    done = 0
    while done < samples:
        size = min(batch, samples - done)
        yield rng.multinomial(n, np.full(n, 1.0 / n), size=size).astype(float)
        done += size


def _length_stats(values: Sequence[int]) -> dict[str, float]:
    if not values:
        return {"mean": math.nan, "median": math.nan, "p95": math.nan}
    return {
        "mean": float(statistics.fmean(values)),
        "median": float(statistics.median(values)),
        "p95": float(np.percentile(np.array(values, dtype=float), 95)),
    }


def confusion_matrix(
    references: Sequence[str | None], predictions: Sequence[str | None], classes: Sequence[str]
) -> ConfusionMatrix:
    """Counts of (reference, predicted) label pairs over examples whose reference has a label.

    Predictions that are not one of ``classes`` (including no label found) go to the
    ``(other)`` column, which is added only when used.
    """
    class_list = list(classes)
    index = {label: i for i, label in enumerate(class_list)}
    pairs = [(r, p) for r, p in zip(references, predictions) if r is not None and r in index]
    needs_other = any(p not in index for _, p in pairs)
    categories = class_list + ([OTHER_LABEL] if needs_other else [])
    size = len(categories)
    matrix = [[0] * size for _ in range(size)]
    for ref, pred in pairs:
        column = index.get(pred, size - 1) if pred is not None else size - 1
        matrix[index[ref]][column] += 1
    return ConfusionMatrix(categories=categories, matrix=matrix)


@dataclass
class MetricsSummary:
    """Flat metrics plus the tables the report draws from."""

    metrics: dict[str, float]
    confusion: dict[str, ConfusionMatrix] = field(default_factory=dict)
    label_classes: list[str] = field(default_factory=list)


def summarize(
    references: Sequence[str],
    scores: Mapping[str, Sequence[ExampleScores | None]],
    *,
    reference_labels: Sequence[str | None] | None = None,
    bootstrap_samples: int = 1000,
    seed: int = 42,
    confidence: float = 0.95,
    tie_tolerance: float = 1e-9,
) -> MetricsSummary:
    """Aggregate per-example scores into flat metrics.

    ``scores`` maps a model role (``base``, ``tuned``, optionally ``champion``) to one
    entry per holdout example, None where that model's call failed. Names produced,
    for every score metric M (``rouge1``, ``rouge2``, ``rougeL``, ``exact_match``,
    ``normalized_exact_match``, and with labels ``label_accuracy``, ``label_macro_f1``):
    ``{role}_M``, ``delta_M`` = tuned - base with ``delta_M_ci_low``/``_ci_high``, and
    with a champion ``delta_vs_champion_M`` = tuned - champion with its interval (``delta_vs_gemini_M`` the
    same against a compared Gemini model). Also
    ``n_examples``, ``{role}_errors``, ``{role}_error_rate``, ``{role}_answered``,
    ``{role}_response_chars_mean``/``_median``/``_p95``, ``{role}_response_words_mean``,
    ``reference_chars_mean``, ``wins_M``/``ties_M``/``losses_M`` (tuned vs base per example,
    both answered) for ROUGE metrics, ``n_label_examples``, ``n_label_classes``.

    Raises EvaluationError when there are no examples or base/tuned are missing.
    """
    n = len(references)
    if n == 0:
        raise EvaluationError("no holdout examples to score; check that the holdout split is not empty")
    for role in (BASE, TUNED):
        if role not in scores:
            raise EvaluationError(f"scores for the {role} model are missing")
    for role, entries in scores.items():
        if len(entries) != n:
            raise EvaluationError(f"{role} has {len(entries)} scored entries for {n} examples")
    if bootstrap_samples < 0:
        raise ConfigError("bootstrap_samples must be >= 0 (0 disables confidence intervals)")
    if not 0.0 < confidence < 1.0:
        raise ConfigError("confidence must be between 0 and 1, e.g. 0.95")

    labels: _LabelArrays | None = None
    if reference_labels is not None:
        classes = sorted({label for label in reference_labels if label is not None})
        labels = _LabelArrays(
            classes=classes,
            labelled=np.array([1.0 if r is not None else 0.0 for r in reference_labels]),
            reference=list(reference_labels),
        )

    arrays = {role: _model_arrays(entries) for role, entries in scores.items()}
    ones = np.ones((1, n))
    point = {role: {k: float(v[0]) for k, v in _aggregates(ones, arr, labels).items()} for role, arr in arrays.items()}
    metric_names = list(TEXT_METRICS) + (list(LABEL_METRICS) if labels is not None else [])

    metrics: dict[str, float] = {"n_examples": float(n)}
    for role, arr in arrays.items():
        answered = int(arr.ok.sum())
        metrics[f"{role}_answered"] = float(answered)
        metrics[f"{role}_errors"] = float(n - answered)
        metrics[f"{role}_error_rate"] = (n - answered) / n
        for name in metric_names:
            metrics[f"{role}_{name}"] = point[role][name]
        answered_scores = [s for s in scores[role] if s is not None]
        chars = _length_stats([s.response_chars for s in answered_scores])
        metrics[f"{role}_response_chars_mean"] = chars["mean"]
        metrics[f"{role}_response_chars_median"] = chars["median"]
        metrics[f"{role}_response_chars_p95"] = chars["p95"]
        metrics[f"{role}_response_words_mean"] = _length_stats([s.response_words for s in answered_scores])["mean"]
    metrics["reference_chars_mean"] = _length_stats([len(r) for r in references])["mean"]

    comparisons = [("delta", TUNED, BASE)]
    if CHAMPION in arrays:
        comparisons.append(("delta_vs_champion", TUNED, CHAMPION))
    if GEMINI in arrays:
        comparisons.append(("delta_vs_gemini", TUNED, GEMINI))
    for prefix, candidate, baseline in comparisons:
        for name in metric_names:
            metrics[f"{prefix}_{name}"] = point[candidate][name] - point[baseline][name]

    # Paired bootstrap: the same resampled examples for every model.
    if bootstrap_samples > 0:
        rng = np.random.default_rng(seed)
        replicate_deltas: dict[str, list[np.ndarray]] = {}
        for counts in _bootstrap_counts(n, bootstrap_samples, rng):
            per_role = {role: _aggregates(counts, arr, labels) for role, arr in arrays.items()}
            for prefix, candidate, baseline in comparisons:
                for name in metric_names:
                    replicate_deltas.setdefault(f"{prefix}_{name}", []).append(
                        per_role[candidate][name] - per_role[baseline][name]
                    )
        alpha = (1.0 - confidence) / 2.0
        for key, chunks in replicate_deltas.items():
            deltas = np.concatenate(chunks)
            deltas = deltas[~np.isnan(deltas)]
            if deltas.size == 0:
                low = high = math.nan
            else:
                low, high = (float(x) for x in np.quantile(deltas, [alpha, 1.0 - alpha]))
            metrics[f"{key}_ci_low"] = low
            metrics[f"{key}_ci_high"] = high

    for name in ("rouge1", "rouge2", "rougeL"):
        base_values, tuned_values = arrays[BASE].values[name], arrays[TUNED].values[name]
        both = (arrays[BASE].ok * arrays[TUNED].ok).astype(bool)
        diff = tuned_values[both] - base_values[both]
        metrics[f"wins_{name}"] = float((diff > tie_tolerance).sum())
        metrics[f"losses_{name}"] = float((diff < -tie_tolerance).sum())
        metrics[f"ties_{name}"] = float(both.sum() - (diff > tie_tolerance).sum() - (diff < -tie_tolerance).sum())

    confusion: dict[str, ConfusionMatrix] = {}
    if labels is not None:
        metrics["n_label_examples"] = float(labels.labelled.sum())
        metrics["n_label_classes"] = float(len(labels.classes))
        for role, arr in arrays.items():
            answered_refs = [r if ok else None for r, ok in zip(labels.reference, arr.ok)]
            confusion[role] = confusion_matrix(answered_refs, arr.predicted, labels.classes)
    return MetricsSummary(metrics=metrics, confusion=confusion, label_classes=labels.classes if labels else [])
