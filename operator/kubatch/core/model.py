"""The core's input model: compute environments, queues and jobs as frozen dataclasses.

Pure. The operator converts its validated API objects (pydantic) into these; the core never
sees a Kubernetes object. Sizes are integers (see ``resources``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from kubatch.core.budget import Budget
from kubatch.core.lifecycle import Phase
from kubatch.core.resources import Resources
from kubatch.core.retry import RetryStrategy
from kubatch.core.selector import LabelSelector

UNBOUNDED = 1 << 62
"""A dimension without a limit."""

DEFAULT_INTERRUPTION_BUDGET = 3


class DependencyType(StrEnum):
    WHOLE = "Whole"  # AWS: no type given; the dependent waits for the whole job/array
    N_TO_N = "N_TO_N"
    SEQUENTIAL = "SEQUENTIAL"


class Condition(StrEnum):
    SUCCEEDED = "Succeeded"  # afterok (default)
    COMPLETED = "Completed"  # afterany
    FAILED = "Failed"  # afternotok


class TimeLimitAction(StrEnum):
    CANCEL = "Cancel"
    FALLBACK = "FallbackToNextComputeEnvironment"


class ResourceType(StrEnum):
    """``ConsumableResource.spec.resourceType`` (AWS names)."""

    REPLENISHABLE = "REPLENISHABLE"  # returned when the attempt ends
    NON_REPLENISHABLE = "NON_REPLENISHABLE"  # used up


@dataclass(frozen=True, slots=True)
class Shape:
    """One node a compute environment has or can get: an instance type of a Managed CE, or a
    current node of an Unmanaged one (``name`` says which), and what it can hold."""

    name: str
    capacity: Resources


@dataclass(frozen=True, slots=True)
class ComputeEnvironment:
    """What the scheduler needs of a CE.

    ``max_vcpus`` is ``spec.computeResources.maxvCpus``. ``node_capacity`` is what the pool's
    ready nodes can hold right now (sum of allocatable); ``None`` means "not a limit" (a
    Managed pool that scales up to ``max_vcpus`` from the backlog). ``shapes`` are the nodes
    the pool has or can get (``kubatch.core.fit`` judges whether a job can ever run from
    them): ``None`` when unknown (only ``max_vcpus`` is checked); for an Unmanaged CE, empty
    while it has no node yet (its jobs then wait rather than fail).
    """

    name: str
    max_vcpus: int
    enabled: bool = True
    capacity_type: str = "OnDemand"
    node_capacity: Resources | None = None
    shapes: tuple[Shape, ...] | None = None
    managed: bool = True

    def limit(self) -> Resources:
        """Pure: the admission limit: min(maxvCpus, node capacity) per dimension."""
        mcpu = self.max_vcpus * 1000
        if self.node_capacity is None:
            return Resources(mcpu, UNBOUNDED, UNBOUNDED)
        nc = self.node_capacity
        return Resources(min(mcpu, nc.mcpu), nc.memory, nc.gpu, nc.extended)


@dataclass(frozen=True, slots=True)
class Share:
    share_identifier: str
    weight_factor: float = 1.0


@dataclass(frozen=True, slots=True)
class FairSharePolicy:
    """``schedulingPolicy``: a lower ``weight_factor`` gets a larger share (as in AWS)."""

    share_decay_seconds: int = 0
    compute_reservation: int = 0  # percent, 0-99
    shares: tuple[Share, ...] = ()

    def weight(self, ident: str) -> float:
        """Pure: the weight factor of ``ident`` (prefix ``*`` entries match, default 1)."""
        for s in self.shares:
            if s.share_identifier == ident or (
                s.share_identifier.endswith("*") and ident.startswith(s.share_identifier[:-1])
            ):
                return max(s.weight_factor, 1e-6)
        return 1.0


@dataclass(frozen=True, slots=True)
class StateTimeLimit:
    """One ``jobStateTimeLimitActions`` entry (``reason=None`` matches any reason)."""

    state: Phase
    max_time_seconds: int
    action: TimeLimitAction
    reason: str | None = None
    release: bool = False  # a gang's start timer (``kubatch.core.gang``), not a queue's limit


@dataclass(frozen=True, slots=True)
class PreemptionPolicy:
    """A queue's ``preemption`` (opt-in): reclaim capacity on a shared CE from running jobs of
    lower-priority queues (``lower_priority``), and, on a fair-share queue, from shares over
    their fair share for shares under it (``fair_share``). See ``kubatch.core.preemption``."""

    lower_priority: bool = False
    fair_share: bool = False


@dataclass(frozen=True, slots=True)
class JobQueue:
    name: str
    priority: int = 0
    enabled: bool = True
    compute_environments: tuple[str, ...] = ()  # already sorted by ``order``
    strict_fifo: bool = False
    fair_share: FairSharePolicy | None = None
    state_time_limits: tuple[StateTimeLimit, ...] = ()
    namespace_selector: LabelSelector = field(default_factory=LabelSelector)
    preemption: PreemptionPolicy | None = None
    budget: Budget | None = None


@dataclass(frozen=True, slots=True)
class Dependency:
    """``dependsOn`` entry. ``job_name`` is a BatchJob name in the same namespace
    (``None`` only for SEQUENTIAL)."""

    job_name: str | None
    type: DependencyType = DependencyType.WHOLE
    condition: Condition = Condition.SUCCEEDED


@dataclass(frozen=True, slots=True)
class NodeRange:
    """Nodes ``first``..``last`` (inclusive) of a multi-node job, each of ``size``."""

    first: int
    last: int
    size: Resources

    @property
    def count(self) -> int:
        return self.last - self.first + 1


@dataclass(frozen=True, slots=True)
class Gang:
    """A multi-node parallel job (AWS ``nodeProperties``): ``num_nodes`` nodes admitted all
    or nothing on one CE; ``ranges`` cover 0..num_nodes-1 in order, without overlap. The
    attempt is released whole if not every node runs within ``start_timeout_seconds`` of its
    admission (``kubatch.core.gang``)."""

    num_nodes: int
    main_node: int
    ranges: tuple[NodeRange, ...]
    start_timeout_seconds: int = 600

    def total(self) -> Resources:
        """Pure: what the whole gang holds (the job's ``size``)."""
        out = Resources()
        for r in self.ranges:
            n, z = r.count, r.size
            ext = tuple((k, v * n) for k, v in z.extended)
            out = out + Resources(z.mcpu * n, z.memory * n, z.gpu * n, ext)
        return out

    def node_size(self, node: int) -> Resources:
        """Pure: what node ``node`` asks for."""
        for r in self.ranges:
            if r.first <= node <= r.last:
                return r.size
        raise IndexError(f"node {node} is outside 0..{self.num_nodes - 1}")


@dataclass(frozen=True, slots=True)
class ConsumableResource:
    """A ``ConsumableResource`` (cluster-scoped): ``total`` units; ``consumed`` is what a
    NON_REPLENISHABLE resource had used up before (its status, read after a restart)."""

    name: str
    total: int
    type: ResourceType = ResourceType.REPLENISHABLE
    consumed: int = 0


@dataclass(frozen=True, slots=True)
class JobSpec:
    """A BatchJob as the scheduler sees it (resolved at submission time).

    ``created_at`` is the submission time (seconds, e.g. creationTimestamp); ties are broken
    by ``key``. ``token`` is a uid-ish value used in Kubernetes Job names.
    ``max_failed_children``: an array stops (and fails) once more children than this have
    finally failed; ``None`` lets every child run to its end (AWS).
    """

    namespace: str
    name: str
    queue: str
    size: Resources
    created_at: float = 0.0
    token: str = ""
    depends_on: tuple[Dependency, ...] = ()
    array_size: int | None = None
    parallelism: int | None = None
    max_failed_children: int | None = None
    retry: RetryStrategy = field(default_factory=RetryStrategy)
    timeout_seconds: int | None = None
    share_identifier: str | None = None
    scheduling_priority: int = 0
    interruption_budget: int = DEFAULT_INTERRUPTION_BUDGET
    terminate_reason: str | None = None
    gang: Gang | None = None  # a multi-node parallel job (``size`` is the whole gang's)
    consumables: tuple[tuple[str, int], ...] = ()  # (ConsumableResource name, quantity)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"
