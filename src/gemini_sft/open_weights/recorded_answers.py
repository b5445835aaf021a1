"""The open model's holdout answers, replayed to the evaluation as if the models answered now.

The training machine answers the holdout with the base and the tuned model
(:mod:`gemini_sft.open_weights.answers`); the evaluation then scores those
answers with the same code that scores endpoints: each role gets a generator
that looks the case's answer up by its prompt instead of calling a model.
No machine-learning library is imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gemini_sft.errors import EvaluationError, GenerationCallError
from gemini_sft.evaluation.generation import GenerationResult
from gemini_sft.examples import EvaluationCase
from gemini_sft.open_weights.answers import BASE_ROLE, TUNED_ROLE
from gemini_sft.examples import read_examples


@dataclass(frozen=True)
class RecordedAnswers:
    """One role's recorded answers by prompt; a call answers a case from them (a Generator)."""

    role: str
    model_version: str
    by_prompt: dict[str, dict]

    def __call__(self, case: EvaluationCase) -> GenerationResult:
        answer = self.by_prompt.get(case.prompt_text)
        if answer is None:
            raise GenerationCallError(f"no recorded {self.role} answer for this holdout example")
        if answer.get("error") or answer.get("answer") is None:
            raise GenerationCallError(f"the {self.role} model failed on the training machine: {answer.get('error')}")
        return GenerationResult(
            text=answer["answer"],
            model_version=answer.get("model_version") or self.model_version,
            finish_reason=answer.get("finish_reason") or "",
            latency_seconds=float(answer.get("latency_seconds") or 0.0),
        )


def recorded_generators(predictions: Path) -> dict[str, RecordedAnswers]:
    """A generator per role (``base``, ``tuned``) answering from a predictions file.

    Args:
        predictions: the ``predictions.jsonl`` the training job wrote.

    Raises:
        EvaluationError: when the file holds no answers of the base or the tuned model.
    """
    by_role: dict[str, dict[str, dict]] = {BASE_ROLE: {}, TUNED_ROLE: {}}
    versions: dict[str, str] = {}
    for _, row in read_examples(predictions):
        for role in (BASE_ROLE, TUNED_ROLE):
            answer = row.get(role)
            if isinstance(answer, dict):
                by_role[role].setdefault(str(row.get("prompt", "")), answer)
                versions.setdefault(role, str(answer.get("model_version") or ""))
    for role, answers in by_role.items():
        if not answers:
            raise EvaluationError(f"{predictions} holds no {role} answers: the training job did not answer the holdout")
    return {role: RecordedAnswers(role, versions.get(role, ""), answers) for role, answers in by_role.items()}
