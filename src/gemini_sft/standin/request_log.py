"""The stand-in's requests as a file: what a run would have sent to Vertex, one JSON object a line.

Each line is ``{"method": "POST", "path": "/v1/...?query", "body": {...} or null, "status": 200}``,
oldest first: the request as the client sent it (path with its query string,
the JSON body as parsed from the wire) and the status the stand-in answered.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

from gemini_sft.standin.server import RequestRecord

REQUEST_LOG_NAME = "standin_requests.jsonl"


def write_request_log(records: Iterable[RequestRecord], path: Path) -> int:
    """Write the records to ``path`` (replacing it) as JSON lines; returns the number written.

    Args:
        records: the requests, oldest first (``VertexStandIn.requests`` or a slice of it).
        path: the file to write; its folder must exist. OSError when it cannot be written.
    """
    count = 0
    with open(path, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record.as_log_line(), ensure_ascii=False) + "\n")
            count += 1
    return count


def read_request_log(path: Path) -> list[dict[str, object]]:
    """The lines of a request log, parsed (ValueError naming the line when one is not a JSON object)."""
    entries: list[dict[str, object]] = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            entry = json.loads(line)
            if not isinstance(entry, dict):
                raise ValueError(f"line {number} of {path} is not a JSON object")
            entries.append(entry)
    return entries
