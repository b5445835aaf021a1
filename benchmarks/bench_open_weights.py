"""Benchmark of open-weights LoRA training: training tokens per second (and, on a GPU, model FLOPs utilisation).

Trains an adapter with the code the training job runs
(:func:`gemini_sft.open_weights.training.train_adapter`) on generated support
tickets for a number of epochs, then prints the measured throughput: tokens
(prompt and answer, no padding) per second spent in training steps, and the
wall time of the whole training (evaluation and checkpoints included).

On CPU the default is the tiny local model (random weights, a few hundred
thousand parameters): the number measures the training loop, not a real
model. With CUDA present it also prints the model FLOPs utilisation: model
FLOPs per second (6 x parameters x tokens per second, the usual convention;
LoRA's frozen weights need no weight gradients, so the real work is nearer
4x) divided by the GPU's peak dense bf16 FLOPs from a table.

Usage: python benchmarks/bench_open_weights.py [--examples 96] [--epochs 2] [--base-model tiny-local] [--batch-size 8]
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import tempfile
import time
import warnings
from pathlib import Path

from gemini_sft.examples import make_example
from gemini_sft.open_weights.settings import TINY_LOCAL_MODEL, OpenWeightsSettings
from gemini_sft.sample_data import make_ticket

# Peak dense bf16 tensor FLOPs per GPU (vendor data sheets; fp16 for the T4, which has no bf16).
PEAK_FLOPS = {
    "H200": 989e12,
    "H100": 989e12,
    "A100": 312e12,
    "L4": 121e12,
    "A10": 125e12,
    "V100": 125e12,
    "T4": 65e12,
}


def write_tickets(path: Path, count: int, seed: int) -> Path:
    """Write ``count`` generated support tickets as Gemini examples."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as handle:
        for _ in range(count):
            ticket = make_ticket(rng)
            handle.write(json.dumps(make_example(ticket.text, ticket.response, "Triage the ticket.")) + "\n")
    return path


def peak_flops(device_name: str) -> float | None:
    """The peak dense FLOPs of a GPU by its name, when the table knows it."""
    for key, flops in PEAK_FLOPS.items():
        if key in device_name:
            return flops
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=96, help="training examples")
    parser.add_argument("--epochs", type=int, default=2, help="epochs")
    parser.add_argument("--batch-size", type=int, default=8, help="examples per step")
    parser.add_argument("--base-model", default=TINY_LOCAL_MODEL, help="model to train (default: the tiny model)")
    parser.add_argument("--max-seq-length", type=int, default=512, help="longest example in tokens")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore", category=FutureWarning)  # the libraries' notices about their own internals

    import torch

    from gemini_sft.open_weights.training import train_adapter

    settings = OpenWeightsSettings(
        base_model=args.base_model, epochs=args.epochs, batch_size=args.batch_size, gradient_accumulation_steps=1,
        learning_rate=2e-3, max_seq_length=args.max_seq_length, early_stopping_patience=0,
    )
    with tempfile.TemporaryDirectory(prefix="bench-open-weights-") as folder:
        root = Path(folder)
        train = write_tickets(root / "train.jsonl", args.examples, seed=1)
        validation = write_tickets(root / "validation.jsonl", max(4, args.examples // 8), seed=2)
        started = time.monotonic()
        outcome = train_adapter(settings, train, validation, root / "out")
        total = time.monotonic() - started
    figures = outcome.summary["figures"]
    parameters = outcome.summary["total_parameters"]
    device = figures["device"]
    print(f"model: {args.base_model} ({parameters:,} parameters, {outcome.summary['trainable_parameters']:,} "
          f"trainable), device: {device}, threads: {torch.get_num_threads()}")
    print(f"training: {args.examples} examples x {outcome.summary['epochs_trained']} epochs = "
          f"{figures['train_tokens']:,} tokens, {outcome.summary['global_steps']} steps of {args.batch_size}")
    print(f"training throughput: {figures['tokens_per_second']:,.0f} tokens/s "
          f"({figures['train_step_seconds']:.1f} s in training steps)")
    print(f"wall time: {figures['wall_seconds']:.1f} s of training (eval and checkpoints included), "
          f"{total:.1f} s with model building and data preparation")
    if device == "cuda":
        name = torch.cuda.get_device_name(0)
        peak = peak_flops(name)
        model_flops = 6.0 * parameters * figures["tokens_per_second"]
        if peak is None:
            print(f"GPU {name}: {model_flops / 1e12:.2f} model TFLOP/s (peak unknown to this table, no MFU)")
        else:
            print(f"GPU {name}: {model_flops / 1e12:.2f} model TFLOP/s, model FLOPs utilisation "
                  f"{model_flops / peak:.1%} of {peak / 1e12:.0f} TFLOP/s peak; GPU hours {figures['gpu_hours']:.4f}")
    else:
        print("no CUDA GPU: model FLOPs utilisation is measured on GPU machines only")
    return 0


if __name__ == "__main__":
    sys.exit(main())
