"""Canary routing (a sticky share of requests) and the shadow log.

A request goes to the canary when the hash of its key falls below the
canary's share. The hash is salted with the candidate's name, so:

* the same key always gets the same model while the share stays the same;
* raising the share only adds keys (nobody moves back to production);
* a new candidate draws a new set of keys.

In shadow mode the candidate answers every request too, but its answer is only
written to the shadow log, next to production's; it is never returned. The log
is one JSON file per request under ``shadow/<model id>@<version>/`` in the
promotion registry (a bucket cannot append to an object, and one file per
request loses nothing when a process dies).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

from gemini_sft.errors import PromotionError
from gemini_sft.promotion import RecordFiles

SHADOW_DIR = "shadow"
_HASH_SPACE = float(2**64)


def canary_position(request_key: str, candidate: str) -> float:
    """Where a request key falls in [0, 1) for a candidate (SHA-256 of ``candidate`` and the key)."""
    digest = hashlib.sha256(f"{candidate}\n{request_key}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / _HASH_SPACE


def goes_to_canary(request_key: str, candidate: str, share: float) -> bool:
    """Whether the canary ``candidate`` with ``share`` (0-1) answers the request with this key."""
    if share <= 0.0:
        return False
    if share >= 1.0:
        return True
    return canary_position(request_key, candidate) < share


@dataclass(frozen=True)
class ShadowEntry:
    """One request answered in shadow: what production returned and what the candidate would have."""

    created_at: str
    request_key_sha256: str
    prompt: str
    production_model: str
    production_answered_by: str
    production_text: str
    production_fallback_reason: str | None
    shadow_model: str
    shadow_text: str | None
    shadow_fallback_reason: str | None
    shadow_error: str | None = None


def shadow_folder(candidate_versioned_name: str) -> str:
    """The folder of a candidate's shadow log in a registry: ``shadow/<model id>@<version>``."""
    return f"{SHADOW_DIR}/{candidate_versioned_name.rsplit('/', 1)[-1]}"


class ShadowLog:
    """Writes and reads shadow entries under a registry's files (local folder or bucket)."""

    def __init__(self, files: RecordFiles) -> None:
        self.files = files

    def write(self, candidate: str, entry: ShadowEntry) -> str:
        """Store one entry (create-only, its own file); returns its path. PromotionError when it cannot."""
        stamp = entry.created_at.replace(":", "").replace("-", "")
        path = f"{shadow_folder(candidate)}/{stamp}-{uuid.uuid4().hex[:8]}.json"
        try:
            self.files.write_text(path, json.dumps(asdict(entry), ensure_ascii=False, indent=1) + "\n", create_only=True)
        except OSError as exc:
            raise PromotionError(f"Cannot write the shadow log {self.files.location}/{path}: {exc}") from exc
        return path

    def read(self, candidate: str) -> list[ShadowEntry]:
        """Every entry of a candidate, oldest first."""
        folder = shadow_folder(candidate)
        entries: list[ShadowEntry] = []
        try:
            for name in self.files.names(folder):
                data: dict[str, Any] = json.loads(self.files.read_text(f"{folder}/{name}"))
                entries.append(ShadowEntry(**data))
        except (OSError, ValueError, TypeError) as exc:
            raise PromotionError(f"Cannot read the shadow log {self.files.location}/{folder}: {exc}") from exc
        return sorted(entries, key=lambda entry: entry.created_at)


def key_digest(request_key: str) -> str:
    """The SHA-256 of a request key (the log keeps this, not the key)."""
    return hashlib.sha256(request_key.encode("utf-8")).hexdigest()


def utc_stamp() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")
