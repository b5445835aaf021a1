"""How the offline stand-in's tuned model changes with the epoch: answers per checkpoint and the loss curves.

One story, told twice. With ``E`` epochs the best epoch is
:func:`best_epoch` (2 of 3, 4 of 5; the last for 1 or 2 epochs):

* **Answers** (:class:`CheckpointResponder`, one per checkpoint endpoint):
  before the best epoch the model is under-fitted: it gives only the first
  ``epoch / best`` share of the nearest training answer's words. At the best
  epoch it answers as :class:`~gemini_sft.standin.responder.TunedResponder`
  does. After it, the model is over-fitted: a prompt it was trained on still
  gets its own answer (memorised), but an unseen prompt gets the answer of the
  ``1 + (epoch - best)``-th nearest training prompt with a different answer,
  so scores on held-out prompts fall.
* **Curves** (:func:`loss_curves`): the train loss falls at every step; the
  eval loss is lowest at the end of the best epoch and rises after it (by far
  more than the tune stage's overfitting margin).

Everything is deterministic: the same prompt and epoch give the same answer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from gemini_sft.standin.responder import NearestExampleIndex, Prompt, TunedResponder

# Eval loss is computed at each epoch end and at each half epoch.
EVAL_POINTS_PER_EPOCH = 2


def best_epoch(epochs: int) -> int:
    """The epoch whose checkpoint answers best: two thirds of the way, rounded up, and at least 1."""
    return max(1, math.ceil(2 * epochs / 3))


def _first_words(text: str, share: float) -> str:
    """The first ``share`` of the words of ``text`` (at least one), line breaks kept."""
    tokens = text.split(" ")
    keep = max(1, math.ceil(len(text.split()) * share))
    kept: list[str] = []
    count = 0
    for token in tokens:
        kept.append(token)
        count += len(token.split())
        if count >= keep:
            break
    return " ".join(kept).rstrip()


@dataclass(frozen=True)
class CheckpointResponder(TunedResponder):
    """The tuned model of one checkpoint: answers as the module docstring tells for ``epoch`` of ``epochs``."""

    epoch: int = 1
    epochs: int = 1

    def answer(self, prompt: Prompt) -> str:
        best = best_epoch(self.epochs)
        text = prompt.full_text
        if self.epoch < best:
            return _first_words(self.index.answer(text), self.epoch / best)
        if self.epoch == best or self.index.is_exact(text):
            return self.index.answer(text)
        return self.index.answer_ranked(text, 1 + self.epoch - best)


def _train_loss(progress: float) -> float:
    """Train loss after ``progress`` epochs: falls at every step."""
    return round(0.15 + 1.85 * math.exp(-1.1 * progress), 6)


def _eval_loss(progress: float, best: int) -> float:
    """Eval loss after ``progress`` epochs: falls to its lowest at the best epoch, then rises."""
    if progress <= best:
        return round(0.55 + 1.5 * math.exp(-1.6 * progress) - 1.5 * math.exp(-1.6 * best), 6)
    return round(0.55 + 0.2 * (progress - best), 6)


def loss_curves(epochs: int, steps_per_epoch: int, with_eval: bool = True) -> dict[str, list[tuple[int, float]]]:
    """The job's TensorBoard series: ``/train_total_loss`` at every step, ``/eval_total_loss`` twice an epoch.

    Also ``/train_fraction_of_correct_next_step_preds`` and the eval one, which mirror the losses.

    Args:
        epochs: the job's epochs.
        steps_per_epoch: steps in one epoch (at least 1).
        with_eval: False for a job without a validation dataset (no eval series).
    """
    steps_per_epoch = max(1, steps_per_epoch)
    best = best_epoch(epochs)
    total = epochs * steps_per_epoch
    train = [(step, _train_loss(step / steps_per_epoch)) for step in range(1, total + 1)]
    series: dict[str, list[tuple[int, float]]] = {
        "/train_total_loss": train,
        "/train_fraction_of_correct_next_step_preds": [(s, round(1 - v / 2.5, 6)) for s, v in train],
    }
    if with_eval:
        eval_steps = sorted({max(1, round(steps_per_epoch * k / EVAL_POINTS_PER_EPOCH))
                             for k in range(1, epochs * EVAL_POINTS_PER_EPOCH + 1)})
        evaluated = [(step, _eval_loss(step / steps_per_epoch, best)) for step in eval_steps]
        series["/eval_total_loss"] = evaluated
        series["/eval_fraction_of_correct_next_step_preds"] = [(s, round(1 - v / 2.5, 6)) for s, v in evaluated]
    return series


def checkpoint_responder(
    endpoint_id: str, index: NearestExampleIndex, base_model: str | None, epoch: int, epochs: int
) -> CheckpointResponder:
    """The responder behind one checkpoint's endpoint."""
    return CheckpointResponder(endpoint_id, index, base_model, epoch=epoch, epochs=epochs)

