"""Loading the base model and its tokenizer, and the LoRA / QLoRA configurations.

The base model is a Hugging Face id (read from the hub, or its local cache),
a folder of weights on disk, a ``gs://`` folder (read through the Cloud
Storage FUSE mount ``/gcs/`` that Vertex custom jobs have), or
``tiny-local``: a tiny random model built on the training data and saved in
the output folder, so a resumed training and later answers use the very same
weights. The 4-bit quantisation config is built only when ``qlora`` is on, and
refused without a CUDA GPU.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gemini_sft.errors import ConfigError, TuningSettingsError
from gemini_sft.open_weights.settings import OpenWeightsSettings
from gemini_sft.open_weights.tiny_model import (
    TINY_MODEL_MARKER,
    build_tiny_model,
    build_tiny_tokenizer,
    write_tiny_marker,
)
from gemini_sft.parallel import available_cpus
from gemini_sft.storage import GCS_PREFIX, local_path

log = logging.getLogger(__name__)

BASE_MODEL_FOLDER = "base_model"
REQUIRED_LIBRARIES = ("torch", "transformers", "peft", "trl", "datasets", "tokenizers", "safetensors")
INSTALL_HINT = "pip install 'gemini-sft[open-weights]' (the GPU image has it)"


@dataclass
class BaseModel:
    """A loaded base model with its tokenizer and where they came from."""

    model: Any
    tokenizer: Any
    source: str  # what was loaded: the id, folder or the saved tiny model's folder
    tiny_local: bool


def require_training_libraries() -> None:
    """Check that the open-weights extra is installed.

    Raises:
        ConfigError: a library of the ``open-weights`` extra is missing (the message says how to install it).
    """
    import importlib.util

    missing = [name for name in REQUIRED_LIBRARIES if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(f"open-weights training needs {', '.join(missing)}: {INSTALL_HINT}")


def cuda_available() -> bool:
    """Whether a CUDA GPU is usable by torch."""
    import torch

    return bool(torch.cuda.is_available())


def visible_gpus() -> int:
    """How many CUDA GPUs this process sees (the GPU hours are counted for all of them); 0 without CUDA."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def set_cpu_threads(tiny_model: bool) -> int:
    """Set torch's CPU threads and return their number: the CPUs this process may use, 1 for the tiny model.

    The tiny model's matrices are too small to gain from several threads, and on a shared machine the
    threads' waiting for each other made its steps several times slower than one thread.

    Args:
        tiny_model: whether the tiny local model is trained.
    """
    import torch

    threads = 1 if tiny_model else available_cpus()
    torch.set_num_threads(threads)
    return threads


def quantization_config(settings: OpenWeightsSettings, has_cuda: bool) -> Any:
    """The 4-bit NF4 config of QLoRA when ``qlora`` is on, else None (nothing is built).

    Args:
        settings: the training settings.
        has_cuda: whether a CUDA GPU is present (bitsandbytes' 4-bit kernels need one).

    Raises:
        TuningSettingsError: qlora is on and there is no CUDA GPU, or bitsandbytes is not installed.
    """
    if not settings.qlora:
        return None
    if not has_cuda:
        raise TuningSettingsError(
            "qlora=true needs a CUDA GPU (4-bit bitsandbytes kernels) and this machine has none: "
            "set qlora=false to train LoRA in full precision, or train on a GPU machine"
        )
    import importlib.util

    if importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigError("qlora=true needs bitsandbytes, which the GPU image (Dockerfile.gpu) installs")
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )


def lora_config(settings: OpenWeightsSettings) -> Any:
    """peft's LoraConfig of a causal LM from the settings (rank, alpha, dropout, target modules)."""
    from peft import LoraConfig

    return LoraConfig(
        r=settings.lora_rank,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.lora_dropout,
        target_modules=settings.target_modules,
        bias="none",
        task_type="CAUSAL_LM",
    )


def model_location(base_model: str) -> str:
    """Where ``from_pretrained`` reads a base model: a local folder, or the Hugging Face id as given.

    Raises:
        ConfigError: a ``gs://`` folder is not readable through the ``/gcs/`` mount.
    """
    if base_model.startswith(GCS_PREFIX):
        folder = local_path(base_model)
        if not (folder / "config.json").is_file():
            raise ConfigError(
                f"base_model {base_model}: no config.json at {folder} (Cloud Storage FUSE); on Vertex give a folder "
                "saved with save_pretrained, elsewhere copy it to a local folder and give its path"
            )
        return str(folder)
    folder = Path(base_model).expanduser()
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise ConfigError(f"base_model {base_model}: the folder has no config.json (save it with save_pretrained)")
        return str(folder)
    return base_model


def _dtype(has_cuda: bool) -> Any:
    import torch

    if has_cuda and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def load_base_model(
    settings: OpenWeightsSettings, output_dir: Path, training_texts: list[str], has_cuda: bool, quantization: Any = None
) -> BaseModel:
    """The base model and tokenizer to tune, on CPU (the trainer moves them to the GPU).

    Args:
        settings: the training settings (``base_model``, ``qlora``, ``seed``, ``max_seq_length``).
        output_dir: the training's output folder; a tiny model is saved in (and reloaded from) its ``base_model``.
        training_texts: the training split's texts, for the tiny model's tokenizer.
        has_cuda: whether a CUDA GPU is present.
        quantization: the 4-bit config from :func:`quantization_config` (None: full precision).

    Raises:
        ConfigError: the model cannot be loaded (unknown id, no access, no network, not a causal LM).
    """
    if settings.tiny_local:
        return _tiny_base_model(settings, output_dir, training_texts)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    location = model_location(settings.base_model)
    options: dict[str, Any] = {"dtype": _dtype(has_cuda)}
    if quantization is not None:
        options["quantization_config"] = quantization
        options["device_map"] = {"": 0}
    try:
        tokenizer = AutoTokenizer.from_pretrained(location)
        model = AutoModelForCausalLM.from_pretrained(location, **options)
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"cannot load base model {settings.base_model!r} ({type(exc).__name__}: {str(exc).splitlines()[0]}); "
            "check the id (gated models such as Gemma need HF_TOKEN with the licence accepted) or give a folder"
        ) from exc
    log.info("base model %s loaded: %d parameters", settings.base_model, sum(p.numel() for p in model.parameters()))
    return BaseModel(model=model, tokenizer=tokenizer, source=location, tiny_local=False)


def _tiny_base_model(settings: OpenWeightsSettings, output_dir: Path, training_texts: list[str]) -> BaseModel:
    """Build the tiny model and save it in the output folder, or reload the one saved by an earlier run."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = output_dir / BASE_MODEL_FOLDER
    if (folder / "config.json").is_file():
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(folder)
        log.info("tiny local model reloaded from %s", folder)
    else:
        if not training_texts:
            raise ConfigError("the tiny local model needs training examples to train its tokenizer on")
        tokenizer = build_tiny_tokenizer(training_texts)
        model = build_tiny_model(tokenizer, settings.seed, settings.max_seq_length + settings.max_answer_tokens)
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        write_tiny_marker(folder)
        log.info("tiny local model built: %d parameters, vocabulary %d",
                 sum(p.numel() for p in model.parameters()), len(tokenizer))
    if not (folder / TINY_MODEL_MARKER).is_file():
        write_tiny_marker(folder)
    return BaseModel(model=model, tokenizer=tokenizer, source=str(folder), tiny_local=True)


def stop_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """The token ids that end an answer: the model's end-of-sequence ids and the template's end-of-turn token."""
    ids: list[int] = []
    configured = getattr(model.generation_config, "eos_token_id", None)
    if isinstance(configured, int):
        ids.append(configured)
    elif configured:
        ids.extend(int(i) for i in configured)
    if tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    vocabulary = tokenizer.get_vocab()
    for marker in ("<end_of_turn>", "<|im_end|>", "<|eot_id|>", "<|end|>"):
        if marker in vocabulary:
            ids.append(vocabulary[marker])
    return sorted(set(ids))
