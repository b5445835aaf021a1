"""Serving a trained adapter the way vLLM with LoRA does: the base model plus the adapter, greedy answers.

Used where no vLLM runs: the offline stand-in's deployed endpoints answer the
vLLM container's requests (chat and plain prompt) with it. Needs the ``open-weights`` extra.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from collections.abc import Sequence
from dataclasses import dataclass

from gemini_sft.errors import ConfigError
from gemini_sft.open_weights.models import BASE_MODEL_FOLDER, model_location, set_cpu_threads, stop_token_ids
from gemini_sft.open_weights.rendering import ChatRenderer

log = logging.getLogger(__name__)
ADAPTER_FOLDER = "adapter"


@dataclass(frozen=True)
class GeneratedText:
    """One greedy generation: the text, why it stopped (``stop`` or ``length``, as vLLM says) and token counts."""

    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int


class AdapterGenerator:
    """Generates with the base model plus the adapter of a training folder, as vLLM with LoRA would.

    ``chat_prompt`` applies the adapter tokenizer's chat template as vLLM's chat route does (a system
    message folded into the first user turn when the template refuses one, as the training rendered it);
    ``generate`` answers a text as vLLM's plain-prompt route does.

    Args:
        folder: an open-weights training folder: ``adapter/`` and, for the tiny local model, ``base_model/``.

    Raises:
        ConfigError: when the base model named by the adapter cannot be found, or the tokenizer has no chat
            template.
    """

    def __init__(self, folder: Path) -> None:
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer

        adapter = folder / ADAPTER_FOLDER
        config = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
        tiny = folder / BASE_MODEL_FOLDER
        location = str(tiny) if (tiny / "config.json").is_file() else model_location(
            str(config.get("base_model_name_or_path") or ""))
        if not location:
            raise ConfigError(f"{adapter}: adapter_config.json names no base model")
        set_cpu_threads(tiny_model=(tiny / "config.json").is_file())
        self._tokenizer = AutoTokenizer.from_pretrained(adapter)
        self._renderer = ChatRenderer(self._tokenizer)
        self._model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(location), adapter).eval()
        self._stops = stop_token_ids(self._model, self._tokenizer)
        self._lock = threading.Lock()  # one generation at a time: the model is shared by the server's threads
        log.info("adapter %s loaded on %s", adapter, location)

    def chat_prompt(self, messages: Sequence[dict[str, str]]) -> str:
        """The text the model answers for chat messages: the chat template with the generation prompt."""
        return self._renderer.render_text(messages, add_generation_prompt=True)

    def generate(self, prompt: str, max_tokens: int) -> GeneratedText:
        """The greedy answer to ``prompt`` (special tokens written out), at most ``max_tokens`` tokens."""
        import torch

        inputs = self._tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        prompt_tokens = int(inputs["input_ids"].shape[1])
        with self._lock, torch.no_grad():
            output = self._model.generate(**inputs, max_new_tokens=max(1, max_tokens), do_sample=False,
                                          eos_token_id=self._stops, pad_token_id=self._tokenizer.pad_token_id)
        new_tokens = output[0][prompt_tokens:].tolist()
        stopped = bool(new_tokens) and new_tokens[-1] in set(self._stops)
        finish = "stop" if stopped or len(new_tokens) < max_tokens else "length"
        text = self._tokenizer.decode(new_tokens, skip_special_tokens=True).strip()
        return GeneratedText(text, finish, prompt_tokens, len(new_tokens))
