"""Human ratings: appended to ``human_ratings.jsonl`` as they are given, and summarised as a win rate.

One JSON line per rating, written and fsynced before the reviewer is told it
was saved, so a killed server loses nothing that was acknowledged. A rating
records what was shown where (``shown``: the roles of answer 1 and answer 2),
so the file unblinds itself. A later rating of the same prompt replaces an
earlier one in the summary; the file keeps both.

The win rate is the candidate's (``tuned``) share of decisive-or-tied ratings,
**ties counted as half a win**, skips excluded: ``(wins + ties / 2) / (wins +
ties + losses)``, with a Wilson score interval on that share.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import threading
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from statistics import NormalDist
from typing import Any, Iterable, Mapping

from gemini_sft.errors import InputFormatError

log = logging.getLogger(__name__)

RATINGS_FILE = "human_ratings.jsonl"
CHOICES = ("1", "2", "tie", "skip")
CANDIDATE = "tuned"
BASELINE = "base"
TIE_POLICY = "Ties count as half a win; skips are excluded"


@dataclass(frozen=True)
class Rating:
    """One reviewer decision about one prompt.

    ``choice`` is what was pressed (``1``, ``2``, ``tie``, ``skip``); ``shown``
    the roles displayed as answer 1 and answer 2; ``winner`` the role that won
    (``tie`` or None for a skip).
    """

    example_id: str
    choice: str
    shown: tuple[str, str]
    winner: str | None
    note: str
    rated_at: str

    @classmethod
    def make(cls, example_id: str, choice: str, shown: tuple[str, str], note: str = "") -> "Rating":
        """A rating made now; ValueError for an unknown choice."""
        if choice not in CHOICES:
            raise ValueError(f"choice must be one of {CHOICES}, got {choice!r}")
        winner = {"1": shown[0], "2": shown[1], "tie": "tie", "skip": None}[choice]
        stamp = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return cls(example_id, choice, (shown[0], shown[1]), winner, note, stamp)

    def to_line(self) -> str:
        return json.dumps({**asdict(self), "shown": list(self.shown)}, ensure_ascii=False) + "\n"


class RatingsFile:
    """``human_ratings.jsonl``: append with fsync, read back tolerating a torn last line. Thread-safe."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def append(self, rating: Rating) -> None:
        """Write one rating durably (flush + fsync) before returning; OSError when the disk refuses."""
        line = rating.to_line().encode("utf-8")
        with self._lock:
            descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                if self._ends_torn():
                    os.write(descriptor, b"\n")  # a line torn by a crash must not swallow this one
                os.write(descriptor, line)
                os.fsync(descriptor)
            finally:
                os.close(descriptor)

    def _ends_torn(self) -> bool:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return False
        if size == 0:
            return False
        with self.path.open("rb") as handle:
            handle.seek(size - 1)
            return handle.read(1) != b"\n"

    def read(self) -> list[Rating]:
        """Every rating in file order; a line that is not a rating (a torn write) is skipped with a warning."""
        if not self.path.is_file():
            return []
        ratings: list[Rating] = []
        bad = 0
        with self.path.open(encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if not line.strip():
                    continue
                try:
                    data = json.loads(line)
                    ratings.append(
                        Rating(
                            example_id=str(data["example_id"]),
                            choice=str(data["choice"]),
                            shown=(str(data["shown"][0]), str(data["shown"][1])),
                            winner=data.get("winner"),
                            note=str(data.get("note", "")),
                            rated_at=str(data.get("rated_at", "")),
                        )
                    )
                except (ValueError, KeyError, IndexError, TypeError):
                    bad += 1
        if bad:
            log.warning("%s: skipped %d line(s) that are not ratings", self.path, bad)
        return ratings


def latest_by_example(ratings: Iterable[Rating]) -> dict[str, Rating]:
    """The last rating of each prompt."""
    latest: dict[str, Rating] = {}
    for rating in ratings:
        latest[rating.example_id] = rating
    return latest


def wilson_interval(successes: float, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion; (nan, nan) without trials."""
    if trials <= 0:
        return math.nan, math.nan
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class ReviewSummary:
    """Counts and the candidate's win rate (ties as half) with its Wilson interval."""

    wins: int
    losses: int
    ties: int
    skips: int
    win_rate: float
    ci_low: float
    ci_high: float
    confidence: float = 0.95
    tie_policy: str = TIE_POLICY

    @property
    def rated(self) -> int:
        """Ratings that count (skips excluded)."""
        return self.wins + self.losses + self.ties

    def as_metrics(self) -> dict[str, float]:
        """The summary as flat numbers for a promotion record (names start ``human_``)."""
        return {
            "human_wins": float(self.wins),
            "human_losses": float(self.losses),
            "human_ties": float(self.ties),
            "human_skips": float(self.skips),
            "human_win_rate": self.win_rate,
            "human_win_rate_ci_low": self.ci_low,
            "human_win_rate_ci_high": self.ci_high,
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN, without ratings, becomes None)."""
        data = {**asdict(self), "rated": self.rated}
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in data.items()}


def summarize(ratings: Iterable[Rating], candidate: str = CANDIDATE, confidence: float = 0.95) -> ReviewSummary:
    """The candidate's win rate over the latest rating of each prompt (see the module docstring)."""
    wins = losses = ties = skips = 0
    for rating in latest_by_example(ratings).values():
        if rating.winner is None:
            skips += 1
        elif rating.winner == "tie":
            ties += 1
        elif rating.winner == candidate:
            wins += 1
        else:
            losses += 1
    trials = wins + losses + ties
    rate = (wins + 0.5 * ties) / trials if trials else math.nan
    low, high = wilson_interval(wins + 0.5 * ties, trials, confidence)
    return ReviewSummary(wins, losses, ties, skips, rate, low, high, confidence)


def _cell(value: str) -> str:
    """A CSV cell that a spreadsheet will not run as a formula (untrusted text)."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def ratings_csv(ratings: Iterable[Rating], items: Mapping[str, Any]) -> str:
    """CSV of the latest rating per prompt, unblinded: which model was shown where and which won.

    ``items`` maps example ids to objects with ``prompt`` and ``answers`` (role -> text).
    """
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["example_id", "choice", "winner", "answer_1_model", "answer_2_model", "note", "rated_at",
                     "prompt", "answer_1", "answer_2"])
    for rating in latest_by_example(ratings).values():
        item = items.get(rating.example_id)
        prompt = item.prompt if item is not None else ""
        answers = item.answers if item is not None else {}
        writer.writerow([
            _cell(rating.example_id), rating.choice, rating.winner or "", rating.shown[0], rating.shown[1],
            _cell(rating.note), rating.rated_at, _cell(prompt),
            _cell(answers.get(rating.shown[0], "")), _cell(answers.get(rating.shown[1], "")),
        ])
    return out.getvalue()


def ratings_path_for(predictions: Path) -> Path:
    """``human_ratings.jsonl`` beside a predictions file."""
    return predictions.parent / RATINGS_FILE


def read_ratings(path: Path) -> list[Rating]:
    """The ratings of a file; InputFormatError when it does not exist."""
    if not path.is_file():
        raise InputFormatError(f"Ratings file {path} does not exist; rate the pairs first with gemini-sft review.")
    return RatingsFile(path).read()
