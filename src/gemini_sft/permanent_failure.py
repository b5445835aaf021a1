"""A step's permanent failure, kept for its retried attempts so they fail at once instead of repeating it.

KFP retries a task on any failure, and the tune step asks for retries on purpose:
a pod lost mid-job must come back and resume the job it launched. KFP (and
Vertex AI Pipelines) cannot retry on some errors only, so a failure the same
inputs meet every time (a refused setting, unreadable or invalid data, a
request Vertex refused for good with a 4xx) would be run again, calls to Vertex
included, by every retry.

Dropping the step's retries would lose the resume after preemption, and ending
the step "successfully" with a failure flag would let the next steps run on
nothing. Instead :func:`fail_fast_when_retried` wraps the step's work: when it
raises one of :data:`PERMANENT_ERRORS`, a marker naming the error and a
fingerprint of the step's inputs is written into the step's own output folder,
which its retried attempts share (on Vertex under the pipeline root, like the
``gcp_resources`` file a retry resumes its job from; on ``kfp.local`` under the
run's pipeline root). The next attempt reads the marker first and, when its
inputs are the same, fails at once with the same error type and message,
before any client is built. Other inputs (a new run, changed settings) are not
blocked, and a step that succeeds removes the marker.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Mapping

from gemini_sft import errors
from gemini_sft.errors import (
    ConfigError,
    DatasetInvalidError,
    GeminiSftError,
    InputFormatError,
    TuningSettingsError,
    VertexRequestError,
)

log = logging.getLogger(__name__)

MARKER_NAME = "permanent_failure.json"
# Failures the same inputs meet again on every attempt. Transient API errors, timeouts, a stopped step and a
# failed job (whose retry the tune step decides itself, retry_failed_job) are not among them.
PERMANENT_ERRORS: tuple[type[GeminiSftError], ...] = (
    ConfigError, InputFormatError, DatasetInvalidError, TuningSettingsError, VertexRequestError,
)
RETRY_NOTE = "an earlier attempt of this step failed the same way, so it is not tried again; fix it and start a new run"


def inputs_fingerprint(inputs: Mapping[str, Any]) -> str:
    """A short hash of a step's input values (JSON, keys sorted; other values by their text)."""
    text = json.dumps(dict(inputs), sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _recorded_error(marker: Path, fingerprint: str) -> GeminiSftError | None:
    """The error a marker records for these inputs, or None (no marker, other inputs, or unreadable)."""
    if not marker.is_file():
        return None
    try:
        record = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        log.warning("the permanent-failure marker %s is unreadable; running the step", marker)
        return None
    if not isinstance(record, dict) or record.get("inputs") != fingerprint:
        return None
    error_type = getattr(errors, str(record.get("error", "")), None)
    if not (isinstance(error_type, type) and issubclass(error_type, PERMANENT_ERRORS)):
        error_type = GeminiSftError
    return error_type(f"{record.get('message', '')} ({RETRY_NOTE})")


@contextlib.contextmanager
def fail_fast_when_retried(folder: str | Path, inputs: Mapping[str, Any]) -> Iterator[None]:
    """Run a step's work so that a retried attempt with the same inputs does not repeat a permanent failure.

    Args:
        folder: the step's output folder, shared by its attempts (e.g. the parent of an output artifact's path).
        inputs: the step's input values (parameters and input artifact URIs), fingerprinted.

    Raises:
        The recorded error type (message and a note that it is not tried again) when an earlier attempt with
        the same inputs failed permanently; otherwise whatever the work raises, unchanged.
    """
    marker = Path(folder) / MARKER_NAME
    fingerprint = inputs_fingerprint(inputs)
    recorded = _recorded_error(marker, fingerprint)
    if recorded is not None:
        log.error("not repeating a permanent failure of an earlier attempt (%s)", marker)
        raise recorded
    try:
        yield
    except PERMANENT_ERRORS as error:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps({
            "error": type(error).__name__,
            "message": str(error),
            "inputs": fingerprint,
            "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }, indent=2) + "\n", encoding="utf-8")
        raise
    marker.unlink(missing_ok=True)
