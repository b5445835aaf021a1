"""Which tuned model is in production, how it got there, and how to undo it.

A Gemini tuning job deploys its model to an endpoint by itself, so "deploying"
here means *promoting*: moving the production alias in Model Registry (done by
the caller through a :class:`ModelRegistry`) and appending a
:class:`PromotionRecord` to a :class:`PromotionStore`, a folder of JSON files
in the pipeline's bucket (``gs://bucket/prefix``, read and written through the
Cloud Storage FUSE mount) or on local disk.

* :mod:`~gemini_sft.promotion.records`: :class:`ModelVersion`, :class:`Provenance`, :class:`PromotionRecord`;
* :mod:`~gemini_sft.promotion.store`: :class:`PromotionStore` (its layout, the champion replayed from the
  records) over :class:`RecordFiles` (a local folder, the ``/gcs`` mount or the Cloud Storage API);
* :mod:`~gemini_sft.promotion.actions`: :func:`promote`, :func:`record_rejection`, :func:`rollback`;
* :mod:`~gemini_sft.promotion.artifacts`: the gate decision and evaluation metrics the pipeline steps read,
  the record artifacts they write.
"""

from gemini_sft.promotion.actions import (
    DATASET_LABEL,
    STATUS_LABEL,
    STATUS_PRODUCTION,
    STATUS_RETIRED,
    STATUS_ROLLED_BACK,
    ModelRegistry,
    promote,
    record_rejection,
    rollback,
    rollback_target,
    validate_alias,
)
from gemini_sft.promotion.artifacts import (
    candidate_provenance,
    read_decision,
    read_gate_decision,
    read_metrics,
    write_record_artifact,
)
from gemini_sft.promotion.records import (
    DEFAULT_PRODUCTION_ALIAS,
    ModelVersion,
    PromotionRecord,
    Provenance,
    RecordKind,
    new_record_id,
    record_timestamp,
    utc_now,
)
from gemini_sft.promotion.store import (
    CHAMPION_FILE,
    RECORDS_DIR,
    LocalFiles,
    PromotionStore,
    RecordFiles,
    append_new_record,
    files_for,
)
