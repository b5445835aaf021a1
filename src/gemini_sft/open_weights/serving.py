"""Serving a trained adapter the way vLLM with LoRA does: the base model plus the adapter, greedy answers.

Used where no vLLM runs: the offline stand-in's deployed endpoints answer
``rawPredict`` with it. Needs the ``open-weights`` extra.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Callable

from gemini_sft.errors import ConfigError
from gemini_sft.open_weights.models import BASE_MODEL_FOLDER, model_location, set_cpu_threads, stop_token_ids

log = logging.getLogger(__name__)
ADAPTER_FOLDER = "adapter"


def load_adapter_answerer(folder: Path) -> Callable[[str, int], str]:
    """A function ``(prompt, max_tokens) -> answer`` generating with the adapter of a training folder.

    Args:
        folder: an open-weights training folder: ``adapter/`` and, for the tiny local model, ``base_model/``.

    Raises:
        ConfigError: when the base model named by the adapter cannot be found.
    """
    import torch
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
    tokenizer = AutoTokenizer.from_pretrained(adapter)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(location), adapter).eval()
    stops = stop_token_ids(model, tokenizer)
    lock = threading.Lock()  # one generation at a time: the model is shared by the server's threads
    log.info("adapter %s loaded on %s", adapter, location)

    def answer(prompt: str, max_tokens: int) -> str:
        inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        with lock, torch.no_grad():
            output = model.generate(**inputs, max_new_tokens=max(1, max_tokens), do_sample=False,
                                    eos_token_id=stops, pad_token_id=tokenizer.pad_token_id)
        return tokenizer.decode(output[0][inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip()

    return answer
