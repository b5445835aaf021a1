"""The evaluate stage: models answer the holdout prompts; the answers are scored, compared and reported.

Modules, in the order a run uses them:

- :mod:`~gemini_sft.evaluation.settings`: the stage's settings (one record) and the generators it builds;
- :mod:`~gemini_sft.evaluation.holdout`: reading the holdout split into evaluation cases;
- :mod:`~gemini_sft.evaluation.generation`: asking every model about every case, paced and retried;
- :mod:`~gemini_sft.evaluation.progress`: progress lines for the terminal and the component log;
- :mod:`~gemini_sft.evaluation.run`: the whole evaluation (generate, score, summarise), from a holdout file;
- :mod:`~gemini_sft.evaluation.result`: the result record, the evaluation document and the predictions;
- :mod:`~gemini_sft.evaluation.output`: writing every file of an evaluation (component and CLI alike);
- :mod:`~gemini_sft.evaluation.metrics`: scores per example and comparisons with bootstrap intervals;
- :mod:`~gemini_sft.evaluation.fallback`: "tuned with fallback" (the serving safety net) scored on the holdout;
- :mod:`~gemini_sft.evaluation.usage`: tokens per model, thinking tokens apart, and their list-price cost;
- :mod:`~gemini_sft.evaluation.report_text`, :mod:`~gemini_sft.evaluation.markdown_report`,
  :mod:`~gemini_sft.evaluation.html_report`: the reports.
"""
