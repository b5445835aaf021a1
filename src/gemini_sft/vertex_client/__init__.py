"""The one place that talks to Google Cloud.

Stage cores never import a cloud SDK: they receive the small objects built
here. Every client is built from :class:`VertexSettings`, whose
``api_endpoint`` decides where requests go: Vertex itself by default, or any
Vertex-compatible server (such as the offline stand-in) when
``--api-endpoint`` / ``VERTEX_API_ENDPOINT`` is set.

One module per Google service the project calls:

* :mod:`.settings`: the endpoint, project and region; google-genai and aiplatform clients;
* :mod:`.tuning`: tuning jobs (the tune stage's TuningService);
* :mod:`.curves`: loss curves from the job's Experiment and TensorBoard;
* :mod:`.generation`: answers for the evaluation and the serving client;
* :mod:`.tokens`: token counts for the validate stage;
* :mod:`.registry`: Model Registry aliases and labels (promotion, rollback);
* :mod:`.deployments`: model uploads and endpoint deployments (open-weights serving, its rollback);
* :mod:`.storage`: promotion records in Cloud Storage;
* :mod:`.preflight`: read-only project facts for ``gemini-sft preflight``.
"""

from gemini_sft.vertex_client.curves import AiplatformCurveReader
from gemini_sft.vertex_client.deployments import EndpointPredictor, VertexDeployments
from gemini_sft.vertex_client.generation import GenAIGenerator, GenAIReplyGenerator
from gemini_sft.vertex_client.preflight import GoogleCloudFacts
from gemini_sft.vertex_client.registry import VertexModelRegistry
from gemini_sft.vertex_client.settings import (
    API_ENDPOINT_ENV,
    STANDIN_TOKEN,
    VertexSettings,
    VertexTarget,
    genai_client,
    init_aiplatform,
    is_loopback_endpoint,
    quiet_http_logs,
    resolve_api_endpoint,
)
from gemini_sft.vertex_client.storage import CloudStorageFiles
from gemini_sft.vertex_client.tokens import ApiTokenCounter
from gemini_sft.vertex_client.tuning import GenAITuningService, job_snapshot

__all__ = [
    "API_ENDPOINT_ENV",
    "STANDIN_TOKEN",
    "AiplatformCurveReader",
    "EndpointPredictor",
    "ApiTokenCounter",
    "CloudStorageFiles",
    "GenAIGenerator",
    "GenAIReplyGenerator",
    "GenAITuningService",
    "GoogleCloudFacts",
    "VertexDeployments",
    "VertexModelRegistry",
    "VertexSettings",
    "VertexTarget",
    "genai_client",
    "init_aiplatform",
    "is_loopback_endpoint",
    "job_snapshot",
    "quiet_http_logs",
    "resolve_api_endpoint",
]
