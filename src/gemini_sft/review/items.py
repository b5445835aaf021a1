"""The pairs to review: holdout prompts with the base and tuned answers, blinded.

Reads the predictions JSONL an evaluation writes (``predictions.jsonl`` of
``gemini-sft evaluate``, the ``predictions`` artifact of the pipeline's
evaluate step, or a local run folder holding one). A prompt is reviewable when
both models answered it without an error.

Blinding: which answer is shown first is drawn per prompt from a random salt
kept in ``review_blinding.json`` beside the predictions (made once), so the
order is the same when the reviewer comes back, differs between evaluations,
and every rating records it.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from gemini_sft.errors import InputFormatError
from gemini_sft.storage import read_json_lines

BLINDING_FILE = "review_blinding.json"
PAIR = ("base", "tuned")
_PREDICTION_NAMES = ("predictions.jsonl", "predictions")


@dataclass(frozen=True)
class ReviewItem:
    """One prompt with the two answers, and the order they are shown in (roles of answer 1 and 2)."""

    example_id: str
    prompt: str
    reference: str
    answers: dict[str, str]
    shown: tuple[str, str]

    def shown_answers(self) -> tuple[str, str]:
        return self.answers[self.shown[0]], self.answers[self.shown[1]]


def find_predictions(location: str | Path) -> Path:
    """The predictions file of a file, an evaluation folder or a local run folder (newest run first).

    Raises InputFormatError naming what was looked for when there is none.
    """
    path = Path(location)
    if path.is_file():
        return path
    if not path.is_dir():
        raise InputFormatError(f"{path} does not exist; give a run folder, an evaluation folder or a predictions file.")
    candidates = [path / name for name in _PREDICTION_NAMES]
    candidates += [path / "evaluate-models" / name for name in _PREDICTION_NAMES]
    found = [c for c in candidates if c.is_file()]
    if not found:
        found = sorted(path.glob("pipeline_root/*/evaluate-models/predictions"), key=lambda p: p.stat().st_mtime)
        found.reverse()
    if not found:
        raise InputFormatError(
            f"No predictions in {path}: expected predictions.jsonl (gemini-sft evaluate) or "
            "pipeline_root/<run>/evaluate-models/predictions (gemini-sft run --local)."
        )
    return found[0]


def _salt(folder: Path) -> str:
    """The blinding salt of an evaluation folder, made on first use."""
    file = folder / BLINDING_FILE
    if not file.is_file():
        try:
            with file.open("x", encoding="utf-8") as handle:
                json.dump({"salt": secrets.token_hex(16), "pair": list(PAIR)}, handle)
        except FileExistsError:
            pass  # made by another process a moment ago
    try:
        return str(json.loads(file.read_text(encoding="utf-8"))["salt"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InputFormatError(f"{file} is damaged ({exc}); remove it to draw a new order.") from exc


def shown_order(salt: str, example_id: str) -> tuple[str, str]:
    """The roles of answer 1 and answer 2 for one prompt: a coin flip seeded by the salt and the id."""
    flip = hashlib.sha256(f"{salt}\n{example_id}".encode("utf-8")).digest()[0] & 1
    return (PAIR[1], PAIR[0]) if flip else PAIR


def load_items(predictions: Path) -> tuple[list[ReviewItem], int]:
    """The reviewable pairs in file order and how many rows were left out (an error or a missing answer).

    Raises InputFormatError when a line is not JSON or no row has both answers.
    """
    salt = _salt(predictions.parent)
    items: list[ReviewItem] = []
    left_out = 0
    for number, row in read_json_lines(predictions):
        answers = {}
        for role in PAIR:
            answer = row.get(role) if isinstance(row, dict) else None
            if isinstance(answer, dict) and answer.get("error") is None and isinstance(answer.get("answer"), str):
                answers[role] = answer["answer"]
        if len(answers) != len(PAIR):
            left_out += 1
            continue
        example_id = str(row.get("example_id", f"line-{number}"))
        items.append(
            ReviewItem(
                example_id=example_id,
                prompt=str(row.get("prompt", "")),
                reference=str(row.get("reference", "")),
                answers=answers,
                shown=shown_order(salt, example_id),
            )
        )
    if not items:
        raise InputFormatError(f"{predictions} has no prompt that both the base and the tuned model answered.")
    return items, left_out
