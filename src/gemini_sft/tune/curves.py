"""Loss curves of a tuning job: the artifact's shape, the overfitting flag, the values at each checkpoint, the chart.

Vertex writes the job's curves to the TensorBoard behind the job's Experiment
(``/train_total_loss``, ``/eval_total_loss``,
``/train_fraction_of_correct_next_step_preds``, ``/eval_...``); the reader in
``gemini_sft.vertex_client`` (section "Experiment and TensorBoard curves")
returns them as :class:`LossCurves`. The tune step stores them as the JSON
``{"train": [[step, value], ...], "eval": [...], "train_accuracy": [...],
"eval_accuracy": [...], "note": "..."}``.

Overfitting, in this module's words: the eval loss reached its lowest value
by the end of the last-but-one epoch, the last eval loss is above that lowest value by
more than ``margin`` (relative), and the train loss still fell after the
lowest eval point. :func:`overfitting_verdict` says so in a plain sentence, or
says why it cannot tell.
"""

from __future__ import annotations

import base64
import bisect
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

Point = tuple[int, float]

SERIES_TRAIN_LOSS = "/train_total_loss"
SERIES_EVAL_LOSS = "/eval_total_loss"
SERIES_TRAIN_ACCURACY = "/train_fraction_of_correct_next_step_preds"
SERIES_EVAL_ACCURACY = "/eval_fraction_of_correct_next_step_preds"
# artifact key -> TensorBoard series name
SERIES_BY_KEY: dict[str, str] = {
    "train": SERIES_TRAIN_LOSS,
    "eval": SERIES_EVAL_LOSS,
    "train_accuracy": SERIES_TRAIN_ACCURACY,
    "eval_accuracy": SERIES_EVAL_ACCURACY,
}
# The last eval loss must exceed the lowest by more than this share of it to count as overfitting.
OVERFITTING_MARGIN = 0.02


def _points(values: Any) -> tuple[Point, ...]:
    """``[[step, value], ...]`` (or pairs) sorted by step, non-finite values dropped."""
    points = []
    for pair in values or ():
        step, value = int(pair[0]), float(pair[1])
        if math.isfinite(value):
            points.append((step, value))
    return tuple(sorted(points))


@dataclass(frozen=True)
class LossCurves:
    """The job's curves as (step, value) points sorted by step; ``note`` says why some are missing."""

    train: tuple[Point, ...] = ()
    eval: tuple[Point, ...] = ()
    train_accuracy: tuple[Point, ...] = ()
    eval_accuracy: tuple[Point, ...] = ()
    note: str = ""

    @classmethod
    def from_series(cls, series: Mapping[str, Sequence[Sequence[float]]], note: str = "") -> "LossCurves":
        """Curves from TensorBoard series keyed by name (``/train_total_loss``, ...); other series ignored.

        Args:
            series: series name -> (step, value) pairs.
            note: what the reader has to say (e.g. why there are no curves).
        """
        values = {key: _points(series.get(name)) for key, name in SERIES_BY_KEY.items()}
        return cls(note=note, **values)

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> "LossCurves":
        """Curves from the tune step's JSON artifact."""
        return cls(note=str(document.get("note", "")),
                   **{key: _points(document.get(key)) for key in SERIES_BY_KEY})

    @classmethod
    def missing(cls, why: str) -> "LossCurves":
        """No curves, and why."""
        return cls(note=why)

    @property
    def empty(self) -> bool:
        return not (self.train or self.eval)

    def as_json(self) -> dict[str, Any]:
        """The artifact: ``{"train": [[step, value], ...], "eval": [...], ..., "note": "..."}``."""
        document: dict[str, Any] = {key: [[s, v] for s, v in getattr(self, key)] for key in SERIES_BY_KEY}
        document["note"] = self.note
        return document


def value_at_step(points: Sequence[Point], step: int | None) -> float | None:
    """The curve's value at ``step``: the point at that step, else the last point before it (None if none).

    Args:
        points: (step, value) sorted by step.
        step: the checkpoint's step.
    """
    if step is None or not points:
        return None
    position = bisect.bisect_right([s for s, _ in points], step)
    return points[position - 1][1] if position else None


@dataclass(frozen=True)
class OverfittingVerdict:
    """Whether the curves show overfitting, and the sentence that says so (or why it cannot be told)."""

    overfitting: bool
    known: bool
    message: str
    best_eval_step: int | None = None
    extra: dict[str, float] = field(default_factory=dict)


def last_epoch_start(total_steps: int, epochs: int) -> int:
    """The step at which the last epoch begins, for ``epochs`` equal epochs over ``total_steps``."""
    return total_steps * (epochs - 1) // epochs if epochs > 0 else 0


def overfitting_verdict(
    curves: LossCurves, epochs: int, margin: float = OVERFITTING_MARGIN, total_steps: int | None = None
) -> OverfittingVerdict:
    """Overfitting as defined in the module docstring, in plain words.

    Args:
        curves: the job's curves.
        epochs: the job's epoch count.
        margin: relative excess of the last eval loss over the lowest one that counts (0.02 = 2 %).
        total_steps: the job's step count (``tuning_step_count``); None takes the last step of the curves.
    """
    if len(curves.eval) < 2 or not curves.train:
        return OverfittingVerdict(False, False, "Overfitting cannot be judged: the job has no eval loss curve "
                                  "with two points or more (no validation split, or no curves).")
    if epochs < 2:
        return OverfittingVerdict(False, False, "Overfitting cannot be judged on a single epoch.")
    steps = total_steps or max(curves.eval[-1][0], curves.train[-1][0])
    boundary = last_epoch_start(steps, epochs)
    best_step, best_value = min(curves.eval, key=lambda point: (point[1], point[0]))
    last_step, last_value = curves.eval[-1]
    train_at_best = value_at_step(curves.train, best_step)
    train_last = curves.train[-1][1]
    rise = (last_value - best_value) / best_value if best_value > 0 else math.inf
    train_falls = train_at_best is not None and train_last < train_at_best
    numbers = {"best_eval_loss": best_value, "last_eval_loss": last_value, "relative_rise": rise}
    if best_step <= boundary and rise > margin and train_falls:
        return OverfittingVerdict(
            True, True,
            f"Overfitting: the eval loss was lowest ({best_value:.4f}) at step {best_step}, before the last epoch, "
            f"and ended {rise:.0%} higher ({last_value:.4f} at step {last_step}) while the train loss still fell "
            f"({train_at_best:.4f} -> {train_last:.4f}). An earlier checkpoint is likely better; fewer epochs "
            "may do as well.",
            best_step, numbers,
        )
    return OverfittingVerdict(
        False, True,
        f"No overfitting seen: the eval loss was lowest ({best_value:.4f}) at step {best_step} and ended at "
        f"{last_value:.4f} (step {last_step}), within {margin:.0%} of it or in the last epoch.",
        best_step, numbers,
    )


def _scale(value: float, low: float, high: float, out_low: float, out_high: float) -> float:
    if high <= low:
        return (out_low + out_high) / 2
    return out_low + (value - low) * (out_high - out_low) / (high - low)


def loss_chart_svg(curves: LossCurves, checkpoint_steps: Sequence[int] = (), width: int = 560,
                   height: int = 260) -> str:
    """An SVG line chart of train (blue) and eval (orange) loss by step; dashed lines at checkpoint steps.

    Args:
        curves: the curves to draw (an empty one gives a chart that says so).
        checkpoint_steps: steps of the job's checkpoints.
        width: width in pixels.
        height: height in pixels.
    """
    left, right, top, bottom = 52, 12, 14, 34
    points = list(curves.train) + list(curves.eval)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
             f'height="{height}" font-family="sans-serif" font-size="11">',
             f'<rect width="{width}" height="{height}" fill="white"/>']
    if not points:
        parts.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle">no loss curves</text></svg>')
        return "".join(parts)
    steps = [s for s, _ in points] + list(checkpoint_steps)
    values = [v for _, v in points]
    x_low, x_high = min(steps), max(steps)
    y_low, y_high = min(values), max(values)
    pad = (y_high - y_low) * 0.05 or 0.05
    y_low, y_high = y_low - pad, y_high + pad

    def x(step: float) -> float:
        return _scale(step, x_low, x_high, left, width - right)

    def y(value: float) -> float:
        return _scale(value, y_low, y_high, height - bottom, top)

    parts.append(f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" '
                 'stroke="#888"/>')
    parts.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="#888"/>')
    for value in (y_low + pad, (y_low + y_high) / 2, y_high - pad):
        parts.append(f'<text x="{left - 4}" y="{y(value) + 4:.1f}" text-anchor="end">{value:.3g}</text>')
    for step in checkpoint_steps:
        parts.append(f'<line x1="{x(step):.1f}" y1="{top}" x2="{x(step):.1f}" y2="{height - bottom}" '
                     'stroke="#bbb" stroke-dasharray="4 3"/>')
        parts.append(f'<text x="{x(step):.1f}" y="{height - bottom + 14}" text-anchor="middle">{step}</text>')
    for key, colour in (("train", "#1f77b4"), ("eval", "#ff7f0e")):
        series = getattr(curves, key)
        if not series:
            continue
        path = " ".join(f"{x(s):.1f},{y(v):.1f}" for s, v in series)
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}"/>')
    parts.append(f'<text x="{left + 8}" y="{top + 10}" fill="#1f77b4">train loss</text>')
    parts.append(f'<text x="{left + 80}" y="{top + 10}" fill="#ff7f0e">eval loss</text>')
    parts.append(f'<text x="{(left + width - right) / 2}" y="{height - 6}" text-anchor="middle">step '
                 '(dashed: checkpoints)</text></svg>')
    return "".join(parts)


def svg_data_uri(svg: str) -> str:
    """``data:image/svg+xml;base64,...`` of an SVG document, for an ``<img>`` in Markdown."""
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")
