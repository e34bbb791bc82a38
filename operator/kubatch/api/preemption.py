"""Queue preemption in the API (kubatch, Kueue-like, opt-in): ``JobQueue.spec.preemption``.

Pure: no I/O. Semantics: ``kubatch.core.preemption``.
"""

from __future__ import annotations

from kubatch.api.common import _Model
from kubatch.api.enums import FairSharePreemption, ReclaimPolicy


class QueuePreemption(_Model):
    """kubatch (Kueue-like, opt-in): when this queue's jobs cannot otherwise fit, running
    attempts are preempted — youngest first, never more than needed — and run again later."""

    reclaim_from_queues: ReclaimPolicy = ReclaimPolicy.NEVER
    """``LowerPriority``: from queues of a lower priority sharing a compute environment."""
    within_fair_share: FairSharePreemption = FairSharePreemption.NEVER
    """``OverFairShare`` (fair-share queues): from shares over their fair share, for shares
    under it (never the reverse)."""
