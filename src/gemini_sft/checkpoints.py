"""Choosing one checkpoint of a tuning job: the pure rule, no I/O.

A job tuned with intermediate checkpoints (``export_last_checkpoint_only``
off) has about one checkpoint per epoch, each deployed to its own endpoint.
:func:`choose_checkpoint` picks one of them by a rule:

* ``best_validation_metric`` (default): the highest validation score (the
  gate's primary metric on the validation split); checkpoints without a
  score are not candidates, and when none has one the rule falls back to
  ``lowest_eval_loss``, then ``last``, and says so;
* ``lowest_eval_loss``: the lowest eval loss at the checkpoint's step (from
  the loss curves); falls back to ``last`` when no checkpoint has one;
* ``last``: the checkpoint of the last epoch (what Vertex serves by default).

Ties go to the earlier epoch: it is the cheaper, less fitted model.
The answer names the rule actually applied and why, in plain words.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any, Mapping, Sequence

from gemini_sft.errors import ConfigError
from gemini_sft.open_weights.pipeline_step import OPEN_WEIGHTS_BACKEND, VERTEX_GEMINI_BACKEND

RULE_BEST_VALIDATION_METRIC = "best_validation_metric"
RULE_LOWEST_EVAL_LOSS = "lowest_eval_loss"
RULE_LAST = "last"
SELECTION_RULES = (RULE_BEST_VALIDATION_METRIC, RULE_LOWEST_EVAL_LOSS, RULE_LAST)
DEFAULT_SELECTION_RULE = RULE_BEST_VALIDATION_METRIC


@dataclass(frozen=True)
class CheckpointCandidate:
    """One checkpoint as the selection sees it.

    ``validation_score`` is the primary metric on the validation split (higher
    is better), None when it was not scored; ``train_loss`` and ``eval_loss``
    are the curves' values at the checkpoint's step, None when unknown.
    """

    checkpoint_id: str
    epoch: int | None = None
    step: int | None = None
    endpoint: str | None = None
    validation_score: float | None = None
    train_loss: float | None = None
    eval_loss: float | None = None

    def as_dict(self) -> dict[str, object]:
        """The checkpoint as the tune artifact and run summary list it."""
        return asdict(self)


@dataclass(frozen=True)
class CheckpointChoice:
    """The chosen checkpoint, the rule that chose it (after any fallback) and why, in plain words."""

    checkpoint: CheckpointCandidate
    rule: str
    requested_rule: str
    reason: str

    def as_dict(self) -> dict[str, object]:
        """``{"checkpoint_id", "epoch", "endpoint", "rule", "requested_rule", "reason"}``."""
        return {
            "checkpoint_id": self.checkpoint.checkpoint_id,
            "epoch": self.checkpoint.epoch,
            "step": self.checkpoint.step,
            "endpoint": self.checkpoint.endpoint,
            "rule": self.rule,
            "requested_rule": self.requested_rule,
            "reason": self.reason,
        }


def check_rule(rule: str) -> str:
    """``rule`` when it is one of :data:`SELECTION_RULES`; ConfigError naming the choices otherwise.

    Args:
        rule: the requested selection rule.
    """
    if rule not in SELECTION_RULES:
        raise ConfigError(
            f"checkpoint selection rule {rule!r} is unknown; use one of: {', '.join(SELECTION_RULES)}"
        )
    return rule


def _order(candidate: CheckpointCandidate, position: int) -> tuple[float, int]:
    """Epoch order: by epoch when known, else by position in the job's list."""
    return (candidate.epoch if candidate.epoch is not None else math.inf, position)


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _label(candidate: CheckpointCandidate) -> str:
    epoch = f"epoch {candidate.epoch}" if candidate.epoch is not None else "epoch unknown"
    return f"checkpoint {candidate.checkpoint_id} ({epoch})"


def _best(
    candidates: Sequence[CheckpointCandidate], value_of: str, highest: bool
) -> tuple[CheckpointCandidate, int] | None:
    """The best candidate by one field (earliest epoch on ties) and how many candidates share that value."""
    ordered = sorted(enumerate(candidates), key=lambda pair: _order(pair[1], pair[0]))
    scored = [c for _, c in ordered if _finite(getattr(c, value_of))]
    if not scored:
        return None
    values = [float(getattr(c, value_of)) for c in scored]
    target = max(values) if highest else min(values)
    tied = [c for c, v in zip(scored, values) if v == target]
    return tied[0], len(tied)


def _last(candidates: Sequence[CheckpointCandidate]) -> CheckpointCandidate:
    return max(enumerate(candidates), key=lambda pair: _order(pair[1], pair[0]))[1]


def choose_checkpoint(
    checkpoints: Sequence[CheckpointCandidate], rule: str = DEFAULT_SELECTION_RULE
) -> CheckpointChoice:
    """Choose one checkpoint by ``rule`` (see the module docstring).

    Args:
        checkpoints: every checkpoint of the job, with their optional scores and losses.
        rule: one of :data:`SELECTION_RULES`.

    Returns:
        The choice: the checkpoint, the rule applied (a fallback names itself), and why.

    Raises:
        ConfigError for an unknown rule or an empty list of checkpoints.
    """
    check_rule(rule)
    if not checkpoints:
        raise ConfigError("the tuning job reports no checkpoint to choose from")
    if len(checkpoints) == 1:
        only = checkpoints[0]
        return CheckpointChoice(
            only, RULE_LAST, rule,
            f"The job has one checkpoint only ({_label(only)}): intermediate checkpoints were off, "
            "so there was nothing to choose.",
        )
    notes: list[str] = []
    if rule == RULE_BEST_VALIDATION_METRIC:
        best = _best(checkpoints, "validation_score", highest=True)
        if best is not None:
            chosen, tied = best
            scored = sum(1 for c in checkpoints if _finite(c.validation_score))
            tie = f"; {tied} checkpoints tie, the earliest epoch wins" if tied > 1 else ""
            return CheckpointChoice(
                chosen, RULE_BEST_VALIDATION_METRIC, rule,
                f"{_label(chosen)} scored highest on the validation split ({chosen.validation_score:.4f}) "
                f"of {scored} checkpoints scored{tie}.",
            )
        notes.append("no checkpoint has a validation score")
        rule_now = RULE_LOWEST_EVAL_LOSS
    else:
        rule_now = rule
    if rule_now == RULE_LOWEST_EVAL_LOSS:
        best = _best(checkpoints, "eval_loss", highest=False)
        if best is not None:
            chosen, tied = best
            tie = f"; {tied} checkpoints tie, the earliest epoch wins" if tied > 1 else ""
            prefix = f"{notes[0].capitalize()}, so the eval loss decided: " if notes else ""
            return CheckpointChoice(
                chosen, RULE_LOWEST_EVAL_LOSS, rule,
                f"{prefix}{_label(chosen)} has the lowest eval loss ({chosen.eval_loss:.4f}){tie}.",
            )
        notes.append("no checkpoint has an eval loss")
    chosen = _last(checkpoints)
    prefix = f"{' and '.join(notes).capitalize()}, so the " if notes else "The "
    return CheckpointChoice(
        chosen, RULE_LAST, rule, f"{prefix}last checkpoint was kept: {_label(chosen)}."
    )


def with_validation_scores(
    checkpoints: Sequence[CheckpointCandidate], scores: dict[str, float]
) -> list[CheckpointCandidate]:
    """The checkpoints with ``validation_score`` set from ``scores`` (by checkpoint id; others kept as they are).

    Args:
        checkpoints: the job's checkpoints.
        scores: validation score per checkpoint id.
    """
    return [replace(c, validation_score=scores[c.checkpoint_id]) if c.checkpoint_id in scores else c
            for c in checkpoints]


def candidates_from_metadata(metadata: Mapping[str, Any]) -> list[CheckpointCandidate]:
    """The checkpoints of the tune step's ``tuned_model`` artifact (its ``checkpoints`` list) as candidates.

    Args:
        metadata: the artifact's metadata (or its JSON file, decoded); each checkpoint has ``checkpoint_id``,
            ``epoch``, ``step``, ``endpoint`` and, when the curves had them, ``train_loss`` and ``eval_loss``.
    """
    candidates = []
    for item in metadata.get("checkpoints") or []:
        candidates.append(CheckpointCandidate(
            checkpoint_id=str(item["checkpoint_id"]),
            epoch=None if item.get("epoch") is None else int(item["epoch"]),
            step=None if item.get("step") is None else int(item["step"]),
            endpoint=item.get("endpoint") or None,
            validation_score=item.get("validation_score"),
            train_loss=item.get("train_loss"),
            eval_loss=item.get("eval_loss"),
        ))
    return candidates


def run_summary_tuning(
    tuned_model_metadata: Mapping[str, Any],
    loss_curves: Mapping[str, Any],
    candidates: Sequence[CheckpointCandidate],
    choice: CheckpointChoice | None,
) -> dict[str, Any]:
    """The ``tuning`` section of a run summary (``run_summary.json``).

    ``{"backend", "job", "checkpoints": [{"checkpoint_id", "epoch", "step", "endpoint", "validation_score",
    "train_loss", "eval_loss"}], "chosen_checkpoint": {"checkpoint_id", "epoch", "step", "endpoint", "rule",
    "requested_rule", "reason"} or None, "loss_curves": {"train": [[step, value], ...], "eval": [...]}}``.

    Args:
        tuned_model_metadata: the tune step's ``tuned_model`` metadata (its JSON file, decoded).
        loss_curves: the tune step's ``loss_curves`` JSON, decoded.
        candidates: the checkpoints as scored (validation scores set where they were measured).
        choice: the chosen checkpoint, or None when none was chosen.
    """
    # A Gemini tuning job's model metadata has no tuning_backend.
    backend = str(tuned_model_metadata.get("tuning_backend") or VERTEX_GEMINI_BACKEND)
    chosen = choice.as_dict() if choice else None
    if backend == OPEN_WEIGHTS_BACKEND:
        chosen = _open_weights_choice(tuned_model_metadata)
    return {
        "backend": backend,
        "offline_standin": bool(tuned_model_metadata.get("offline_standin")),
        "job": tuned_model_metadata.get("tuning_job", ""),
        "checkpoints": [c.as_dict() for c in candidates],
        "chosen_checkpoint": chosen,
        "loss_curves": {key: [list(point) for point in loss_curves.get(key) or []] for key in ("train", "eval")},
    }


def _open_weights_choice(tuned_model_metadata: Mapping[str, Any]) -> dict[str, Any] | None:
    """The checkpoint an open-weights training kept, in the shape of a chosen Vertex checkpoint (no endpoint yet)."""
    checkpoint = tuned_model_metadata.get("chosen_checkpoint")
    if not checkpoint:
        return None
    # KFP keeps artifact metadata numbers as floats: epochs and steps are whole numbers again here.
    epoch, step = (_whole(tuned_model_metadata.get(key)) for key in ("chosen_checkpoint_epoch", "chosen_checkpoint_step"))
    loss = tuned_model_metadata.get("chosen_checkpoint_eval_loss")
    by_loss = tuned_model_metadata.get("chosen_by") != "last epoch (no validation)"
    rule = RULE_LOWEST_EVAL_LOSS if by_loss else RULE_LAST
    where = f"epoch {epoch}" if epoch is not None else str(checkpoint)
    reason = (f"the training kept {where}, the lowest eval loss on the validation split"
              f"{f' ({loss:.4f})' if isinstance(loss, (int, float)) else ''}; early stopping watched the same loss."
              if by_loss else f"the training kept {where}, its last (there was no validation split to compare).")
    return {"checkpoint_id": str(checkpoint), "epoch": epoch, "step": step, "endpoint": "", "rule": rule,
            "requested_rule": rule, "reason": reason}


def _whole(value: Any) -> int | None:
    """An epoch or step number as an int (None when absent)."""
    return int(value) if isinstance(value, (int, float)) and math.isfinite(value) else None
