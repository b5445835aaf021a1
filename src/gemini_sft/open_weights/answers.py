"""Holdout answers of the base and the tuned open model, in the evaluation's predictions shape.

The trained model answers every holdout prompt twice, once with its adapter
switched off (the base model) and once with it (the tuned model), greedily,
on the machine that trained it, so evaluation needs no serving endpoint.

The file written has one JSON object per holdout example, the row shape of the
evaluation's predictions file::

    {"example_id": "...", "prompt": "...", "reference": "...",
     "base":  {"answer": str | null, "error": str | null, "attempts": 1, "model_version": "...",
               "finish_reason": "STOP" | "MAX_TOKENS", "latency_seconds": float, "scores": null},
     "tuned": {...}}

``scores`` is null: the evaluation scores the answers. The holdout is read by
the evaluation's own reader (:func:`gemini_sft.evaluation.holdout.load_holdout`),
so the example ids and the examples skipped are the evaluation's and the
answers line up with its holdout cases;
:func:`read_answers` gives them back as records with the evaluation's
``Answer`` fields.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gemini_sft.errors import EvaluationError
from gemini_sft.evaluation.holdout import load_holdout
from gemini_sft.examples import read_examples
from gemini_sft.open_weights.rendering import ChatRenderer

log = logging.getLogger(__name__)

BASE_ROLE, TUNED_ROLE = "base", "tuned"
STOP, MAX_TOKENS = "STOP", "MAX_TOKENS"
ANSWER_FIELDS = ("answer", "error", "attempts", "model_version", "finish_reason", "latency_seconds", "scores")


@dataclass(frozen=True)
class HoldoutPrompt:
    """One holdout example: its id, the prompt as shown in reports, the reference, and the text the model gets."""

    example_id: str
    prompt: str
    reference: str
    model_input: str


def holdout_prompts(path: Path, renderer: ChatRenderer) -> tuple[list[HoldoutPrompt], int]:
    """The holdout prompts rendered for the model, and how many examples had no model turn to compare with.

    Args:
        path: the holdout split (Gemini-format JSONL).
        renderer: the chat renderer of the trained model's tokenizer.

    Raises:
        InputFormatError: the file is missing or a line is not a JSON object.
        DatasetInvalidError: an example's turns have other roles than user / model, or do not alternate.
        EvaluationError: no example has a model turn to use as reference.
    """
    cases, skipped = load_holdout(path)
    prompts = []
    for holdout in cases:
        case = holdout.case
        model_input = renderer.prompt_text(case, f"{path.name}:{holdout.line_number}")
        prompts.append(HoldoutPrompt(holdout.example_id, case.prompt_text, case.reference, model_input))
    return prompts, skipped


def _answer(text: str | None, error: str | None, version: str, finish: str, latency: float) -> dict[str, Any]:
    return {"answer": text, "error": error, "attempts": 1, "model_version": version, "finish_reason": finish,
            "latency_seconds": latency, "scores": None}


def generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[HoldoutPrompt],
    *,
    max_new_tokens: int,
    max_prompt_tokens: int,
    batch_size: int,
    stop_ids: Sequence[int],
    model_version: str,
) -> list[dict[str, Any]]:
    """Greedy answers of ``model`` to ``prompts``, in their order, one answer record each.

    A prompt longer than ``max_prompt_tokens`` is not cut (that would drop its start, the system
    instruction): its record carries an error instead, which the evaluation counts. A batch that
    runs out of GPU memory gives an error record for each of its prompts.

    Args:
        model: the causal LM (the tuned model, or the base with the adapter switched off).
        tokenizer: its tokenizer.
        prompts: the rendered holdout prompts.
        max_new_tokens: the most tokens per answer.
        max_prompt_tokens: the longest prompt accepted, in tokens.
        batch_size: prompts generated together.
        stop_ids: token ids that end an answer.
        model_version: what the records name as the model that answered.
    """
    import torch

    encoded = [tokenizer(p.model_input, add_special_tokens=False)["input_ids"] for p in prompts]
    results: list[dict[str, Any] | None] = [None] * len(prompts)
    runnable = []
    for index, ids in enumerate(encoded):
        if len(ids) > max_prompt_tokens:
            results[index] = _answer(None, f"prompt is {len(ids)} tokens, longer than max_seq_length="
                                           f"{max_prompt_tokens}", model_version, "", 0.0)
        else:
            runnable.append(index)
    runnable.sort(key=lambda i: len(encoded[i]))  # similar lengths together: less padding
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stop_ids[0]
    stops = set(stop_ids)
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(runnable), batch_size):
            batch = runnable[start:start + batch_size]
            longest = max(len(encoded[i]) for i in batch)
            # left padding: every prompt ends where generation starts
            input_ids = torch.tensor([[pad_id] * (longest - len(encoded[i])) + encoded[i] for i in batch])
            attention = torch.tensor([[0] * (longest - len(encoded[i])) + [1] * len(encoded[i]) for i in batch])
            started = time.monotonic()
            try:
                with torch.inference_mode():
                    output = model.generate(
                        input_ids=input_ids.to(model.device), attention_mask=attention.to(model.device),
                        max_new_tokens=max_new_tokens, do_sample=False, top_p=None, top_k=None,
                        eos_token_id=list(stop_ids), pad_token_id=pad_id,
                    )
            except torch.OutOfMemoryError as exc:
                latency = (time.monotonic() - started) / len(batch)
                for i in batch:
                    results[i] = _answer(None, f"OutOfMemoryError: {str(exc).splitlines()[0]}", model_version, "",
                                         latency)
                continue
            latency = (time.monotonic() - started) / len(batch)
            for row, i in enumerate(batch):
                new_tokens = output[row, longest:].tolist()
                cut = next((k for k, token in enumerate(new_tokens) if token in stops), None)
                kept = new_tokens if cut is None else new_tokens[:cut]
                text = tokenizer.decode(kept, skip_special_tokens=True).strip()
                results[i] = _answer(text, None, model_version, STOP if cut is not None else MAX_TOKENS, latency)
    finally:
        model.train(was_training)
    return [result for result in results if result is not None]


def write_predictions(path: Path, prompts: Sequence[HoldoutPrompt], answers: Mapping[str, Sequence[dict[str, Any]]]) -> None:
    """Write one predictions row per prompt with each role's answer record (see the module docstring).

    Args:
        path: the JSONL file to write.
        prompts: the holdout prompts, in order.
        answers: role (``base``, ``tuned``) -> answer records aligned with ``prompts``.
    """
    for role, records in answers.items():
        if len(records) != len(prompts):
            raise EvaluationError(f"{role}: {len(records)} answers for {len(prompts)} holdout prompts")
    with path.open("w", encoding="utf-8") as handle:
        for index, prompt in enumerate(prompts):
            row: dict[str, Any] = {"example_id": prompt.example_id, "prompt": prompt.prompt,
                                   "reference": prompt.reference}
            for role, records in answers.items():
                row[role] = {key: records[index][key] for key in ANSWER_FIELDS}
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def read_answers(path: Path) -> dict[str, list[dict[str, Any]]]:
    """Role -> answer records with the evaluation's ``Answer`` fields, from a predictions file.

    Each record has ``example_id``, ``role``, ``text``, ``error``, ``attempts``, ``model_version``,
    ``latency_seconds`` and ``finish_reason``.
    """
    by_role: dict[str, list[dict[str, Any]]] = {}
    for _, row in read_examples(path):
        for role in (BASE_ROLE, TUNED_ROLE):
            answer = row.get(role)
            if not isinstance(answer, dict):
                continue
            by_role.setdefault(role, []).append({
                "example_id": row["example_id"],
                "role": role,
                "text": answer["answer"],
                "error": answer["error"],
                "attempts": answer["attempts"],
                "model_version": answer["model_version"],
                "latency_seconds": answer["latency_seconds"],
                "finish_reason": answer["finish_reason"],
            })
    return by_role


def answer_holdout(
    model: Any,
    tokenizer: Any,
    renderer: ChatRenderer,
    holdout_path: Path,
    output_path: Path,
    *,
    max_new_tokens: int,
    max_prompt_tokens: int,
    batch_size: int,
    stop_ids: Sequence[int],
    versions: Mapping[str, str],
) -> dict[str, Any]:
    """Have the base (adapter off) and the tuned model answer the holdout; write the predictions; return counts.

    Args:
        model: the tuned peft model (its adapter is switched off for the base answers).
        tokenizer: its tokenizer.
        renderer: the chat renderer of that tokenizer.
        holdout_path: the holdout split.
        output_path: the predictions JSONL to write.
        max_new_tokens: the most tokens per answer.
        max_prompt_tokens: the longest prompt accepted.
        batch_size: prompts generated together.
        stop_ids: token ids that end an answer.
        versions: role -> the model version the records name.
    """
    prompts, skipped = holdout_prompts(holdout_path, renderer)
    options = dict(max_new_tokens=max_new_tokens, max_prompt_tokens=max_prompt_tokens, batch_size=batch_size,
                   stop_ids=stop_ids)
    started = time.monotonic()
    with model.disable_adapter():
        base = generate(model, tokenizer, prompts, model_version=versions[BASE_ROLE], **options)
    tuned = generate(model, tokenizer, prompts, model_version=versions[TUNED_ROLE], **options)
    elapsed = time.monotonic() - started
    write_predictions(output_path, prompts, {BASE_ROLE: base, TUNED_ROLE: tuned})
    counts = {
        "examples": len(prompts),
        "skipped_examples": skipped,
        "seconds": elapsed,
        "errors": {BASE_ROLE: sum(1 for a in base if a["error"]), TUNED_ROLE: sum(1 for a in tuned if a["error"])},
        "max_tokens": {role: sum(1 for a in answers if a["finish_reason"] == MAX_TOKENS)
                       for role, answers in ((BASE_ROLE, base), (TUNED_ROLE, tuned))},
        "model_versions": dict(versions),
    }
    log.info("holdout answers: %d examples x 2 models in %.1f s, errors base %d, tuned %d", len(prompts), elapsed,
             counts["errors"][BASE_ROLE], counts["errors"][TUNED_ROLE])
    return counts
