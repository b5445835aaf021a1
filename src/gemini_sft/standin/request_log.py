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
# The first resource id of a local run's stand-in: fixed, so a replay of its requests on a fresh stand-in
# started with the same id rebuilds the same resource names.
LOCAL_RUN_FIRST_RESOURCE_ID = 1000


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


# Calls that change nothing in the stand-in's state: a replay skips them.
_STATELESS_CALLS = (":generateContent", ":countTokens", ":rawPredict", ":streamGenerateContent")


def replay_request_log(base_url: str, path: Path) -> int:
    """Send a run's requests again, in order, to a fresh stand-in at ``base_url``; returns how many were sent.

    A fresh stand-in started with ``first_resource_id=LOCAL_RUN_FIRST_RESOURCE_ID`` numbers its resources
    as the local run's did, so the replay rebuilds the run's tuning jobs,
    tuned endpoints (answering from the run's training split, which must still be on disk), Model
    Registry versions and, for an open-weights run, the model upload (its local ``artifactUri``), endpoint,
    deployed model and traffic (its rawPredict answers with the adapter, which must still be on disk) under
    the same names: ``gemini-sft ask`` can then ask the model a local run promoted.
    Requests the stand-in refused then, and calls that change no state (generation, token counts),
    are not sent.

    Args:
        base_url: the fresh stand-in's address.
        path: the run's ``standin_requests.jsonl``.

    Raises:
        ValueError: a line of the log is not a JSON object, or a replayed request is refused (the stand-in
            is not fresh, or the run's files are gone).
    """
    import urllib.error
    import urllib.request

    sent = 0
    for entry in read_request_log(path):
        target = str(entry["path"])
        if not 200 <= int(entry.get("status", 0)) < 300 or target.split("?")[0].endswith(_STATELESS_CALLS):
            continue
        body = entry.get("body")
        request = urllib.request.Request(
            base_url.rstrip("/") + target,
            data=None if body is None else json.dumps(body).encode("utf-8"),
            method=str(entry["method"]),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                answer.read()
        except urllib.error.HTTPError as exc:
            raise ValueError(f"replaying {entry['method']} {target} from {path} was refused: HTTP {exc.code}") from exc
        sent += 1
    return sent
