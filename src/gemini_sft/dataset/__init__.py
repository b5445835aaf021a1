"""The data stage: raw rows in, Gemini train / validation / holdout splits out, nothing lost.

Reading and converting:

- :mod:`~gemini_sft.dataset.sources`: containers (JSONL, CSV/TSV, gzip, BOM), rows with line numbers.
- :mod:`~gemini_sft.dataset.records`: format names, known fields, rejection reasons, a converted example.
- :mod:`~gemini_sft.dataset.formats`: detecting a record's format and converting it to a normalised example.
- :mod:`~gemini_sft.dataset.json_lines`: parsing one JSONL line (orjson where it agrees with the stdlib).
- :mod:`~gemini_sft.dataset.output_lines`: writing a Gemini example as one JSONL line.
- :mod:`~gemini_sft.dataset.pii`: masking e-mail addresses, phone and card numbers.

The clean stage (:func:`gemini_sft.dataset.clean.clean_dataset`):

- :mod:`~gemini_sft.dataset.settings`: :class:`CleanConfig`, the stage's settings, and the output paths.
- :mod:`~gemini_sft.dataset.first_pass`: every row converted once, a few integers kept per row.
- :mod:`~gemini_sft.dataset.decisions`: duplicates and conflicts (:mod:`~gemini_sft.dataset.dedup`),
  splits (:mod:`~gemini_sft.dataset.splits`), decided on those integers.
- :mod:`~gemini_sft.dataset.routing`: converted lines copied to their splits, rejected rows written.
- :mod:`~gemini_sft.dataset.report` and :mod:`~gemini_sft.dataset.version`: the report and the dataset
  version record.
- :mod:`~gemini_sft.dataset.source_lines`: each kept row's line in the raw file, per split.
"""
