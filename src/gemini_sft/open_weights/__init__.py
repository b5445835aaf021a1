"""Open weights: LoRA / QLoRA fine-tuning of an open causal LM (Gemma by default) on the pipeline's splits.

The second tuning path beside managed Gemini tuning. Modules:

* :mod:`~gemini_sft.open_weights.settings`: the settings record (no machine-learning import; the pipeline reads it);
* :mod:`~gemini_sft.open_weights.rendering`: Gemini examples through the model's chat template, loss on model turns;
* :mod:`~gemini_sft.open_weights.tiny_model`: a tiny random Gemma-architecture model and tokenizer made locally;
* :mod:`~gemini_sft.open_weights.models`: loading the base model, LoRA and 4-bit QLoRA configurations;
* :mod:`~gemini_sft.open_weights.training`: trl's SFTTrainer, per-epoch eval and checkpoints, early stopping, resume;
* :mod:`~gemini_sft.open_weights.answers`: base and tuned holdout answers in the evaluation's predictions shape;
* :mod:`~gemini_sft.open_weights.train`: ``python -m gemini_sft.open_weights.train``, the training job's program;
* :mod:`~gemini_sft.open_weights.job`: that program's command line and a Vertex custom job's worker pool spec.
* :mod:`~gemini_sft.open_weights.pipeline_step`: what the pipeline's training step publishes (no torch);
* :mod:`~gemini_sft.open_weights.recorded_answers` and :mod:`~gemini_sft.open_weights.evaluation`: the evaluate
  step scoring the recorded holdout answers;
* :mod:`~gemini_sft.open_weights.local_defaults`: the backend in ``run --local`` and its ``run_summary.json``;
* :mod:`~gemini_sft.open_weights.serving`: the base model plus adapter answering prompts (the stand-in's endpoint).

Training needs the ``open-weights`` extra (torch, transformers, peft, trl); importing this package does not.
"""
