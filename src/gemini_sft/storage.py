"""Reading and writing files named by local paths or Cloud Storage URIs.

On Vertex AI Pipelines, Cloud Storage is mounted at ``/gcs/<bucket>/...``
(Cloud Storage FUSE), so a ``gs://`` URI is read and written through that
path; elsewhere a ``gs://`` URI is read through the mount too when it exists.
"""

from __future__ import annotations

from pathlib import Path

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
