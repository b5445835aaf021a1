"""Gemini-format examples rendered with an open model's chat template, loss on the model turns only.

A Gemini example (``systemInstruction`` + ``contents`` of ``user`` / ``model``
turns) becomes chat messages (``system`` / ``user`` / ``assistant``), which the
tokenizer's own chat template renders. Gemma's template folds the system
instruction into the first user turn; for a template that refuses a system
message (Gemma 2's), the instruction is folded here the same way.

The loss mask is found from the template itself: the text a model turn adds is
what lies between the conversation rendered up to that turn with the
generation prompt and the conversation rendered with that turn. Tokens that
start inside such a span (the answer and the template's end-of-turn marker)
carry loss; every other token (system, user, role headers) does not.

Works with any Hugging Face fast tokenizer that has a chat template; this
module imports no machine-learning library itself.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gemini_sft.errors import ConfigError, DatasetInvalidError
from gemini_sft.examples import EvaluationCase, content_text, system_instruction_text

log = logging.getLogger(__name__)

ROLE_OF_GEMINI_ROLE = {"user": "user", "model": "assistant"}
_SYSTEM_SEPARATOR = "\n\n"  # what Gemma's template puts between the system instruction and the first user turn


@dataclass(frozen=True)
class RenderedExample:
    """One tokenised example: token ids, a 0/1 mask of the tokens that carry loss, and whether it was cut."""

    input_ids: list[int]
    completion_mask: list[int]
    truncated: bool

    @property
    def loss_tokens(self) -> int:
        """How many tokens carry loss."""
        return sum(self.completion_mask)


@dataclass
class RenderStats:
    """Counts of one rendering pass, for the training summary."""

    examples: int = 0
    kept: int = 0
    truncated: int = 0
    dropped_no_model_turn: int = 0
    dropped_truncated_away: int = 0
    non_text_parts_ignored: int = 0
    tokens: int = 0
    loss_tokens: int = 0
    longest: int = 0


def _non_text_parts(contents: Sequence[dict[str, Any]]) -> int:
    return sum(
        1
        for content in contents
        for part in (content.get("parts") or [])
        if not (isinstance(part, dict) and isinstance(part.get("text"), str))
    )


def chat_messages(
    contents: Sequence[dict[str, Any]], system_instruction: str | None, where: str = "example"
) -> list[dict[str, str]]:
    """Gemini turns as chat messages: an optional ``system`` message, then alternating ``user`` / ``assistant``.

    Args:
        contents: the Gemini ``contents`` (``role`` user or model, text ``parts``).
        system_instruction: the system instruction's text, or None.
        where: names the example in error messages (``train.jsonl:12``).

    Raises:
        DatasetInvalidError: a role is not user or model, or two turns in a row have the same role.
    """
    messages: list[dict[str, str]] = []
    if system_instruction:
        messages.append({"role": "system", "content": system_instruction})
    previous = None
    for index, content in enumerate(contents):
        role = content.get("role") if isinstance(content, dict) else None
        if role not in ROLE_OF_GEMINI_ROLE:
            raise DatasetInvalidError(f"{where}: turn {index + 1} has role {role!r}; roles are user and model")
        if role == previous:
            raise DatasetInvalidError(
                f"{where}: turns {index} and {index + 1} are both {role}; turns must alternate (run the validate step)"
            )
        previous = role
        messages.append({"role": ROLE_OF_GEMINI_ROLE[role], "content": content_text(content)})
    if messages and messages[0]["role"] == "system" and (len(messages) == 1 or messages[1]["role"] != "user"):
        raise DatasetInvalidError(f"{where}: the first turn after the system instruction must be a user turn")
    return messages


def fold_system_message(messages: Sequence[dict[str, str]]) -> list[dict[str, str]]:
    """The messages with a leading system message folded into the first user message, as Gemma does."""
    if not messages or messages[0]["role"] != "system":
        return list(messages)
    system, first, rest = messages[0], messages[1], messages[2:]
    return [{"role": "user", "content": system["content"] + _SYSTEM_SEPARATOR + first["content"]}, *rest]


class ChatRenderer:
    """Renders chat messages with a tokenizer's chat template and tokenises them with a loss mask.

    Args:
        tokenizer: a Hugging Face fast tokenizer whose ``chat_template`` is set.

    Raises:
        ConfigError: the tokenizer has no chat template, or is not a fast tokenizer (offsets are needed).
    """

    def __init__(self, tokenizer: Any) -> None:
        if not getattr(tokenizer, "chat_template", None):
            raise ConfigError(
                "the base model's tokenizer has no chat template; use an instruction-tuned model (e.g. "
                "google/gemma-3-1b-it) or one whose tokenizer_config.json has a chat_template"
            )
        if not getattr(tokenizer, "is_fast", False):
            raise ConfigError("the base model's tokenizer must be a fast tokenizer (tokenizer.json)")
        self.tokenizer = tokenizer
        self.folds_system_itself = self._template_accepts_system()

    def _template_accepts_system(self) -> bool:
        probe = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
        try:
            self.tokenizer.apply_chat_template(probe, tokenize=False)
        except Exception as exc:  # noqa: BLE001 - jinja's TemplateError (raise_exception) or a template bug
            log.info("the chat template refuses a system message (%s); it is folded into the first user turn",
                     type(exc).__name__)
            return False
        return True

    def _prepare(self, messages: Sequence[dict[str, str]]) -> list[dict[str, str]]:
        return list(messages) if self.folds_system_itself else fold_system_message(messages)

    def render_text(self, messages: Sequence[dict[str, str]], add_generation_prompt: bool = False) -> str:
        """The conversation as the model sees it (the template's text, special tokens written out)."""
        return self.tokenizer.apply_chat_template(
            self._prepare(messages), tokenize=False, add_generation_prompt=add_generation_prompt
        )

    def model_spans(self, messages: Sequence[dict[str, str]]) -> tuple[str, list[tuple[int, int]]]:
        """The rendered conversation and the character spans the assistant turns add to it.

        Raises:
            ConfigError: the template renders a conversation differently from its own prefix (the mask
                cannot be found from it).
        """
        prepared = self._prepare(messages)
        full = self.tokenizer.apply_chat_template(prepared, tokenize=False)
        spans = []
        for index, message in enumerate(prepared):
            if message["role"] != "assistant":
                continue
            before = self.tokenizer.apply_chat_template(prepared[:index], tokenize=False, add_generation_prompt=True)
            through = self.tokenizer.apply_chat_template(prepared[: index + 1], tokenize=False)
            if not (through.startswith(before) and full.startswith(through)):
                raise ConfigError(
                    "the chat template does not render a conversation as an extension of its beginning, so the "
                    "model turns cannot be located; use a model whose template appends turns (Gemma, Llama, Qwen)"
                )
            spans.append((len(before), len(through)))
        return full, spans

    def encode(self, messages: Sequence[dict[str, str]], max_length: int) -> RenderedExample:
        """Token ids of the rendered conversation and the mask of the tokens inside model turns, cut at ``max_length``."""
        text, spans = self.model_spans(messages)
        encoding = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        input_ids = list(encoding["input_ids"])
        mask = [0] * len(input_ids)
        span_index = 0
        for position, (start, end) in enumerate(encoding["offset_mapping"]):
            while span_index < len(spans) and start >= spans[span_index][1]:
                span_index += 1
            if span_index < len(spans) and spans[span_index][0] <= start < spans[span_index][1] and end > start:
                mask[position] = 1
        truncated = len(input_ids) > max_length
        return RenderedExample(input_ids[:max_length], mask[:max_length], truncated)

    def prompt_text(self, case: EvaluationCase, where: str = "example") -> str:
        """The text a model is given to answer an evaluation case: its turns and the generation prompt.

        Args:
            case: the holdout case (its turns before the reference answer).
            where: names the example in error messages (``holdout.jsonl:3``).
        """
        messages = chat_messages(case.contents, case.system_instruction, where)
        return self.render_text(messages, add_generation_prompt=True)


def render_examples(
    renderer: ChatRenderer, examples: Sequence[tuple[int, dict[str, Any]]], max_length: int, source: str
) -> tuple[list[RenderedExample], RenderStats]:
    """Tokenise every example of a split; examples without a model turn, or cut before one, are dropped and counted.

    Args:
        renderer: the chat renderer of the base model's tokenizer.
        examples: (line number, Gemini example) pairs, as :func:`gemini_sft.examples.read_examples` gives them.
        max_length: the longest sequence in tokens (``max_seq_length``).
        source: the file's name, for error messages.

    Raises:
        DatasetInvalidError: an example has a role other than user / model or turns that do not alternate.
    """
    stats = RenderStats()
    rendered: list[RenderedExample] = []
    for line_number, example in examples:
        stats.examples += 1
        contents = example.get("contents") or []
        stats.non_text_parts_ignored += _non_text_parts(contents)
        messages = chat_messages(contents, system_instruction_text(example), f"{source}:{line_number}")
        if not any(message["role"] == "assistant" for message in messages):
            stats.dropped_no_model_turn += 1
            continue
        item = renderer.encode(messages, max_length)
        if item.loss_tokens == 0:
            stats.dropped_truncated_away += 1
            continue
        stats.kept += 1
        stats.truncated += int(item.truncated)
        stats.tokens += len(item.input_ids)
        stats.loss_tokens += item.loss_tokens
        stats.longest = max(stats.longest, len(item.input_ids))
        rendered.append(item)
    if stats.truncated:
        log.warning("%s: %d of %d examples are longer than max_seq_length=%d and were cut",
                    source, stats.truncated, stats.examples, max_length)
    log.info("%s: %d examples rendered, %d tokens (%d with loss)", source, stats.kept, stats.tokens, stats.loss_tokens)
    return rendered, stats


def training_texts(examples: Sequence[tuple[int, dict[str, Any]]]) -> list[str]:
    """Every text of the examples (system instructions and turns), to train a tokenizer on."""
    texts = []
    for _, example in examples:
        instruction = system_instruction_text(example)
        if instruction:
            texts.append(instruction)
        texts.extend(content_text(content) for content in example.get("contents") or [] if isinstance(content, dict))
    return texts
