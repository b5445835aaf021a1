"""BLEU and chrF next to ROUGE: per answer, per model, and the improvement with its bootstrap interval."""

from __future__ import annotations

import pytest

from gemini_sft.evaluation.metrics import BASE, TUNED, ResponseScorer, sentence_bleu, sentence_chrf, summarize

REFERENCE = "The refund was sent to the customer's card on Monday."


def test_an_exact_answer_scores_one_and_an_empty_one_zero() -> None:
    assert sentence_bleu(REFERENCE, REFERENCE) == pytest.approx(1.0)
    assert sentence_chrf(REFERENCE, REFERENCE) == pytest.approx(1.0)
    assert sentence_bleu(REFERENCE, "") == 0.0 and sentence_chrf(REFERENCE, "") == 0.0


def test_a_closer_answer_scores_higher_on_both() -> None:
    close = "The refund was sent to the customer's card on Tuesday."
    far = "We cannot help with that."
    assert sentence_bleu(REFERENCE, far) < sentence_bleu(REFERENCE, close) < 1.0
    assert 0.0 < sentence_chrf(REFERENCE, far) < sentence_chrf(REFERENCE, close) < 1.0


def test_sentence_bleu_agrees_with_sacrebleu_scaled_to_one() -> None:
    from sacrebleu.metrics import BLEU

    answer = "The refund went to the card of the customer on Monday."
    expected = BLEU(effective_order=True).sentence_score(answer, [REFERENCE]).score / 100
    assert sentence_bleu(REFERENCE, answer) == pytest.approx(expected)


def test_summary_has_bleu_and_chrf_per_model_and_the_delta_with_its_interval() -> None:
    scorer = ResponseScorer()
    references = [f"Ticket {i} goes to the billing team today." for i in range(12)]
    base = [scorer.score(r, "No idea.") for r in references]
    tuned = [scorer.score(r, r if i % 3 else r.replace("today", "tomorrow")) for i, r in enumerate(references)]
    metrics = summarize(references, {BASE: base, TUNED: tuned}, bootstrap_samples=200, seed=1).metrics
    for name in ("bleu", "chrf"):
        assert metrics[f"tuned_{name}"] > metrics[f"base_{name}"]
        assert metrics[f"delta_{name}"] == pytest.approx(metrics[f"tuned_{name}"] - metrics[f"base_{name}"])
        assert metrics[f"delta_{name}_ci_low"] <= metrics[f"delta_{name}"] <= metrics[f"delta_{name}_ci_high"]
    assert scorer.score(REFERENCE, REFERENCE).as_dict()["chrf"] == pytest.approx(1.0)
