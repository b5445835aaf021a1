"""What a human decision needs from a run: its pipeline run name, predictions, ratings, train split, label pattern.

``approve``, ``reject`` and ``canary`` accept either a local run folder (or an
evaluation folder) or the name of a pipeline run / model version. For a folder
the pieces are found on disk; for a name they come from the staged record and
the options given.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from gemini_sft.review.items import find_predictions
from gemini_sft.review.ratings import ReviewSummary, ratings_path_for


@dataclass(frozen=True)
class RunOutputs:
    """Where a run's review inputs are ("" / None when the run folder does not have them)."""

    run_name: str
    predictions: Path
    ratings: Path
    train_split: Path | None
    label_pattern: str


def locate_run(location: str) -> RunOutputs | None:
    """The outputs of a run or evaluation folder, or None when ``location`` is not a folder or file.

    Raises InputFormatError when it is a folder without predictions.
    """
    path = Path(location)
    if not path.exists():
        return None
    predictions = find_predictions(path)
    step_dir = predictions.parent
    run_dir = step_dir.parent if step_dir.name == "evaluate-models" else None
    train = run_dir / "clean-data" / "train.jsonl" if run_dir is not None else None
    label_pattern = ""
    evaluation = step_dir / ("evaluation" if run_dir is not None else "evaluation.json")
    if evaluation.is_file():
        try:
            label_pattern = str(json.loads(evaluation.read_text(encoding="utf-8")).get("label_pattern") or "")
        except (ValueError, AttributeError):
            label_pattern = ""
    return RunOutputs(
        run_name=run_dir.name if run_dir is not None else "",
        predictions=predictions,
        ratings=ratings_path_for(predictions),
        train_split=train if train is not None and train.is_file() else None,
        label_pattern=label_pattern,
    )


def approval_check(summary: ReviewSummary, min_win_rate: float, min_ratings: int) -> tuple[bool, list[str]]:
    """``(approved, reasons)``: enough counted ratings, and the tuned win rate (ties as half) reaching the share."""
    reasons: list[str] = []
    approved = True
    if summary.rated < min_ratings:
        approved = False
        reasons.append(
            f"only {summary.rated} rating(s) count (skips excluded); at least {min_ratings} are needed: "
            "rate more pairs with gemini-sft review"
        )
    if summary.rated == 0:
        return False, reasons
    verdict = "reaches" if summary.win_rate >= min_win_rate else "is below"
    reasons.append(
        f"tuned win rate {summary.win_rate:.3f} (95% Wilson interval {summary.ci_low:.3f}-{summary.ci_high:.3f}; "
        f"{summary.wins} wins, {summary.ties} ties, {summary.losses} losses, {summary.skips} skipped) "
        f"{verdict} the required {min_win_rate:.3f}"
    )
    approved = approved and summary.win_rate >= min_win_rate
    return approved, reasons
