"""Loss curves of a tuning job from its Vertex AI Experiment and TensorBoard (google-cloud-aiplatform)."""

from __future__ import annotations

import contextlib
import logging
from typing import Any, Iterator

from gemini_sft.errors import TransientApiError, VertexRequestError
from gemini_sft.retry import TRANSIENT_HTTP_CODES
from gemini_sft.vertex_client.settings import (
    VertexSettings,
    init_aiplatform,
)

log = logging.getLogger(__name__)


class AiplatformCurveReader:
    """Reads a tuning job's loss curves from its Vertex AI Experiment, as Google's tuning notebook does.

    ``aiplatform.Experiment(experiment_name=job.experiment)`` -> its backing
    TensorBoard -> the experiment's run (a ``system.ExperimentRun`` context
    whose parent is the experiment) -> ``TensorboardRun.read_time_series_data()``.
    On the wire: GET ``metadataStores/default/contexts/{experiment}``, GET
    ``tensorboards/{id}``, GET ``metadataStores/default/contexts?filter=...``,
    GET ``tensorboards/{id}/experiments/{e}/runs/{r}``, GET ``.../runs/{r}/timeSeries``
    and GET ``tensorboards/{id}:batchRead``.
    """

    def __init__(self, settings: VertexSettings) -> None:
        self.settings = settings

    def read_curves(self, experiment: str) -> Any:
        """The experiment's curves as :class:`gemini_sft.tune.curves.LossCurves` (empty with a note when none).

        Args:
            experiment: the job's ``experiment`` (a context resource name or id).

        Raises:
            TransientApiError for a 429/5xx or a dropped connection, VertexRequestError for other refusals.
        """
        from gemini_sft.tune.curves import LossCurves

        with _aiplatform_errors("reading the loss curves of experiment " + experiment):
            series = self._read_series(experiment)
        if series is None:
            return LossCurves.missing(f"Experiment {experiment} has no TensorBoard run with loss curves.")
        curves = LossCurves.from_series(series)
        if curves.empty:
            return LossCurves.missing(f"Experiment {experiment} holds no /train_total_loss or /eval_total_loss.")
        return curves

    def _read_series(self, experiment: str) -> dict[str, list[tuple[int, float]]] | None:
        from google.cloud import aiplatform
        from google.cloud.aiplatform.metadata import constants as metadata_constants
        from google.cloud.aiplatform.metadata import context as metadata_context
        from google.cloud.aiplatform.metadata import utils as metadata_utils

        init_aiplatform(self.settings)
        found = aiplatform.Experiment(experiment_name=experiment)
        tensorboard = found.get_backing_tensorboard_resource()
        if tensorboard is None:
            return None
        runs = metadata_context.Context.list(
            metadata_utils._make_filter_string(
                schema_title=metadata_constants.SYSTEM_EXPERIMENT_RUN, parent_contexts=[found.resource_name]
            )
        )
        if not runs:
            return None
        # An experiment run's context id is "<experiment>-<run>"; its TensorBoard run id is "<run>".
        run_id = runs[0].name[len(found.name) + 1 :] if runs[0].name.startswith(found.name + "-") else runs[0].name
        run = aiplatform.TensorboardRun(f"{tensorboard.resource_name}/experiments/{found.name}/runs/{run_id}")
        return {
            name: [(int(point.step), float(point.scalar.value)) for point in data.values]
            for name, data in run.read_time_series_data().items()
        }


@contextlib.contextmanager
def _aiplatform_errors(what: str) -> Iterator[None]:
    """google-api-core errors as TransientApiError (429, 5xx, transport) or VertexRequestError (the rest)."""
    from google.api_core import exceptions as core_exceptions
    from google.auth import exceptions as auth_exceptions

    try:
        yield
    except core_exceptions.GoogleAPICallError as error:
        code = int(error.code) if error.code is not None else None
        if code in TRANSIENT_HTTP_CODES:
            raise TransientApiError(f"{what}: {code}", code) from error
        raise VertexRequestError(f"Vertex refused {what}: {code} {error.message}", code) from error
    except (auth_exceptions.TransportError, ConnectionError, TimeoutError) as error:
        raise TransientApiError(f"{what}: {type(error).__name__}") from error
