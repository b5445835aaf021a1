"""LoRA (or QLoRA) supervised fine-tuning of an open model with trl's SFTTrainer.

:func:`train_adapter` renders the train and validation splits with the base
model's chat template (loss on the model turns only, see
:mod:`gemini_sft.open_weights.rendering`), trains a LoRA adapter one epoch at a
time, measures the validation loss after each epoch, writes a checkpoint per
epoch, stops early when the validation loss has not fallen for
``early_stopping_patience`` epochs and keeps the adapter of the best epoch.

The output folder::

    training_state.json   settings and input digests (a resume must match them)
    checkpoints/          checkpoint-STEP per epoch (adapter, optimiser, trainer state)
    adapter/              the chosen epoch's adapter_model.safetensors + adapter_config.json + tokenizer
    loss_curves.json      {"train": [[step, loss], ...], "eval": [[step, loss], ...]}
    training_figures.json tokens/s, wall seconds, GPU hours
    training_summary.json everything above in one document
    base_model/           the tiny local model (base_model=tiny-local only), with TINY_LOCAL_MODEL.txt

A training that stopped (a preempted machine, a retried step) resumes from its
last complete checkpoint when run again with the same output folder, settings
and data; a finished one is not trained again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gemini_sft.errors import ConfigError, DatasetInvalidError, InputFormatError
from gemini_sft.examples import read_examples
from gemini_sft.open_weights.models import (
    BASE_MODEL_FOLDER,
    BaseModel,
    cuda_available,
    visible_gpus,
    load_base_model,
    lora_config,
    quantization_config,
    require_training_libraries,
    set_cpu_threads,
)
from gemini_sft.open_weights.rendering import (
    ChatRenderer,
    RenderedExample,
    RenderStats,
    render_examples,
    training_texts,
)
from gemini_sft.open_weights.settings import OpenWeightsSettings
from gemini_sft.open_weights.tiny_model import TINY_MODEL_MARKER, tiny_model_metadata, write_tiny_marker

log = logging.getLogger(__name__)

STATE_FILE = "training_state.json"
SUMMARY_FILE = "training_summary.json"
CURVES_FILE = "loss_curves.json"
FIGURES_FILE = "training_figures.json"
PROGRESS_FILE = "gemini_sft_progress.json"  # inside each checkpoint: figures accumulated up to it
CHECKPOINTS_FOLDER = "checkpoints"
ADAPTER_FOLDER = "adapter"


@dataclass
class TrainingFigures:
    """What a training cost: time, tokens and GPU hours, over every session that contributed to it."""

    device: str
    accelerator_count: int
    train_tokens: int = 0
    train_step_seconds: float = 0.0
    wall_seconds: float = 0.0
    sessions: int = 1

    @property
    def tokens_per_second(self) -> float:
        """Training tokens (prompt and answer, no padding) per second spent in training steps."""
        return self.train_tokens / self.train_step_seconds if self.train_step_seconds > 0 else 0.0

    @property
    def gpu_hours(self) -> float:
        """Wall hours times GPUs; 0 on CPU."""
        return self.wall_seconds / 3600.0 * self.accelerator_count if self.device == "cuda" else 0.0

    def to_document(self) -> dict[str, Any]:
        document = asdict(self)
        document["tokens_per_second"] = self.tokens_per_second
        document["gpu_hours"] = self.gpu_hours
        return document


@dataclass
class TrainingOutcome:
    """The result of :func:`train_adapter`: where the adapter is and how the training went."""

    output_dir: Path
    adapter_dir: Path
    summary: dict[str, Any]
    base: BaseModel = field(repr=False)
    renderer: ChatRenderer = field(repr=False)
    model: Any = field(repr=False)  # the tuned model in memory: the base with the chosen adapter


def file_sha256(path: Path | None) -> str | None:
    """The SHA-256 of a file, or None for no file."""
    if path is None:
        return None
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _training_state(settings: OpenWeightsSettings, train: Path, validation: Path | None) -> dict[str, Any]:
    return {
        "settings": asdict(settings),
        "train_sha256": file_sha256(train),
        "validation_sha256": file_sha256(validation),
    }


def _check_or_write_state(output_dir: Path, state: dict[str, Any]) -> bool:
    """Write the training state, or check it equals the one already there; returns whether it was there.

    A folder whose earlier attempt trained nothing (it failed before its first checkpoint, e.g. on a
    wrong base model) is started anew with the new settings: there is nothing in it to lose.

    Raises:
        ConfigError: the folder holds a checkpoint or a finished training with other settings or data.
    """
    path = output_dir / STATE_FILE
    if path.is_file():
        previous = json.loads(path.read_text(encoding="utf-8"))
        if previous == state:
            return True
        trained = last_complete_checkpoint(output_dir / CHECKPOINTS_FOLDER) or (output_dir / SUMMARY_FILE).is_file()
        if trained:
            changed = sorted(
                [f"settings.{k}" for k in state["settings"] if previous.get("settings", {}).get(k) != state["settings"][k]]
                + [k for k in ("train_sha256", "validation_sha256") if previous.get(k) != state[k]]
            )
            raise ConfigError(
                f"{output_dir} holds a training with other settings or data ({', '.join(changed)}); "
                "give a new output folder, or the same settings and data to resume it"
            )
        log.info("%s holds an attempt that trained nothing; starting anew with the new settings", output_dir)
        shutil.rmtree(output_dir / BASE_MODEL_FOLDER, ignore_errors=True)  # a tiny model built for the old data
    output_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
    return False


def last_complete_checkpoint(checkpoints_dir: Path) -> Path | None:
    """The checkpoint of the highest step whose trainer state was written (the last file a save writes)."""
    if not checkpoints_dir.is_dir():
        return None
    complete = [
        path for path in checkpoints_dir.glob("checkpoint-*")
        if path.name.split("-")[-1].isdigit() and (path / "trainer_state.json").is_file()
    ]
    return max(complete, key=lambda path: int(path.name.split("-")[-1]), default=None)


def _dataset(rendered: Sequence[RenderedExample]) -> Any:
    from datasets import Dataset

    return Dataset.from_dict(
        {
            "input_ids": [item.input_ids for item in rendered],
            "completion_mask": [item.completion_mask for item in rendered],
        }
    )


def loss_curves(log_history: Sequence[dict[str, Any]]) -> dict[str, list[list[float]]]:
    """Train and eval loss as ``[[step, value], ...]`` from a trainer's log history (the eval entry per epoch)."""
    train = [[entry["step"], entry["loss"]] for entry in log_history if "loss" in entry and "step" in entry]
    evaluation = [[entry["step"], entry["eval_loss"]] for entry in log_history if "eval_loss" in entry]
    return {"train": train, "eval": evaluation}


def _sft_config(
    settings: OpenWeightsSettings, checkpoints_dir: Path, has_cuda: bool, has_validation: bool, steps_per_epoch: int
) -> Any:
    import torch
    from trl import SFTConfig

    bf16 = has_cuda and torch.cuda.is_bf16_supported()
    return SFTConfig(
        output_dir=str(checkpoints_dir),
        num_train_epochs=settings.epochs,
        learning_rate=settings.learning_rate,
        lr_scheduler_type="linear",
        per_device_train_batch_size=settings.batch_size,
        per_device_eval_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.gradient_accumulation_steps,
        max_length=settings.max_seq_length,
        completion_only_loss=True,
        eval_strategy="epoch" if has_validation else "no",
        save_strategy="epoch",
        save_total_limit=None,
        load_best_model_at_end=has_validation,
        metric_for_best_model="eval_loss" if has_validation else None,
        greater_is_better=False if has_validation else None,
        logging_strategy="steps",
        logging_steps=max(1, steps_per_epoch // 20),
        seed=settings.seed,
        data_seed=settings.seed,
        bf16=bf16,
        fp16=False,
        use_cpu=not has_cuda,
        activation_checkpointing=has_cuda,
        dataloader_num_workers=0,
        report_to="none",
        disable_tqdm=True,
        dataset_num_proc=None,
    )


def _callbacks(figures: TrainingFigures, tokens_per_epoch: int, patience: int, has_validation: bool) -> list[Any]:
    from transformers import EarlyStoppingCallback, TrainerCallback

    class FiguresCallback(TrainerCallback):
        """Times the training steps and counts tokens; stores the running figures in each checkpoint."""

        def __init__(self) -> None:
            self.session_started = time.monotonic()
            self.wall_before = figures.wall_seconds
            self.step_started: float | None = None
            self.epoch_started: float | None = None

        def on_train_begin(self, args, state, control, **kwargs):
            self.epoch_started = state.epoch or 0.0
            self.tokens_before = figures.train_tokens

        def on_step_begin(self, args, state, control, **kwargs):
            self.step_started = time.monotonic()

        def on_step_end(self, args, state, control, **kwargs):
            if self.step_started is not None:
                figures.train_step_seconds += time.monotonic() - self.step_started
            self.step_started = None
            done = (state.epoch or 0.0) - (self.epoch_started or 0.0)
            figures.train_tokens = self.tokens_before + int(round(done * tokens_per_epoch))
            figures.wall_seconds = self.wall_before + time.monotonic() - self.session_started

        def on_save(self, args, state, control, **kwargs):
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if folder.is_dir():
                progress = {key: getattr(figures, key) for key in ("train_tokens", "train_step_seconds",
                                                                   "wall_seconds", "sessions")}
                (folder / PROGRESS_FILE).write_text(json.dumps(progress) + "\n", encoding="utf-8")

    class LogCallback(TrainerCallback):
        """Logs the train loss at each logging step and the validation loss after each epoch (numbers only)."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = logs or {}
            if "eval_loss" in logs:
                log.info("epoch %d: validation loss %.4f", round(state.epoch or 0), logs["eval_loss"])
            elif "loss" in logs:
                log.info("step %d/%d: train loss %.4f", state.global_step, state.max_steps, logs["loss"])

    callbacks: list[Any] = [FiguresCallback(), LogCallback()]
    if has_validation and patience > 0:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=patience))
    return callbacks


def _restore_figures(figures: TrainingFigures, checkpoint: Path | None) -> None:
    if checkpoint is None or not (checkpoint / PROGRESS_FILE).is_file():
        return
    progress = json.loads((checkpoint / PROGRESS_FILE).read_text(encoding="utf-8"))
    figures.train_tokens = int(progress.get("train_tokens", 0))
    figures.train_step_seconds = float(progress.get("train_step_seconds", 0.0))
    figures.wall_seconds = float(progress.get("wall_seconds", 0.0))
    figures.sessions = int(progress.get("sessions", 1)) + 1


def _render_split(renderer: ChatRenderer, path: Path, settings: OpenWeightsSettings) -> tuple[list[RenderedExample], RenderStats]:
    return render_examples(renderer, read_examples(path), settings.max_seq_length, path.name)


def _write_json(path: Path, document: Any) -> None:
    path.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n", encoding="utf-8")


def build_trainer(
    settings: OpenWeightsSettings,
    base: BaseModel,
    train_rendered: Sequence[RenderedExample],
    validation_rendered: Sequence[RenderedExample],
    checkpoints_dir: Path,
    has_cuda: bool,
    callbacks: Sequence[Any] = (),
) -> Any:
    """trl's SFTTrainer for LoRA on ``base``: loss only where the examples' completion masks are 1.

    Args:
        settings: the training settings.
        base: the base model and tokenizer.
        train_rendered: the tokenised training examples.
        validation_rendered: the tokenised validation examples (empty: no evaluation, no best-epoch choice).
        checkpoints_dir: where the per-epoch checkpoints go.
        has_cuda: whether to train on the GPU.
        callbacks: ``transformers.TrainerCallback`` objects.
    """
    import transformers
    from trl import SFTTrainer

    has_validation = bool(validation_rendered)
    steps_per_epoch = -(-len(train_rendered) // (settings.batch_size * settings.gradient_accumulation_steps))
    trainer = SFTTrainer(
        model=base.model,
        args=_sft_config(settings, checkpoints_dir, has_cuda, has_validation, steps_per_epoch),
        train_dataset=_dataset(train_rendered),
        eval_dataset=_dataset(validation_rendered) if has_validation else None,
        processing_class=base.tokenizer,
        peft_config=lora_config(settings),
        callbacks=list(callbacks),
    )
    trainer.remove_callback(transformers.PrinterCallback)  # prints raw dicts on stdout; LogCallback logs instead
    return trainer


def train_adapter(
    settings: OpenWeightsSettings,
    train_path: Path,
    validation_path: Path | None,
    output_dir: Path,
    *,
    extra_callbacks: Sequence[Any] = (),
) -> TrainingOutcome:
    """Train a LoRA adapter on ``train_path``, choosing the epoch with the lowest validation loss.

    Args:
        settings: the training settings.
        train_path: the training split (Gemini-format JSONL).
        validation_path: the validation split, or None; without validation examples every epoch is
            trained, there is no early stopping and the last epoch's adapter is kept.
        output_dir: the output folder (see the module docstring); an interrupted training in it is resumed.
        extra_callbacks: more ``transformers.TrainerCallback`` objects (progress reporting).

    Raises:
        ConfigError: a library is missing, the base model cannot be loaded, or the folder holds another training.
        TuningSettingsError: qlora without a CUDA GPU.
        InputFormatError / DatasetInvalidError: a split cannot be read, or has no example to train on.
    """
    require_training_libraries()
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()

    output_dir = Path(output_dir)
    has_cuda = cuda_available()
    quantization = quantization_config(settings, has_cuda)  # refuses qlora without a GPU before anything is written
    threads = set_cpu_threads(settings.tiny_local)
    for split in (train_path, validation_path):
        if split is not None and not Path(split).is_file():
            raise InputFormatError(f"{split} does not exist")
    state = _training_state(settings, Path(train_path), Path(validation_path) if validation_path else None)
    resuming = _check_or_write_state(output_dir, state)
    train_examples = read_examples(train_path)
    base = load_base_model(settings, output_dir, training_texts(train_examples), has_cuda, quantization)
    renderer = ChatRenderer(base.tokenizer)
    train_rendered, train_stats = render_examples(renderer, train_examples, settings.max_seq_length, Path(train_path).name)
    if not train_rendered:
        raise DatasetInvalidError(f"{train_path}: no example with a model turn to train on")
    validation_rendered: list[RenderedExample] = []
    validation_stats = RenderStats()
    if validation_path is not None:
        validation_rendered, validation_stats = _render_split(renderer, Path(validation_path), settings)
    has_validation = bool(validation_rendered)
    if not has_validation:
        log.warning("no validation examples: every epoch is trained and the last one is kept (no early stopping)")

    checkpoints_dir = output_dir / CHECKPOINTS_FOLDER
    summary_path = output_dir / SUMMARY_FILE
    if resuming and summary_path.is_file() and (output_dir / ADAPTER_FOLDER / "adapter_config.json").is_file():
        log.info("%s already holds the finished training; it is not trained again", output_dir)
        return _finished_outcome(output_dir, base, renderer)

    steps_per_epoch = -(-len(train_rendered) // (settings.batch_size * settings.gradient_accumulation_steps))
    figures = TrainingFigures(device="cuda" if has_cuda else "cpu", accelerator_count=visible_gpus())
    checkpoint = last_complete_checkpoint(checkpoints_dir)
    _restore_figures(figures, checkpoint)
    callbacks = [*_callbacks(figures, train_stats.tokens, settings.early_stopping_patience, has_validation),
                 *extra_callbacks]
    trainer = build_trainer(settings, base, train_rendered, validation_rendered, checkpoints_dir, has_cuda, callbacks)
    trainable, total = trainer.model.get_nb_trainable_parameters()
    log.info("training: %d examples, %d steps per epoch, %d of %d parameters trainable, %s, %d CPU threads%s",
             len(train_rendered), steps_per_epoch, trainable, total, figures.device, threads,
             f", resuming from {checkpoint.name}" if checkpoint else "")
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)

    chosen = _chosen_checkpoint(trainer, checkpoints_dir)
    adapter_dir = output_dir / ADAPTER_FOLDER
    trainer.model.save_pretrained(adapter_dir)
    base.tokenizer.save_pretrained(adapter_dir)
    curves = loss_curves(trainer.state.log_history)
    _write_json(output_dir / CURVES_FILE, curves)
    _write_json(output_dir / FIGURES_FILE, figures.to_document())
    epochs_trained = int(round(trainer.state.epoch or 0))
    summary = {
        "backend": "open-weights",
        "base_model": settings.base_model,
        "base_model_source": base.source,
        "tiny_local_model": base.tiny_local,
        "settings": asdict(settings),
        "adapter": ADAPTER_FOLDER,
        "chosen_checkpoint": chosen,
        "epochs_trained": epochs_trained,
        "stopped_early": has_validation and epochs_trained < settings.epochs,
        "global_steps": trainer.state.global_step,
        "steps_per_epoch": steps_per_epoch,
        "resumed_from_checkpoint": checkpoint.name if checkpoint else None,
        "trainable_parameters": trainable,
        "total_parameters": total,
        "data": {"train": asdict(train_stats), "validation": asdict(validation_stats)},
        "loss_curves": CURVES_FILE,
        "eval_loss_by_epoch": _eval_loss_by_epoch(trainer.state.log_history),
        "figures": figures.to_document(),
    }
    if base.tiny_local:
        summary["tiny_local"] = tiny_model_metadata(base.model)
        write_tiny_marker(output_dir)
        write_tiny_marker(adapter_dir)
    _write_json(summary_path, summary)
    log.info("training finished: %d epochs, chosen %s, %.0f tokens/s", epochs_trained,
             chosen["checkpoint"] if chosen else "the last epoch", figures.tokens_per_second)
    return TrainingOutcome(output_dir=output_dir, adapter_dir=adapter_dir, summary=summary, base=base,
                           renderer=renderer, model=trainer.model)


def _eval_loss_by_epoch(log_history: Sequence[dict[str, Any]]) -> list[list[float]]:
    return [[round(entry["epoch"]), entry["eval_loss"]] for entry in log_history if "eval_loss" in entry]


def _chosen_checkpoint(trainer: Any, checkpoints_dir: Path) -> dict[str, Any] | None:
    """The checkpoint whose adapter is kept: the best by validation loss, else the last one."""
    state = trainer.state
    path = Path(state.best_model_checkpoint) if state.best_model_checkpoint else last_complete_checkpoint(checkpoints_dir)
    if path is None:
        return None
    step = int(path.name.split("-")[-1])
    evals = {entry["step"]: entry for entry in state.log_history if "eval_loss" in entry}
    entry = evals.get(step, {})
    return {
        "checkpoint": f"{CHECKPOINTS_FOLDER}/{path.name}",
        "step": step,
        "epoch": round(entry["epoch"]) if "epoch" in entry else None,
        "eval_loss": entry.get("eval_loss"),
        "chosen_by": "lowest validation loss" if state.best_model_checkpoint else "last epoch (no validation)",
    }


def _finished_outcome(output_dir: Path, base: BaseModel, renderer: ChatRenderer) -> TrainingOutcome:
    """The outcome of a training already finished in ``output_dir``: its summary and its adapter loaded."""
    from peft import PeftModel

    adapter_dir = output_dir / ADAPTER_FOLDER
    summary = json.loads((output_dir / SUMMARY_FILE).read_text(encoding="utf-8"))
    model = PeftModel.from_pretrained(base.model, str(adapter_dir))
    if base.tiny_local and not (output_dir / TINY_MODEL_MARKER).is_file():
        write_tiny_marker(output_dir)
    return TrainingOutcome(output_dir=output_dir, adapter_dir=adapter_dir, summary=summary, base=base,
                           renderer=renderer, model=model)
