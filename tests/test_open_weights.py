"""Open-weights training on the tiny local model: chat template, loss mask, LoRA training, early stopping, resume.

Needs the ``open-weights`` extra; skipped without it. Everything runs on CPU
with a tiny Gemma-architecture model built from the data, in a few seconds per
training.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")
pytest.importorskip("trl")

from safetensors.torch import load_file  # noqa: E402
from transformers import TrainerCallback  # noqa: E402

from gemini_sft.errors import ConfigError, DatasetInvalidError, InputFormatError, TuningSettingsError  # noqa: E402
from gemini_sft.examples import make_example  # noqa: E402
from gemini_sft.open_weights.answers import read_answers  # noqa: E402
from gemini_sft.open_weights.models import (  # noqa: E402
    load_base_model,
    model_location,
    quantization_config,
)
from gemini_sft.open_weights.rendering import ChatRenderer, chat_messages, render_examples  # noqa: E402
from gemini_sft.open_weights.settings import TINY_LOCAL_MODEL, OpenWeightsSettings  # noqa: E402
from gemini_sft.open_weights.tiny_model import (  # noqa: E402
    TINY_MODEL_MARKER,
    build_tiny_model,
    build_tiny_tokenizer,
)
from gemini_sft.open_weights.train import main  # noqa: E402
from gemini_sft.open_weights.training import build_trainer, train_adapter  # noqa: E402
from gemini_sft.sample_data import make_ticket  # noqa: E402

SYSTEM = "Triage the ticket."


def tickets(count: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    return [(t.text, t.response) for t in (make_ticket(rng) for _ in range(count))]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def splits(folder: Path, train: int = 24, validation: int = 8, holdout: int = 4) -> tuple[Path, Path, Path]:
    pairs = tickets(train + validation + holdout, seed=11)
    rows = [make_example(prompt, response, SYSTEM) for prompt, response in pairs]
    folder.mkdir(parents=True, exist_ok=True)
    return (
        write_jsonl(folder / "train.jsonl", rows[:train]),
        write_jsonl(folder / "validation.jsonl", rows[train:train + validation]),
        write_jsonl(folder / "holdout.jsonl", rows[train + validation:]),
    )


def tiny_settings(**changes) -> OpenWeightsSettings:
    values = dict(base_model=TINY_LOCAL_MODEL, epochs=3, batch_size=4, gradient_accumulation_steps=1,
                  learning_rate=2e-2, lora_rank=8, lora_alpha=16, lora_dropout=0.0, max_seq_length=256,
                  early_stopping_patience=0, max_answer_tokens=16)
    values.update(changes)
    return OpenWeightsSettings(**values)


@pytest.fixture(scope="module")
def tokenizer():
    texts = [text for pair in tickets(40, seed=3) for text in pair] + [SYSTEM]
    return build_tiny_tokenizer(texts)


# ---------------------------------------------------------------------------
# Chat template and loss mask
# ---------------------------------------------------------------------------


def test_template_folds_the_system_instruction_into_the_first_user_turn_as_gemma_does(tokenizer) -> None:
    messages = chat_messages(make_example("Where is my parcel?", "On its way.", "Be brief.")["contents"], "Be brief.")
    text = ChatRenderer(tokenizer).render_text(messages)
    assert text == (
        "<bos><start_of_turn>user\nBe brief.\n\nWhere is my parcel?<end_of_turn>\n"
        "<start_of_turn>model\nOn its way.<end_of_turn>\n"
    )


def test_tiny_template_renders_text_exactly_like_gemma_3s(tokenizer) -> None:
    chat_templates = pytest.importorskip("trl.chat_template_utils")
    gemma3 = getattr(chat_templates, "gemma3_chat_template", None)
    if gemma3 is None:
        pytest.skip("this trl has no Gemma 3 template to compare with")
    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": " u1 "},
                {"role": "assistant", "content": "m1"}, {"role": "user", "content": "u2"}]
    ours = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    theirs = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, chat_template=gemma3)
    assert ours == theirs


def test_a_template_that_refuses_a_system_message_gets_it_folded_into_the_first_user_turn(tokenizer) -> None:
    gemma2_style = (
        "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
        "{% endif %}{% for message in messages %}{% if message['role'] == 'assistant' %}{% set role = 'model' %}"
        "{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\n' + "
        "message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
    )
    strict = build_tiny_tokenizer(["hello world"] * 4)
    strict.chat_template = gemma2_style
    renderer = ChatRenderer(strict)
    assert not renderer.folds_system_itself
    messages = chat_messages(make_example("Hi", "Hello.", "Be brief.")["contents"], "Be brief.")
    assert renderer.render_text(messages).startswith("<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n")


def _masked_runs(tokenizer, ids: list[int], mask: list[int]) -> tuple[list[str], str]:
    runs, current, unmasked = [], [], []
    for token, bit in zip(ids, mask):
        if bit:
            current.append(token)
        else:
            if current:
                runs.append(tokenizer.decode(current))
                current = []
            unmasked.append(token)
    if current:
        runs.append(tokenizer.decode(current))
    return runs, tokenizer.decode(unmasked)


def test_loss_mask_covers_exactly_the_model_turns(tokenizer) -> None:
    contents = [
        {"role": "user", "parts": [{"text": "My invoice is wrong."}]},
        {"role": "model", "parts": [{"text": "Category: billing"}]},
        {"role": "user", "parts": [{"text": "And the priority?"}]},
        {"role": "model", "parts": [{"text": "Priority: high"}]},
    ]
    renderer = ChatRenderer(tokenizer)
    item = renderer.encode(chat_messages(contents, SYSTEM), max_length=512)
    runs, rest = _masked_runs(tokenizer, item.input_ids, item.completion_mask)
    assert runs == ["Category: billing<end_of_turn>\n", "Priority: high<end_of_turn>\n"]
    assert rest == (
        f"<bos><start_of_turn>user\n{SYSTEM}\n\nMy invoice is wrong.<end_of_turn>\n<start_of_turn>model\n"
        "<start_of_turn>user\nAnd the priority?<end_of_turn>\n<start_of_turn>model\n"
    )
    assert not item.truncated


def test_the_mask_follows_the_models_own_template_not_gemmas(tokenizer) -> None:
    chatml = (
        "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + "
        "'<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
    )
    other = build_tiny_tokenizer(["hello world"] * 4)
    other.chat_template = chatml
    contents = [{"role": "user", "parts": [{"text": "Hi"}]}, {"role": "model", "parts": [{"text": "Hello."}]}]
    item = ChatRenderer(other).encode(chat_messages(contents, "Be brief."), max_length=512)
    runs, rest = _masked_runs(other, item.input_ids, item.completion_mask)
    assert runs == ["Hello.<|im_end|>\n"]
    assert rest == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"


def test_trainer_labels_are_ignored_outside_the_model_turns(tmp_path, tokenizer) -> None:
    train, validation, _ = splits(tmp_path / "data", train=8, validation=4)
    settings = tiny_settings()
    from gemini_sft.examples import read_examples
    from gemini_sft.open_weights.rendering import training_texts

    examples = read_examples(train)
    base = load_base_model(settings, tmp_path / "out", training_texts(examples), has_cuda=False)
    rendered, _ = render_examples(ChatRenderer(base.tokenizer), examples, settings.max_seq_length, "train")
    trainer = build_trainer(settings, base, rendered, rendered[:2], tmp_path / "checkpoints", has_cuda=False)
    for index, item in enumerate(rendered):
        labels = trainer.train_dataset[index]["labels"]
        assert labels == [t if m else -100 for t, m in zip(item.input_ids, item.completion_mask)]
        assert 0 < sum(label != -100 for label in labels) < len(labels)


def test_long_examples_are_cut_and_those_without_a_model_token_left_are_dropped(tokenizer) -> None:
    renderer = ChatRenderer(tokenizer)
    long_prompt = "word " * 300
    examples = [(1, make_example("short ticket", "Category: billing")), (2, make_example(long_prompt, "Category: x"))]
    rendered, stats = render_examples(renderer, examples, max_length=40, source="train.jsonl")
    assert len(rendered) == 1 and stats.dropped_truncated_away == 1
    assert stats.kept == 1 and all(len(item.input_ids) <= 40 for item in rendered)


def test_turns_that_do_not_alternate_name_the_line(tokenizer) -> None:
    example = {"contents": [{"role": "user", "parts": [{"text": "a"}]}, {"role": "user", "parts": [{"text": "b"}]}]}
    with pytest.raises(DatasetInvalidError, match=r"train.jsonl:7: turns 1 and 2 are both user"):
        render_examples(ChatRenderer(tokenizer), [(7, example)], 64, "train.jsonl")


# ---------------------------------------------------------------------------
# Tiny model, base model loading, QLoRA
# ---------------------------------------------------------------------------


def test_tiny_model_is_the_same_for_the_same_seed_and_small(tokenizer) -> None:
    first, again, other = (build_tiny_model(tokenizer, seed, 256) for seed in (5, 5, 6))
    assert first.config.model_type == "gemma3_text" and first.config.num_hidden_layers == 2
    for (name, a), (_, b), (_, c) in zip(first.state_dict().items(), again.state_dict().items(),
                                         other.state_dict().items()):
        assert torch.equal(a, b), name
    assert any(not torch.equal(a, c) for a, c in zip(first.state_dict().values(), other.state_dict().values()))
    assert sum(p.numel() for p in first.parameters()) * 4 < 5_000_000  # a few MB in float32


def test_qlora_config_is_built_only_when_asked_and_refused_without_a_gpu() -> None:
    assert quantization_config(OpenWeightsSettings(), has_cuda=False) is None
    with pytest.raises(TuningSettingsError, match="qlora=true needs a CUDA GPU"):
        quantization_config(OpenWeightsSettings(qlora=True), has_cuda=False)


def test_qlora_training_on_cpu_fails_before_writing_anything(tmp_path) -> None:
    train, validation, _ = splits(tmp_path / "data", train=4, validation=2)
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(TuningSettingsError):
        train_adapter(tiny_settings(qlora=True), train, validation, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_base_model_folder_is_loaded_from_disk(tmp_path, tokenizer) -> None:
    folder = tmp_path / "my-model"
    build_tiny_model(tokenizer, 1, 256).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    settings = OpenWeightsSettings(base_model=str(folder))
    base = load_base_model(settings, tmp_path / "out", [], has_cuda=False)
    assert base.source == str(folder) and not base.tiny_local
    assert base.model.config.model_type == "gemma3_text"


def test_a_failed_first_attempt_does_not_hold_the_folder_for_other_settings(tmp_path) -> None:
    train, _, _ = splits(tmp_path / "data", train=4)
    (tmp_path / "not-a-model").mkdir()
    with pytest.raises(ConfigError, match="the folder has no config.json"):
        train_adapter(tiny_settings(base_model=str(tmp_path / "not-a-model")), train, None, tmp_path / "out")
    summary = train_adapter(tiny_settings(epochs=1), train, None, tmp_path / "out").summary
    assert summary["base_model"] == TINY_LOCAL_MODEL and summary["epochs_trained"] == 1


def test_a_missing_split_is_named_before_anything_is_written(tmp_path) -> None:
    with pytest.raises(InputFormatError, match="train.jsonl does not exist"):
        train_adapter(tiny_settings(), tmp_path / "train.jsonl", None, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_gs_folder_that_is_not_mounted_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match=r"no config.json at /gcs/no-such-bucket/weights"):
        model_location("gs://no-such-bucket/weights")


# ---------------------------------------------------------------------------
# Training through the program's command line
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """One training of 3 epochs (6 steps each) with holdout answers, run as the training job runs it."""
    folder = tmp_path_factory.mktemp("open-weights")
    train, validation, holdout = splits(folder / "data")
    output = folder / "out"
    code = main([
        "--train", str(train), "--validation", str(validation), "--holdout", str(holdout), "--output", str(output),
        "--base-model", TINY_LOCAL_MODEL, "--epochs", "3", "--batch-size", "4", "--gradient-accumulation-steps", "1",
        "--learning-rate", "0.02", "--lora-rank", "8", "--lora-alpha", "16", "--lora-dropout", "0",
        "--max-seq-length", "256", "--early-stopping-patience", "0", "--max-answer-tokens", "16",
    ])
    assert code == 0
    return output


def test_train_loss_falls(trained) -> None:
    curve = json.loads((trained / "loss_curves.json").read_text())["train"]
    assert len(curve) >= 6 and all(len(point) == 2 for point in curve)
    first, last = [value for _, value in curve[:3]], [value for _, value in curve[-3:]]
    assert sum(last) / 3 < sum(first) / 3 - 0.3


def test_output_holds_the_adapter_curves_figures_and_a_checkpoint_per_epoch(trained) -> None:
    adapter = trained / "adapter"
    assert (adapter / "adapter_model.safetensors").is_file()
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert (config["r"], config["lora_alpha"], config["peft_type"]) == (8, 16, "LORA")
    assert sorted(p.name for p in (trained / "checkpoints").glob("checkpoint-*")) == [
        "checkpoint-12", "checkpoint-18", "checkpoint-6"]
    curves = json.loads((trained / "loss_curves.json").read_text())
    assert [step for step, _ in curves["eval"]] == [6, 12, 18]
    figures = json.loads((trained / "training_figures.json").read_text())
    assert figures["tokens_per_second"] > 0 and figures["wall_seconds"] > 0
    assert figures["device"] == "cpu" and figures["gpu_hours"] == 0


def test_the_kept_adapter_is_the_checkpoint_with_the_lowest_validation_loss(trained) -> None:
    summary = json.loads((trained / "training_summary.json").read_text())
    by_epoch = summary["eval_loss_by_epoch"]
    best_epoch = min(by_epoch, key=lambda point: point[1])[0]
    chosen = summary["chosen_checkpoint"]
    assert chosen["epoch"] == best_epoch and chosen["checkpoint"] == f"checkpoints/checkpoint-{6 * best_epoch}"
    kept = load_file(trained / "adapter" / "adapter_model.safetensors")
    best = load_file(trained / chosen["checkpoint"] / "adapter_model.safetensors")
    assert kept.keys() == best.keys() and all(torch.equal(kept[k], best[k]) for k in kept)


def test_everything_says_it_came_from_the_tiny_local_model(trained) -> None:
    summary = json.loads((trained / "training_summary.json").read_text())
    assert summary["tiny_local_model"] is True and "random weights" in summary["tiny_local"]["notice"]
    for folder in (trained, trained / "adapter", trained / "base_model"):
        assert (folder / TINY_MODEL_MARKER).is_file()
    answers = read_answers(trained / "predictions.jsonl")
    assert all(a["model_version"].startswith("tiny-local") for role in answers.values() for a in role)


def test_base_and_tuned_answer_every_holdout_prompt_in_the_predictions_shape(trained) -> None:
    rows = [json.loads(line) for line in (trained / "predictions.jsonl").read_text().splitlines()]
    assert [row["example_id"] for row in rows] == ["line-1", "line-2", "line-3", "line-4"]
    for row in rows:
        assert row["reference"].startswith("Category:") and row["prompt"]
        for role in ("base", "tuned"):
            answer = row[role]
            assert set(answer) == {"answer", "error", "attempts", "model_version", "finish_reason",
                                   "latency_seconds", "scores"}
            assert answer["error"] is None and isinstance(answer["answer"], str)
            assert answer["finish_reason"] in ("STOP", "MAX_TOKENS")
    # the base answers come from the same weights with the adapter switched off
    assert [row["base"]["answer"] for row in rows] != [row["tuned"]["answer"] for row in rows]
    summary = json.loads((trained / "training_summary.json").read_text())
    assert summary["answers"]["examples"] == 4 and summary["answers"]["errors"] == {"base": 0, "tuned": 0}


def test_a_finished_training_is_not_trained_again(trained) -> None:
    data = trained.parent / "data"
    steps: list[int] = []

    class Steps(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            steps.append(state.global_step)

    outcome = train_adapter(tiny_settings(), data / "train.jsonl", data / "validation.jsonl", trained,
                            extra_callbacks=[Steps()])
    assert steps == [] and outcome.summary["global_steps"] == 18


def test_a_folder_holding_another_training_is_refused(trained) -> None:
    data = trained.parent / "data"
    with pytest.raises(ConfigError, match=r"other settings or data \(settings.lora_rank\)"):
        train_adapter(tiny_settings(lora_rank=4), data / "train.jsonl", data / "validation.jsonl", trained)


# ---------------------------------------------------------------------------
# Early stopping and resume
# ---------------------------------------------------------------------------


def test_early_stopping_ends_when_validation_loss_stops_falling_and_keeps_the_best_epoch(tmp_path) -> None:
    pairs = tickets(16, seed=7)
    train = write_jsonl(tmp_path / "train.jsonl", [make_example(p, r) for p, r in pairs])
    # the same prompts with other answers: the better the model learns the training answers, the worse these get
    validation = write_jsonl(tmp_path / "validation.jsonl",
                             [make_example(p, "Category: x\nPriority: none\nAction: Ignore.") for p, _ in pairs[:8]])
    settings = tiny_settings(epochs=8, early_stopping_patience=1)
    summary = train_adapter(settings, train, validation, tmp_path / "out").summary
    by_epoch = summary["eval_loss_by_epoch"]
    assert summary["stopped_early"] and summary["epochs_trained"] < 8
    best_epoch, best_loss = min(by_epoch, key=lambda point: point[1])
    assert by_epoch[-1][0] == best_epoch + settings.early_stopping_patience  # stopped after `patience` worse epochs
    assert all(loss >= best_loss for _, loss in by_epoch[best_epoch:])
    assert summary["chosen_checkpoint"]["epoch"] == best_epoch


class Preempted(Exception):
    """Stands for the machine going away in the middle of a training."""


def test_an_interrupted_training_resumes_from_its_last_checkpoint(tmp_path) -> None:
    train, validation, _ = splits(tmp_path / "data")
    settings = tiny_settings(epochs=2)

    class StopAfterFirstCheckpoint(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            raise Preempted()

    with pytest.raises(Preempted):
        train_adapter(settings, train, validation, tmp_path / "out", extra_callbacks=[StopAfterFirstCheckpoint()])
    assert sorted(p.name for p in (tmp_path / "out" / "checkpoints").iterdir() if p.is_dir()) == ["checkpoint-6"]

    steps: list[int] = []

    class Steps(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            steps.append(state.global_step)

    summary = train_adapter(settings, train, validation, tmp_path / "out", extra_callbacks=[Steps()]).summary
    assert steps == list(range(7, 13))  # only the second epoch's steps ran
    assert summary["resumed_from_checkpoint"] == "checkpoint-6"
    assert summary["global_steps"] == 12 and [epoch for epoch, _ in summary["eval_loss_by_epoch"]] == [1, 2]
    figures = summary["figures"]
    assert figures["sessions"] == 2 and figures["train_tokens"] == 2 * summary["data"]["train"]["tokens"]


def test_without_validation_examples_every_epoch_is_trained_and_the_last_is_kept(tmp_path) -> None:
    train, _, _ = splits(tmp_path / "data", train=8)
    summary = train_adapter(tiny_settings(epochs=2, early_stopping_patience=1), train, None, tmp_path / "out").summary
    assert summary["epochs_trained"] == 2 and not summary["stopped_early"]
    assert summary["chosen_checkpoint"]["checkpoint"] == "checkpoints/checkpoint-4"
    assert summary["chosen_checkpoint"]["chosen_by"] == "last epoch (no validation)"
    assert summary["eval_loss_by_epoch"] == []
