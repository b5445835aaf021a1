"""Helpers for Gemini-format tuning examples.

An example is the JSON object Vertex reads from one line of a tuning file::

    {"systemInstruction": {"parts": [{"text": "..."}]},      # optional
     "contents": [{"role": "user", "parts": [{"text": "..."}]},
                  {"role": "model", "parts": [{"text": "..."}]}]}

These functions are shared by every stage: they know the format, nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from gemini_sft.errors import InputFormatError
from gemini_sft.storage import read_json_lines

Example = dict[str, Any]
Content = dict[str, Any]


def make_example(prompt: str, response: str, system_instruction: str | None = None) -> Example:
    """Build a single-turn Gemini example; the system instruction is omitted when empty."""
    example: Example = {}
    if system_instruction:
        example["systemInstruction"] = {"parts": [{"text": system_instruction}]}
    example["contents"] = [
        {"role": "user", "parts": [{"text": prompt}]},
        {"role": "model", "parts": [{"text": response}]},
    ]
    return example


def read_examples(path: str | Path) -> list[tuple[int, Example]]:
    """The examples of a Gemini-format JSONL file, with their 1-based line numbers; blank lines skipped.

    Args:
        path: the JSONL file (one example object per line).

    Raises:
        InputFormatError: the file is missing or a line is not a JSON object.
    """
    file = Path(path)
    if not file.is_file():
        raise InputFormatError(f"{file} does not exist")
    examples = []
    for line_number, example in read_json_lines(file):
        if not isinstance(example, dict):
            raise InputFormatError(f"{file}:{line_number}: expected a JSON object per line")
        examples.append((line_number, example))
    return examples


def example_id(example: Mapping[str, Any], line_number: int) -> str:
    """The example's own ``id`` (or ``example_id``) when it has a usable one, else ``line-N``.

    Args:
        example: the example as read from its file.
        line_number: its 1-based line number in that file.
    """
    for key in ("id", "example_id"):
        value = example.get(key)
        if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value):
            return str(value)
    return f"line-{line_number}"


def content_text(content: Content) -> str:
    """Concatenate the text parts of one content (turn); non-text parts are skipped."""
    parts = content.get("parts") or []
    return "\n".join(p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str))


def system_instruction_text(example: Example) -> str | None:
    """Text of the example's system instruction, or None when it has none."""
    instruction = example.get("systemInstruction")
    if not isinstance(instruction, dict):
        return None
    text = content_text(instruction)
    return text or None


@dataclass(frozen=True)
class EvaluationCase:
    """What a model is asked and what it should answer, taken from one example.

    ``contents`` holds every turn before the last model turn; ``reference`` is
    the text of that last model turn.
    """

    contents: list[Content]
    reference: str
    system_instruction: str | None

    @property
    def prompt_text(self) -> str:
        """The user turns' text joined, for display and similarity."""
        return "\n".join(content_text(c) for c in self.contents if c.get("role") == "user")


def evaluation_case(example: Example) -> EvaluationCase:
    """Split an example into prompt turns and the reference answer.

    Raises ValueError when the example has no model turn to use as reference.
    """
    contents = example.get("contents") or []
    last_model = max((i for i, c in enumerate(contents) if c.get("role") == "model"), default=None)
    if last_model is None or last_model == 0:
        raise ValueError("example has no model turn after a user turn")
    return EvaluationCase(
        contents=list(contents[:last_model]),
        reference=content_text(contents[last_model]),
        system_instruction=system_instruction_text(example),
    )
