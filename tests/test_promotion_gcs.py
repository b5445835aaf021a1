"""A gs:// promotion registry read and written through the Cloud Storage API (no /gcs mount), over real HTTP."""

import json
import re
import threading
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

import gemini_sft.cli as cli
from gemini_sft.errors import PromotionError
from gemini_sft.promotion import (
    ModelVersion, PromotionStore, Provenance, files_for, promote, record_rejection, rollback,
)
from gemini_sft.vertex_client import CloudStorageFiles

PARENT = "projects/p/locations/us-central1/models"


class FakeCloudStorage:
    """The few Cloud Storage JSON API calls google-cloud-storage makes for list, download, upload and delete."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}
        self.forbidden_buckets: set[str] = set()
        self.calls: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def handle(self, method: str, target: str, headers: Any, body: bytes) -> tuple[int, bytes, str]:
        split = urlsplit(target)
        path, query = split.path, {k: v[-1] for k, v in parse_qs(split.query).items()}
        self.calls.append((method, path))
        match = re.fullmatch(r"(?:/upload|/download)?/storage/v1/b/([^/]+)/o(?:/(.+))?", path)
        if not match:
            return 404, b'{"error": {"code": 404, "message": "unknown path"}}', "application/json"
        bucket, name = match.group(1), unquote(match.group(2) or "")
        if bucket in self.forbidden_buckets:
            return 403, b'{"error": {"code": 403, "message": "caller lacks storage.objects.list"}}', "application/json"
        with self.lock:
            if method == "GET" and not name:
                prefix, delimiter = query.get("prefix", ""), query.get("delimiter")
                items, prefixes = [], set()
                for (b, key) in sorted(self.objects):
                    if b != bucket or not key.startswith(prefix):
                        continue
                    rest = key[len(prefix):]
                    if delimiter and delimiter in rest:
                        prefixes.add(prefix + rest.split(delimiter)[0] + delimiter)
                    else:
                        items.append({"name": key, "bucket": bucket, "generation": "1"})
                return 200, json.dumps({"items": items, "prefixes": sorted(prefixes)}).encode(), "application/json"
            if method == "GET":
                data = self.objects.get((bucket, name))
                if data is None:
                    return 404, b'{"error": {"code": 404, "message": "No such object"}}', "application/json"
                if query.get("alt") == "media":
                    return 200, data, "application/octet-stream"
                return 200, json.dumps({"name": name, "bucket": bucket, "generation": "1"}).encode(), "application/json"
            if method == "POST":
                message = BytesParser(policy=HTTP).parsebytes(
                    b"Content-Type: " + headers["Content-Type"].encode() + b"\r\n\r\n" + body)
                metadata_part, data_part = list(message.iter_parts())
                key = json.loads(metadata_part.get_content())["name"]
                if query.get("ifGenerationMatch") == "0" and (bucket, key) in self.objects:
                    return 412, b'{"error": {"code": 412, "message": "Precondition Failed"}}', "application/json"
                self.objects[(bucket, key)] = data_part.get_payload(decode=True)
                return 200, json.dumps({"name": key, "bucket": bucket, "generation": "1"}).encode(), "application/json"
            if method == "DELETE":
                if self.objects.pop((bucket, name), None) is None:
                    return 404, b'{"error": {"code": 404, "message": "No such object"}}', "application/json"
                return 204, b"", "application/json"
        return 405, b"", "application/json"


@pytest.fixture()
def gcs(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeCloudStorage]:
    fake = FakeCloudStorage()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, payload, content_type = fake.handle(self.command, self.path, self.headers, body)
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_DELETE = _serve

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("status", "rollback"))
    yield fake
    server.shutdown()
    server.server_close()


def version(model_id: str) -> ModelVersion:
    return ModelVersion(model=f"{PARENT}/{model_id}", version="1", endpoint=f"projects/p/locations/us-central1/endpoints/{model_id}")


def test_unmounted_gs_uri_uses_the_cloud_storage_api(gcs: FakeCloudStorage) -> None:
    assert isinstance(files_for("gs://team-bucket/registry"), CloudStorageFiles)


def test_history_champion_and_rollback_through_the_api(gcs: FakeCloudStorage, capsys: pytest.CaptureFixture[str]) -> None:
    store = PromotionStore("gs://team-bucket/gemini-sft/registry")
    promote(store, version("1"), provenance=Provenance(metrics={"tuned_rougeL": 0.6}))
    promote(store, version("2"))
    record_rejection(store, version("3"), ["too low"])

    keys = sorted(key for (_, key) in gcs.objects)
    assert keys[0] == "gemini-sft/registry/champion.json"
    assert len(keys) == 4 and all(key.startswith("gemini-sft/registry/records/") for key in keys[1:])
    champion_json = json.loads(gcs.objects[("team-bucket", "gemini-sft/registry/champion.json")])
    assert champion_json["model"]["model"] == f"{PARENT}/2"
    assert [r.kind for r in PromotionStore("gs://team-bucket/gemini-sft/registry").history()] == [
        "promotion", "promotion", "rejection"]

    assert cli.main(["rollback", "--registry-uri", "gs://team-bucket/gemini-sft/registry", "--no-registry"]) == 0
    assert cli.main(["status", "--registry-uri", "gs://team-bucket/gemini-sft/registry"]) == 0
    out = capsys.readouterr().out
    assert f"In production ('production'): {PARENT}/1@1" in out
    assert "rejection" in out and "too low" in out


def test_records_are_never_overwritten(gcs: FakeCloudStorage) -> None:
    files = CloudStorageFiles("gs://team-bucket/registry")
    files.write_text("records/a.json", "{}", create_only=True)
    with pytest.raises(FileExistsError):
        files.write_text("records/a.json", "{}", create_only=True)
    files.write_text("champion.json", "{}")
    files.write_text("champion.json", "{\"v\": 2}")
    assert files.read_text("champion.json") == "{\"v\": 2}"
    assert files.names("records") == ["a.json"]
    files.delete("champion.json")
    files.delete("champion.json")
    assert files.names("") == []


def test_permission_problems_are_explained(gcs: FakeCloudStorage) -> None:
    gcs.forbidden_buckets.add("locked-bucket")
    store = PromotionStore("gs://locked-bucket/registry")
    with pytest.raises(PromotionError, match="Cannot read the promotion registry gs://locked-bucket/registry: "
                                             "permission denied"):
        store.champion()
    with pytest.raises(PromotionError, match="nothing to roll back"):
        rollback(PromotionStore("gs://empty-bucket/registry"))


def test_latest_data_folder_is_found_through_the_api(gcs: FakeCloudStorage) -> None:
    from gemini_sft.schedule import resolve_data_uri

    for day in ("2026-11-02", "2026-11-16", "2026-11-09"):
        gcs.objects[("data-bucket", f"raw/{day}/tickets.jsonl")] = b"{}\n"
    gcs.objects[("data-bucket", "raw/README.md")] = b"x"
    assert resolve_data_uri("gs://data-bucket/raw/{latest}/tickets.jsonl") == "gs://data-bucket/raw/2026-11-16/tickets.jsonl"
