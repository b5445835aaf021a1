"""Validate Gemini tuning files the way Vertex will judge them, before anything costs money.

:func:`validate_dataset` streams a JSONL file (memory flat in the file size)
and checks every rule Vertex applies to supervised-tuning data: one JSON
object per line, a ``contents`` list of ``user``/``model`` turns that alternate,
start with ``user`` and end with ``model``, non-empty ``parts`` holding
non-blank ``text`` or a ``gs://`` ``fileData``, the ``systemInstruction``
shape, the per-example token limit and the file-level limits (file size,
example count, validation-set size). :func:`validate_splits` does so for the
training and validation splits of the stage and returns the
:class:`ValidationOutcome` the component and the CLI render.

Every problem becomes a :class:`ValidationIssue` with a stable ``code``, the
1-based line number (``None`` for file-level problems) and a message that says
how to fix it. Warnings never make a file invalid. Messages never quote the
content of an example. Large files are split into chunks of whole lines checked
by worker processes; results are merged in file order, so reports do not depend
on the number of workers.

Modules: ``settings`` (the stage record and the per-file config), ``reading``
(chunks of lines, workers), ``fast_path`` (the common valid shape),
``decoding``, ``rules`` and ``file_rules`` (each rule with its code and fix),
``checker`` and ``merge`` (what a chunk found, merged in order), ``counting``
(countTokens or the offline estimate), ``report`` (one file's report),
``outcome`` (both splits and the budget), ``serving`` (the checkpoint-selection and
holdout-evaluation calls, estimated), ``run`` (validating one file).
"""

from gemini_sft.validate.counting import TOKEN_SOURCE_API, TOKEN_SOURCE_ESTIMATE, TokenCounter
from gemini_sft.validate.issues import ERROR_CODES, WARNING_CODES, ValidationIssue
from gemini_sft.validate.outcome import ValidationOutcome, split_if_present, validate_splits
from gemini_sft.validate.reading import input_problem
from gemini_sft.validate.reading import workers_for as _workers_for
from gemini_sft.validate.report import ValidationReport, raise_if_invalid
from gemini_sft.validate.run import ProgressCallback, validate_dataset
from gemini_sft.validate.settings import (
    DEFAULT_MAX_API_EXAMPLES,
    Split,
    ValidationConfig,
    ValidationSettings,
)

_worker_count = _workers_for  # the name benchmarks/bench_data.py imports

__all__ = [
    "DEFAULT_MAX_API_EXAMPLES",
    "ERROR_CODES",
    "TOKEN_SOURCE_API",
    "TOKEN_SOURCE_ESTIMATE",
    "WARNING_CODES",
    "input_problem",
    "ProgressCallback",
    "Split",
    "TokenCounter",
    "ValidationConfig",
    "ValidationIssue",
    "ValidationOutcome",
    "ValidationReport",
    "ValidationSettings",
    "raise_if_invalid",
    "split_if_present",
    "validate_dataset",
    "validate_splits",
]
