"""Text files under a Cloud Storage prefix through the Cloud Storage API (promotion records off the /gcs mount)."""

from __future__ import annotations

import contextlib
import logging
from typing import Iterator

from gemini_sft.errors import ConfigError

log = logging.getLogger(__name__)


class CloudStorageFiles:
    """Text files under ``gs://BUCKET/PREFIX`` through the Cloud Storage API.

    Implements ``gemini_sft.promotion.RecordFiles`` for machines without the
    ``/gcs`` mount (a laptop running ``gemini-sft status``). Uses Application
    Default Credentials, or ``$STORAGE_EMULATOR_HOST`` when set. Failures are
    OSError subclasses: FileNotFoundError, FileExistsError, PermissionError.
    """

    def __init__(self, uri: str) -> None:
        from google.cloud import storage

        if not uri.startswith("gs://") or len(uri) <= len("gs://"):
            raise ConfigError(f"{uri!r} is not a Cloud Storage URI (gs://BUCKET/PREFIX).")
        bucket, _, prefix = uri[len("gs://"):].partition("/")
        self.location = uri.rstrip("/")
        self.prefix = prefix.strip("/")
        # project=None: bucket-level calls need no project, and none may be configured on the machine.
        self._bucket = storage.Client(project=None).bucket(bucket)

    def _key(self, path: str) -> str:
        return f"{self.prefix}/{path}" if self.prefix else path

    def names(self, folder: str) -> list[str]:
        """Object names directly under ``folder`` (no deeper levels)."""
        folder_key = self._key(folder).rstrip("/") + "/"
        with _storage_errors(self.location, folder):
            blobs = self._bucket.client.list_blobs(self._bucket, prefix=folder_key, delimiter="/")
            names = [blob.name[len(folder_key):] for blob in blobs]
        return sorted(name for name in names if name and not name.startswith("."))

    def folders(self, folder: str = "") -> list[str]:
        """Names of the sub-folders directly under ``folder`` (object name prefixes up to the next ``/``)."""
        folder_key = self._key(folder).strip("/")
        folder_key = f"{folder_key}/" if folder_key else ""
        with _storage_errors(self.location, folder):
            iterator = self._bucket.client.list_blobs(self._bucket, prefix=folder_key, delimiter="/")
            for _ in iterator:  # prefixes are known once every page is read
                pass
            names = [prefix[len(folder_key):].rstrip("/") for prefix in iterator.prefixes]
        return sorted(name for name in names if name and not name.startswith("."))

    def read_text(self, path: str) -> str:
        with _storage_errors(self.location, path):
            return self._bucket.blob(self._key(path)).download_as_text(encoding="utf-8")

    def write_text(self, path: str, text: str, *, create_only: bool = False) -> None:
        """One upload request, so readers see the old or the new object, never half of it."""
        with _storage_errors(self.location, path):
            self._bucket.blob(self._key(path)).upload_from_string(
                text, content_type="application/json", if_generation_match=0 if create_only else None
            )

    def delete(self, path: str) -> None:
        from google.api_core import exceptions as api_exceptions

        with _storage_errors(self.location, path):
            try:
                self._bucket.blob(self._key(path)).delete()
            except api_exceptions.NotFound:
                log.debug("%s/%s was already absent", self.location, path)


@contextlib.contextmanager
def _storage_errors(location: str, path: str) -> Iterator[None]:
    """Turn a Cloud Storage API error into the OSError subclass that says what went wrong."""
    from google.api_core import exceptions as api_exceptions

    where = f"{location}/{path}"
    try:
        yield
    except api_exceptions.NotFound as exc:
        raise FileNotFoundError(2, f"not found ({exc.message})", where) from exc
    except api_exceptions.PreconditionFailed as exc:
        raise FileExistsError(17, "already exists", where) from exc
    except (api_exceptions.Forbidden, api_exceptions.Unauthorized) as exc:
        raise PermissionError(13, f"permission denied ({exc.message})", where) from exc
    except api_exceptions.GoogleAPIError as exc:
        raise OSError(5, f"Cloud Storage error: {exc}", where) from exc
