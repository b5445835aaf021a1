"""The report's "Which checkpoint" section: the loss curves, every checkpoint's scores, the chosen one and why."""

from __future__ import annotations

from pathlib import Path

from gemini_sft.evaluation.checkpoint_section import SECTION_TITLE, add_checkpoint_section, render_checkpoint_section

CHOICE = {
    "rule": "best_validation_metric",
    "reason": "checkpoint 2 (epoch 2) scored highest on the validation split (0.9331) of 3 checkpoints scored.",
    "primary_metric": "rougeL",
    "validation_examples": 36,
    "calls": 108,
    "chosen": {"checkpoint_id": "2"},
    "checkpoints": [
        {"checkpoint_id": str(e), "epoch": e, "step": 34 * e, "validation_score": s, "train_loss": t, "eval_loss": v}
        for e, s, t, v in ((1, 0.62, 0.77, 0.79), (2, 0.93, 0.35, 0.55), (3, 0.84, 0.22, 0.75))
    ],
    "tuning": {"loss_curves": {"train": [[10, 1.5], [60, 0.5], [102, 0.2]],
                               "eval": [[34, 0.8], [68, 0.55], [102, 0.75]]}},
}


def test_the_section_shows_curves_scores_and_the_reason() -> None:
    section = render_checkpoint_section(CHOICE)
    assert SECTION_TITLE in section and CHOICE["reason"] in section
    assert "<polyline" in section  # the loss chart
    assert "0.9300" in section and "0.8400" in section and "0.5500" in section
    assert '<tr style="font-weight:bold"><td>2</td>' in section


def test_a_choice_without_curves_says_so() -> None:
    section = render_checkpoint_section({**CHOICE, "tuning": {"loss_curves": {"train": [], "eval": []}}})
    assert "No loss curves" in section and "<polyline" not in section


def test_the_section_goes_inside_the_report_page(tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    report.write_text("<html><body><main><h1>Evaluation</h1></main></body></html>")
    add_checkpoint_section(report, CHOICE)
    page = report.read_text()
    assert page.index(SECTION_TITLE) < page.index("</main>") and page.startswith("<html>")
