"""Model Registry through google-cloud-aiplatform: version aliases and labels (promotion and rollback)."""

from __future__ import annotations

import contextlib
import logging
from typing import Any, Iterator

from gemini_sft.vertex_client.settings import (
    VertexSettings,
    init_aiplatform,
)

log = logging.getLogger(__name__)


class VertexModelRegistry:
    """Model Registry version aliases and labels through google-cloud-aiplatform.

    Implements ``gemini_sft.promotion.ModelRegistry``. Every failed call raises
    ``PromotionError`` naming the model version and the API's message.
    """

    def __init__(self, settings: VertexSettings) -> None:
        init_aiplatform(settings)
        self.settings = settings

    def _registry(self, version: Any) -> Any:
        from google.cloud import aiplatform

        return aiplatform.models.ModelRegistry(
            version.model, location=self.settings.location, project=self.settings.project
        )

    def version_aliases(self, version: Any) -> list[str]:
        """The aliases ``version`` (a ``promotion.ModelVersion``) carries now."""
        with _registry_errors("read", version):
            return list(self._registry(version).get_version_info(version.version).version_aliases)

    def add_alias(self, version: Any, alias: str) -> None:
        """Give ``version`` the alias (``models/ID@V:mergeVersionAliases`` with ``[alias]``)."""
        with _registry_errors(f"add alias {alias!r} to", version):
            self._registry(version).add_version_aliases([alias], version=version.version)
        log.info("Alias %r added to %s", alias, version.versioned_name)

    def remove_alias(self, version: Any, alias: str) -> None:
        """Take the alias off ``version`` when it carries it (``mergeVersionAliases`` with ``[-alias]``)."""
        if alias not in self.version_aliases(version):
            log.info("%s does not carry alias %r; nothing to remove", version.versioned_name, alias)
            return
        with _registry_errors(f"remove alias {alias!r} from", version):
            self._registry(version).remove_version_aliases([alias], version=version.version)
        log.info("Alias %r removed from %s", alias, version.versioned_name)

    def labels(self, version: Any) -> dict[str, str]:
        """The labels of one model version."""
        with _registry_errors("read the labels of", version):
            model = self._registry(version).client.get_model(name=version.versioned_name)
        return dict(model.labels)

    def merge_labels(self, version: Any, labels: dict[str, str]) -> None:
        """Set ``labels`` on one model version, keeping its other labels.

        Updates ``models/ID@V`` itself (a name without ``@V`` would update the
        model's default version instead).
        """
        from google.cloud.aiplatform.compat.types import model as gca_model
        from google.protobuf import field_mask_pb2

        merged = {**self.labels(version), **labels}
        with _registry_errors("update the labels of", version):
            self._registry(version).client.update_model(
                model=gca_model.Model(name=version.versioned_name, labels=merged),
                update_mask=field_mask_pb2.FieldMask(paths=["labels"]),
            )
        log.info("Labels %s set on %s", sorted(labels), version.versioned_name)


@contextlib.contextmanager
def _registry_errors(operation: str, version: Any) -> Iterator[None]:
    """Turn an API error into PromotionError naming the operation and the model version."""
    from google.api_core import exceptions as api_exceptions

    from gemini_sft.errors import PromotionError

    try:
        yield
    except api_exceptions.GoogleAPIError as exc:
        raise PromotionError(
            f"Model Registry could not {operation} {version.versioned_name}: {exc}. "
            "Check that the model version exists and the caller has roles/aiplatform.user."
        ) from exc
