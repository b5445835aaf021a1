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


OVERFITTING = {"overfitting": True, "known": True,
               "message": "Overfitting: the eval loss was lowest (0.5500) at step 68, before the last epoch."}


def test_the_markdown_section_tables_every_checkpoint_and_marks_the_chosen_one() -> None:
    from gemini_sft.evaluation.markdown_report import render_checkpoint_markdown

    text = render_checkpoint_markdown({**CHOICE, "overfitting": OVERFITTING,
                                       "sample_note": "Each checkpoint answered the same 33 validation examples."})
    rows = [line for line in text.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert rows == ["| 1 | 1 | 34 | 0.6200 | 0.7700 | 0.7900 |  |",
                    "| 2 | 2 | 68 | 0.9300 | 0.3500 | 0.5500 | **chosen** |",
                    "| 3 | 3 | 102 | 0.8400 | 0.2200 | 0.7500 |  |"]
    assert "## Which checkpoint" in text and "same 33 validation examples" in text
    assert f"**{OVERFITTING['message']}**" in text
    assert "No loss curves" not in text and "No intermediate checkpoints" not in text


def test_the_markdown_section_says_when_there_was_nothing_to_choose_and_no_curves() -> None:
    from gemini_sft.evaluation.markdown_report import render_checkpoint_markdown

    single = {"rule": "last", "reason": "The job has one checkpoint only.", "validation_examples": 0,
              "checkpoints": [{"checkpoint_id": "1", "epoch": 3}], "chosen": {"checkpoint_id": "1"},
              "loss_curves_note": "the experiment has no time series",
              "tuning": {"loss_curves": {"train": [], "eval": []}}}
    text = render_checkpoint_markdown(single)
    assert "No intermediate checkpoints" in text and "the experiment has no time series" in text
    assert "Overfitting was not judged" in text and "| 1 | 3 | – | – | – | – | **chosen** |" in text


def test_the_markdown_section_is_appended_to_the_report(tmp_path: Path) -> None:
    from gemini_sft.evaluation.checkpoint_section import add_checkpoint_markdown

    report = tmp_path / "report.md"
    report.write_text("# Evaluation: tuned vs base\n\nbody\n")
    add_checkpoint_markdown(report, CHOICE)
    text = report.read_text()
    assert text.startswith("# Evaluation: tuned vs base\n\nbody\n") and text.index("## Which checkpoint") > 0
