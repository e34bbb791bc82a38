"""The API's vocabulary as ``StrEnum``s whose values are the API strings — without pydantic.

``kubatch.api.models`` uses (and re-exports) them; shells that only need the words (the
simulator reading ComputeEnvironments, the kubectl plugin) import this module and skip the cost
of building the models.
"""

from __future__ import annotations

from enum import StrEnum

from kubatch.core.model import Condition as DependencyCondition
from kubatch.core.model import ResourceType as ConsumableResourceType
from kubatch.core.model import TimeLimitAction
from kubatch.core.retry import RetryAction

__all__ = [
    "AllocationStrategy",
    "CapacityType",
    "ComputeEnvironmentType",
    "ConditionStatus",
    "ConsumableResourceType",
    "DependencyCondition",
    "DependencyType",
    "FairSharePreemption",
    "JobDefinitionType",
    "QueueOrdering",
    "ReclaimPolicy",
    "RetryAction",
    "SelectorOperator",
    "State",
    "TaintEffect",
    "TimeLimitAction",
    "TolerationOperator",
    "WaitingState",
]


class State(StrEnum):
    """``spec.state`` of a ComputeEnvironment or JobQueue."""

    ENABLED = "Enabled"
    DISABLED = "Disabled"


class ComputeEnvironmentType(StrEnum):
    MANAGED = "Managed"
    UNMANAGED = "Unmanaged"


class CapacityType(StrEnum):
    ON_DEMAND = "OnDemand"
    SPOT = "Spot"


class AllocationStrategy(StrEnum):
    BEST_FIT = "BestFit"
    BEST_FIT_PROGRESSIVE = "BestFitProgressive"
    SPOT_CAPACITY_OPTIMIZED = "SpotCapacityOptimized"
    SPOT_PRICE_CAPACITY_OPTIMIZED = "SpotPriceCapacityOptimized"

    @property
    def spot_only(self) -> bool:
        return self in (
            AllocationStrategy.SPOT_CAPACITY_OPTIMIZED,
            AllocationStrategy.SPOT_PRICE_CAPACITY_OPTIMIZED,
        )


class DependencyType(StrEnum):
    N_TO_N = "N_TO_N"
    SEQUENTIAL = "SEQUENTIAL"


class QueueOrdering(StrEnum):
    """Order of a queue without a scheduling policy."""

    FIFO = "FIFO"
    STRICT_FIFO = "StrictFIFO"


class WaitingState(StrEnum):
    """Phases a ``jobStateTimeLimitActions`` entry may watch (the waiting ones)."""

    PENDING = "Pending"
    RUNNABLE = "Runnable"
    STARTING = "Starting"


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class TolerationOperator(StrEnum):
    EQUAL = "Equal"
    EXISTS = "Exists"


class TaintEffect(StrEnum):
    NO_SCHEDULE = "NoSchedule"
    PREFER_NO_SCHEDULE = "PreferNoSchedule"
    NO_EXECUTE = "NoExecute"


class SelectorOperator(StrEnum):
    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


class JobDefinitionType(StrEnum):
    """``spec.type`` of a JobDefinition (AWS values)."""

    CONTAINER = "container"
    MULTINODE = "multinode"


class ReclaimPolicy(StrEnum):
    """``preemption.reclaimFromQueues`` of a JobQueue."""

    NEVER = "Never"
    LOWER_PRIORITY = "LowerPriority"


class FairSharePreemption(StrEnum):
    """``preemption.withinFairShare`` of a fair-share JobQueue."""

    NEVER = "Never"
    OVER_FAIR_SHARE = "OverFairShare"
