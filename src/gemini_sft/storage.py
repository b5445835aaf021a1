"""Reading and writing files named by local paths or Cloud Storage URIs.

On Vertex AI Pipelines, Cloud Storage is mounted at ``/gcs/<bucket>/...``
(Cloud Storage FUSE), so a ``gs://`` URI is read and written through that
path; elsewhere a ``gs://`` URI is read through the mount too when it exists.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from gemini_sft.errors import InputFormatError

GCS_PREFIX = "gs://"
GCS_MOUNT = "/gcs/"


def local_path(uri: str) -> Path:
    """The filesystem path for a URI: ``gs://b/k`` -> ``/gcs/b/k``, ``file:///x`` -> ``/x``, paths unchanged."""
    if uri.startswith(GCS_PREFIX):
        return Path(GCS_MOUNT + uri[len(GCS_PREFIX):])
    if uri.startswith("file://"):
        return Path(uri[len("file://"):])
    return Path(uri)


def gcs_uri_for(path: str | Path) -> str:
    """The ``gs://`` URI of a path under the FUSE mount, or the path itself when it is local."""
    text = str(path)
    if text.startswith(GCS_MOUNT):
        return GCS_PREFIX + text[len(GCS_MOUNT):]
    return text


def read_json_lines(
    path: Path, invalid_json: Callable[[int, str], Exception] | None = None
) -> Iterator[tuple[int, Any]]:
    """The JSON value of every non-blank line of a local JSONL file, with its 1-based line number.

    Args:
        path: the file to read (a local path; see :func:`local_path` for URIs).
        invalid_json: builds the error to raise for a line that is not JSON from its line number and the
            parser's reason; None raises InputFormatError.

    Raises:
        InputFormatError: a line is not valid JSON (unless ``invalid_json`` builds another error); the message
            names the file and the line.
    """
    with path.open(encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                if invalid_json is not None:
                    raise invalid_json(line_number, exc.msg) from exc
                raise InputFormatError(f"{path}:{line_number}: not valid JSON ({exc.msg})") from exc
            yield line_number, value
