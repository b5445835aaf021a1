"""A row's fate while cleaning: one byte per source row, a split code or a rejection reason.

Splits use the codes of :mod:`gemini_sft.dataset.splits` (0-2); rejection
reasons start at :data:`FATE_REJECT_BASE`. Rejections decided row by row in
the first pass are "early"; duplicates, conflicts and validation overflow are
decided from the whole file afterwards ("late").
"""

from __future__ import annotations

from gemini_sft.dataset.records import RejectReason

REASON_CODES: tuple[str, ...] = tuple(reason.value for reason in RejectReason)

FATE_REJECT_BASE = 10
FATE_PENDING = 255
REASONS: tuple[RejectReason, ...] = tuple(RejectReason)
FATE_OF_REASON: dict[RejectReason, int] = {r: FATE_REJECT_BASE + i for i, r in enumerate(REASONS)}
# Reasons decided after the first pass, from the whole file; the others are decided row by row.
LATE_REASONS = (RejectReason.DUPLICATE, RejectReason.CONFLICTING_RESPONSE, RejectReason.VALIDATION_OVERFLOW)
LATE_FATES = frozenset(FATE_OF_REASON[r] for r in LATE_REASONS)
# The destination of a converted row rejected late (after the three split codes).
LATE = 3
