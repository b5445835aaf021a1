"""A tiny Gemma-architecture model and its tokenizer, made on this machine from the training data.

No model hub is needed: the tokenizer is a byte-level BPE trained with the
``tokenizers`` library on the training texts, with Gemma's special tokens and
a text-only copy of Gemma 3's chat template; the model is
``Gemma3ForCausalLM`` built from a small config (2 layers, hidden size 64)
with random weights drawn from a fixed seed, so the same data and seed give
the same model. It exercises the code that tunes a real Gemma (LoRA, chat
template, masking, checkpoints, generation) in seconds on a CPU. Its answers
mean nothing, and everything made with it says so (:data:`TINY_MODEL_MARKER`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

TINY_MODEL_MARKER = "TINY_LOCAL_MODEL.txt"
TINY_MODEL_NOTICE = (
    "Made with the tiny local model (base_model=tiny-local): a Gemma-architecture model with random weights "
    "built on this machine, a few hundred thousand parameters. It tests the training code; its answers and "
    "scores say nothing about a real model."
)
TINY_MODEL_VERSION = "tiny-local"

BOS, EOS, PAD, UNK = "<bos>", "<eos>", "<pad>", "<unk>"
START_OF_TURN, END_OF_TURN = "<start_of_turn>", "<end_of_turn>"
SPECIAL_TOKENS = (PAD, EOS, BOS, UNK, START_OF_TURN, END_OF_TURN)  # Gemma's order: pad 0, eos 1, bos 2

# Gemma 3's chat template for text: the system message is folded into the first user turn.
GEMMA_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}"
    "{%- set first_user_prefix = '' -%}"
    "{%- set loop_messages = messages -%}"
    "{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{%- endif -%}"
    "{%- if message['role'] == 'assistant' -%}{%- set role = 'model' -%}{%- else -%}"
    "{%- set role = message['role'] -%}{%- endif -%}"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') }}"
    "{{ message['content'] | trim }}"
    "{{ '<end_of_turn>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)

TINY_CONFIG = {
    "hidden_size": 64,
    "initializer_range": 0.1,  # larger than Gemma's 0.02: random weights with visible logits learn in a few steps
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "query_pre_attn_scalar": 16,
    "sliding_window": 256,
    "layer_types": ["sliding_attention", "full_attention"],
}


def build_tiny_tokenizer(texts: Sequence[str], vocab_size: int = 1024) -> Any:
    """A byte-level BPE tokenizer trained on ``texts``, with Gemma's special tokens and chat template.

    Byte-level, so any text (holdout prompts included) encodes without unknown tokens.

    Args:
        texts: the training texts (system instructions and turns).
        vocab_size: the largest vocabulary (smaller when the texts have fewer merges).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(list(texts), trainer=trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        additional_special_tokens=[START_OF_TURN, END_OF_TURN],
        padding_side="right",
    )
    wrapped.chat_template = GEMMA_CHAT_TEMPLATE
    return wrapped


def build_tiny_model(tokenizer: Any, seed: int, max_positions: int) -> Any:
    """A ``Gemma3ForCausalLM`` of :data:`TINY_CONFIG` size with random weights drawn from ``seed``.

    Args:
        tokenizer: the tokenizer from :func:`build_tiny_tokenizer` (vocabulary and special token ids).
        seed: the seed of the weights; the same seed and tokenizer give the same weights.
        max_positions: the longest sequence the model must handle.
    """
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    config = Gemma3TextConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=max(max_positions, 128),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=[tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids(END_OF_TURN)],
        **TINY_CONFIG,
    )
    generator_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = Gemma3ForCausalLM(config)
    finally:
        torch.random.set_rng_state(generator_state)
    model.generation_config.eos_token_id = config.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def write_tiny_marker(folder: Path) -> None:
    """Write the notice that ``folder``'s contents came from the tiny local model."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / TINY_MODEL_MARKER).write_text(TINY_MODEL_NOTICE + "\n", encoding="utf-8")


def tiny_model_metadata(model: Any) -> dict[str, Any]:
    """What the summary says about a tiny model: the notice, its size and its config."""
    return {
        "tiny_local_model": True,
        "notice": TINY_MODEL_NOTICE,
        "parameters": sum(p.numel() for p in model.parameters()),
        "config": json.loads(model.config.to_json_string()),
    }
